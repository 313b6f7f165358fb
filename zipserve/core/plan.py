"""Selection + walked nodes + options -> ArchivePlan, before a byte is sent (pure).

The plan fixes every entry's name, order and encoding, whether the archive's
size is known, and for a sized archive where each byte comes from (its
Layout), so Content-Length, a strong ETag and Range follow from it alone.
"""

from __future__ import annotations

import hashlib
import hmac
import posixpath
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from zipserve.core import formats
from zipserve.core.formats import Format
from zipserve.core.formats.layout import Layout
from zipserve.core.formats.sums import SUMS_NAME, sums_entry
from zipserve.core.node import PACKED_STORED, Entry, Node
from zipserve.core.selection import Options, Selection
from zipserve.core.winnames import windows_names
from zipserve.errors import BadRequest

# Bump whenever the bytes written for the same plan change: it is part of every ETag.
LAYOUT_VERSION = 3

# Already compressed by their own format: deflating them again wastes CPU for nothing.
COMPRESSED_SUFFIXES = frozenset("""
    jpg jpeg png gif webp heic heif avif jxl mp4 m4v mov mkv webm avi wmv flv mpg mpeg ts
    mp3 m4a aac ogg oga ogv opus flac wma zip gz tgz bz2 xz zst lz lz4 lzma 7z rar br cab
    jar war apk ipa docx xlsx pptx odt ods odp epub whl woff woff2 dmg pdf
""".split())
# Smaller files are stored: deflate saves next to nothing on them.
MIN_DEFLATE = 128


@dataclass(frozen=True)
class Sealing:
    """A ZIP's password and the server secret its salts are keyed by; repr and comparison show neither."""

    password: bytes = field(repr=False, compare=False)
    secret: bytes = field(repr=False, compare=False)

    @property
    def tag(self) -> str:
        """Return what the ETag holds of the password: an HMAC under the secret, revealing nothing."""
        return hmac.digest(self.secret, b"zipserve password tag\0" + self.password, "sha256").hex()


@dataclass(frozen=True)
class Packing:
    """What a deflated ZIP's earlier streams left: the compressed length of each file, by lookup.

    ``profile`` names everything the compressed bytes depend on besides the
    file (level, engine and its version, block and read sizes); ``sizes``
    answers, for files, each one's compressed length under it, PACKED_STORED
    where auto stored it, or PACKED_UNKNOWN. Looked up, never computed: no
    file is read to plan.
    """

    profile: str
    sizes: Callable[[Sequence[Node]], list[int]]


@dataclass(frozen=True)
class ArchivePlan:
    """Everything about an archive that can be known before sending it."""

    options: Options
    entries: tuple[Entry, ...]
    filename: str
    sized: bool
    etag: str | None
    last_modified: int  # newest mtime, POSIX seconds
    layout: Layout | None  # known before sending; under a whole-stream compression, what it compresses
    sealing: Sealing | None = field(default=None, repr=False)  # under encryption=aes256

    @property
    def format(self) -> Format:
        """Return the row of the plan's format."""
        return formats.get(self.options.format)

    @property
    def content_type(self) -> str:
        return self.format.content_type

    @property
    def total(self) -> int | None:
        """Return the archive's exact length when it is known before sending."""
        return self.layout.total if self.sized and self.layout is not None else None


def already_compressed(name: str) -> bool:
    """Given an entry name, return whether its type says it is compressed already."""
    suffix = posixpath.splitext(name)[1].lower().lstrip(".")
    return suffix in COMPRESSED_SUFFIXES


def wants_deflate(node: Node, name: str, compression: str) -> bool:
    """Given a node, its name and the compression option, return whether ZIP deflates it."""
    if node.kind != "file" or node.size == 0 or compression == "store":
        return False  # an empty file has nothing to deflate: stored, it keeps the ZIP sized
    if compression == "deflate":
        return True
    return node.size >= MIN_DEFLATE and not already_compressed(name)


def entries_of(selection: Selection, nodes: Iterable[Node], options: Options) -> list[Entry]:
    """Given walked nodes, return the entries: named, deduplicated, ordered by UTF-8 bytes.

    Under ``names=windows`` every name is then made valid on Windows, without
    two entries landing on one file (core/winnames.py).
    """
    seen: dict[str, Entry] = {}
    per_entry = formats.get(options.format).deflate_per_entry
    for node in nodes:
        name = "/".join(selection.name_of(node.path))
        if not name or name in seen:
            continue  # the root itself is not an entry; no entry is written twice
        seen[name] = Entry(name, node, per_entry and wants_deflate(node, name, options.compression))
    if options.names == "windows":
        renamed = windows_names(sorted(seen))
        seen = {renamed[name]: replace(e, name=renamed[name]) for name, e in seen.items()}
    # UTF-8 byte order is code point order: sorting the str sorts the bytes.
    return [seen[name] for name in sorted(seen)]


def named_entries(named: Iterable[tuple[str, Node]], options: Options) -> list[Entry]:
    """Given names and nodes in the order an application chose (a manifest), return the entries.

    The names are already checked and distinct (core/manifest.py); under
    ``names=windows`` they are made valid on Windows, order kept.
    """
    per_entry = formats.get(options.format).deflate_per_entry
    entries = [Entry(name, node, per_entry and wants_deflate(node, name, options.compression))
               for name, node in named]
    if options.names == "windows":
        renamed = windows_names([e.name for e in entries])
        entries = [replace(e, name=renamed[e.name]) for e in entries]
    return entries


