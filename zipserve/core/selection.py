"""Requested names -> safe relative paths, archive naming and options (pure).

Nothing here touches the disk: a path is a tuple of name parts relative to the
served root, ``()`` being the root itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zipserve.core import formats
from zipserve.core.node import RelPath
from zipserve.errors import BadRequest, Forbidden

COMPRESSIONS = ("auto", "store", "deflate")
# Entry names as the tree has them, or made valid on Windows (see core/winnames.py).
NAMES = ("keep", "windows")
# A SHA256SUMS entry appended (ZIP: streamed, not sized; tar: a last entry of the layout).
CHECKSUMS = ("none", "sha256")
# ZIP entries encrypted with WinZip AES-256 (AE-2) under a password that never travels in a URL.
ENCRYPTIONS = ("none", "aes256")

_DRIVE = re.compile(r"^[A-Za-z]:")
_DIGITS = re.compile(r"^[0-9]{1,9}$")
MAX_NAME_BYTES = 255


def parse_path(raw: str, *, max_bytes: int = 4096) -> RelPath:
    """Given a requested path, return its parts; raise BadRequest or Forbidden.

    Refuses what could leave the root or be read two ways: ``..``, absolute
    paths, backslashes, drive letters, NUL. ``""``, ``.`` and ``/`` mean the root.
    """
    if raw in ("", ".", "/"):
        return ()
    if "\x00" in raw:
        raise BadRequest("path contains a NUL byte", path=_shown(raw))
    if not _is_utf8(raw):
        # Lone surrogates (from JSON "\ud800" or undecodable bytes) name no file
        # we serve (the walk skips non-UTF-8 names) and cannot be echoed back.
        raise BadRequest("path is not valid UTF-8", path=_shown(raw))
    if len(raw.encode("utf-8", "surrogatepass")) > max_bytes:
        raise BadRequest(f"path is longer than {max_bytes} bytes", path=_shown(raw))
    if "\\" in raw or raw.startswith("/") or _DRIVE.match(raw):
        raise Forbidden("path must be relative to the served folder", path=_shown(raw))
    parts = tuple(p for p in raw.split("/") if p not in ("", "."))
    if ".." in parts:
        raise Forbidden("path must not contain '..'", path=_shown(raw))
    for part in parts:
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise BadRequest(f"a name in the path is longer than {MAX_NAME_BYTES} bytes",
                             path=_shown(raw))
    return parts


def _is_utf8(raw: str) -> bool:
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(raw: str) -> str:
    """Given a raw path, return a bounded, printable form for error messages."""
    text = raw.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    return text if len(text) <= 200 else text[:200] + "..."


def split_extension(raw: str, fmt: str | None) -> tuple[str, str]:
    """Given ``{path}.{ext}`` from an archive URL and an optional ?format=, return (path, format).

    The longest known extension wins (``x.tar.gz`` is ``x`` as tar.gz, not
    ``x.tar`` as gz); with ``format`` given, a matching extension is stripped and
    any other name is taken whole.
    """
    if fmt is not None:
        row = formats.get(parse_format(fmt))
        stem, _ = formats.split(raw, row) or (raw, row)
        return stem, row.name
    found = formats.split(raw)
    if found is None:
        raise BadRequest(f"archive URL must end in {formats.EXTENSION_LIST}", path=_shown(raw))
    return found[0], found[1].name


def parse_format(value: str) -> str:
    """Given a format name or extension, return the canonical format; raise BadRequest."""
    row = formats.lookup(value)
    if row is None:
        raise BadRequest(f"unknown format {value[:40]!r}; use one of: {', '.join(formats.NAMES)}")
    return row.name


@dataclass(frozen=True)
class Options:
    """Archive options that shape the bytes (all part of the ETag)."""

    format: str = formats.DEFAULT  # a canonical name (see formats.FORMATS)
    compression: str = "auto"
    level: int = 1
    names: str = "keep"  # one of NAMES
    checksums: str = "none"  # one of CHECKSUMS
    encryption: str = "none"  # one of ENCRYPTIONS (the password is not an option: see plan.Sealing)


def parse_options(fmt: str, compression: str | None, level: str | None, default_level: int,
                  names: str | None = None, checksums: str | None = None,
                  encryption: str | None = None) -> Options:
    """Given raw option values, return Options; raise BadRequest for bad ones."""
    # ?format= and the POSTed format arrive raw ("tgz", "ZIP", "rar"): make it canonical here.
    fmt = parse_format(fmt)
    comp = (compression or "auto").lower()
    if comp not in COMPRESSIONS:
        raise BadRequest(f"compression must be one of: {', '.join(COMPRESSIONS)}")
    lvl = default_level
    if level not in (None, ""):
        # A strict pattern: int() would also take '+5', '1_0' and non-ASCII digits.
        if not _DIGITS.match(level) or not 1 <= int(level) <= 9:
            raise BadRequest("level must be a whole number from 1 to 9")
        lvl = int(level)
    naming = (names or "keep").lower()
    if naming not in NAMES:
        raise BadRequest(f"names must be one of: {', '.join(NAMES)}")
    sums = (checksums or "none").lower()
    if sums not in CHECKSUMS:
        raise BadRequest(f"checksums must be one of: {', '.join(CHECKSUMS)}")
    if sums != "none" and not formats.get(fmt).sums:
        raise BadRequest(f"checksums=sha256 is not served for {fmt}: use zip or a tar format")
    crypt = (encryption or "none").lower()
    if crypt not in ENCRYPTIONS:
        raise BadRequest(f"encryption must be one of: {', '.join(ENCRYPTIONS)}")
    if crypt != "none" and fmt != "zip":
        raise BadRequest("encryption (a password) is served for zip only")
    return Options(format=fmt, compression=comp, level=lvl, names=naming, checksums=sums,
                   encryption=crypt)


@dataclass(frozen=True)
class Selection:
    """What to archive: the selected paths and the folder their names are relative to."""

    paths: tuple[RelPath, ...]
    base: RelPath

    def name_of(self, path: RelPath) -> RelPath:
        """Given a selected path (or one below it), return its name in the archive."""
        return path[len(self.base):]


def make_selection(paths: list[RelPath]) -> Selection:
    """Given parsed paths, return the Selection; raise BadRequest when empty.

    Names are relative to the deepest folder holding every path, so a selected
    folder keeps its own name; the root, when selected, puts its entries on top.
    """
    if not paths:
        raise BadRequest("empty selection: name at least one path")
    unique = tuple(sorted(set(paths)))
    if () in unique:
        return Selection(paths=((),), base=())
    # Drop paths already inside another selected path: never an entry twice.
    kept = tuple(p for p in unique if not any(p[: len(q)] == q and p != q for q in unique))
    return Selection(paths=kept, base=_common_prefix([p[:-1] for p in kept]))


def _common_prefix(paths: list[RelPath]) -> RelPath:
    """Given paths, return the longest prefix they share."""
    first = paths[0]
    n = len(first)
    for p in paths[1:]:
        n = min(n, len(p))
        for i in range(n):
            if p[i] != first[i]:
                n = i
                break
    return first[:n]


def download_name(selection: Selection, fmt: str, name: str | None) -> str:
    """Given a selection, its format and an optional ?name=, return the download file name."""
    ext = "." + formats.get(fmt).extension
    if name:
        stem = name.replace("/", "_").replace("\\", "_").strip()
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    elif len(selection.paths) == 1 and selection.paths[0]:
        stem = selection.paths[0][-1]
    elif selection.base:
        stem = selection.base[-1]
    else:
        stem = "archive"
    return (stem or "archive") + ext