def build(selection: Selection, nodes: Iterable[Node], options: Options,
          filename: str, sealing: Sealing | None = None,
          packing: Packing | None = None) -> ArchivePlan:
    """Given a selection, its walked nodes, options (and a password under encryption), return the plan.

    Raises BadRequest, also when encryption and a password do not come together.
    """
    entries = entries_of(selection, nodes, options)
    fmt = formats.get(options.format)
    # The root is a folder even when it holds a single file: no entry of its own shows it.
    if fmt.one_file and (() in selection.paths or len(entries) != 1 or entries[0].is_dir):
        raise BadRequest(f"{fmt.name} holds exactly one file; use {fmt.folders_as} for a folder or a "
                         "selection")
    return arrange(entries, options, filename, sealing, packing)


def arrange(entries: list[Entry], options: Options, filename: str,
            sealing: Sealing | None = None, packing: Packing | None = None) -> ArchivePlan:
    """Given named entries in their final order, options (and a password under encryption), return the plan.

    With ``packing``, a ZIP's deflated entries take their known compressed
    lengths, so the archive is sized once all are known. Raises BadRequest,
    also when encryption and a password do not come together.
    """
    if (options.encryption != "none") != (sealing is not None):
        raise BadRequest("encryption=aes256 needs a password" if sealing is None
                         else "a password needs encryption=aes256")
    for e in entries if sealing is not None else ():
        e.sealed = not e.is_dir  # every file, whoever added it; folders have no data to hide
    fmt = formats.get(options.format)
    sums = options.checksums != "none"
    if sums and any(e.name == SUMS_NAME for e in entries):
        raise BadRequest(f"the selection holds a {SUMS_NAME} of its own; leave out checksums=")
    if packing is not None and fmt.deflate_per_entry and sealing is None and not sums:
        take_packed(entries, packing)
    else:
        packing = None
    # SHA256SUMS is a last entry of the layout (its size follows from the names) where the
    # archive is laid out; a ZIP that is not (deflated, encrypted) adds it while it streams.
    laid = sums and (fmt.sums == "layout" or (sealing is None and fmt.sized(entries)))
    if laid:
        entries = [*entries, sums_entry(entries)]
    sized = fmt.sized(entries) and (laid or not sums)
    layout = fmt.layout(entries) if laid or not sums else None
    if layout is not None and laid:
        _mark_sums(layout, len(entries) - 1)
    newest = max((e.mtime_ns for e in entries), default=0) // 1_000_000_000
    tag = sealing.tag if sealing is not None else ""
    return ArchivePlan(options=options, entries=tuple(entries), filename=filename, sized=sized,
                       etag=etag_of(entries, options, tag, _profile(entries, packing)) if sized else None,
                       last_modified=newest, layout=layout, sealing=sealing)


def _mark_sums(layout: Layout, index: int) -> None:
    """Given a layout whose entry `index` is SHA256SUMS, make its data piece a "sums" piece and mark it."""
    for piece in reversed(layout.pieces):
        if piece.index == index and piece.kind == "data":
            piece.kind = "sums"  # not read from any source: the encoder writes it
            layout.marks["sums"] = piece.start
            break
    layout.marks["sums_entry"] = layout.offsets[index]  # its header (and a ZIP's record) need it too


def take_packed(entries: list[Entry], packing: Packing) -> None:
    """Given ZIP entries, set each deflated one's known compressed length; store what auto stored."""
    deflated = [e for e in entries if e.deflate]
    if not deflated:
        return
    for entry, size in zip(deflated, packing.sizes([e.node for e in deflated]), strict=True):
        if size == PACKED_STORED:
            entry.deflate = False  # auto found it does not shrink: the stream stores it
        else:
            entry.packed = size


def _profile(entries: list[Entry], packing: Packing | None) -> str:
    """Given a plan's entries and packing, return what its ETag holds of the engine ("": none deflates)."""
    return packing.profile if packing is not None and any(e.deflate for e in entries) else ""


def etag_of(entries: Iterable[Entry], options: Options, password_tag: str = "",
            packing: str = "") -> str:
    """Given entries and options (and Sealing.tag, Packing.profile), return a strong ETag of the bytes.

    ``password_tag`` when encrypted; ``packing`` when entries are deflated,
    each of whose lines then holds its compressed length.
    """
    head = (f"zipserve-layout-{LAYOUT_VERSION}\0{options.format}\0{options.compression}\0"
            f"{options.level}\0{options.names}\0{options.checksums}\0")
    if options.encryption != "none":  # added only then: every unencrypted ETag stays as it was
        head += f"{options.encryption}\0{password_tag}\0"
    if packing:  # likewise: a stored ZIP's ETag stays as it was
        head += f"packed\0{packing}\0"
    h = hashlib.sha256(head.encode())
    lines = []
    for e in entries:
        n = e.node
        # An object store's version (its ETag) counts too: LastModified has only seconds.
        version = f"\0{n.version}" if n.version else ""
        if n.origin:  # a manifest's entry from another source than the root (its bucket, a URL)
            version += f"\0{n.origin}"
        if e.deflate:
            version += f"\0{e.packed}"
        lines.append(f"{e.name}\0{n.kind}\0{n.mode}\0{n.size}\0{e.mtime_ns}\0{int(e.deflate)}{version}\n")
        if len(lines) >= 4096:  # hashed in slices: one update per line costs more than the line
            h.update("".join(lines).encode("utf-8", "surrogatepass"))
            lines.clear()
    h.update("".join(lines).encode("utf-8", "surrogatepass"))
    return f'"zs{LAYOUT_VERSION}-{h.hexdigest()[:32]}"'
