"""Archive formats: one registry row each, all a URL, a plan and an encoder need to know of it (pure).

A new format is a row here (its layout and records beside zip.py and tar.py)
and, in encode/, a body for its encoder kind; nothing else compares format
names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zipserve.core.formats import tar, zip, zippacked
from zipserve.core.formats.layout import Layout, Piece
from zipserve.core.node import Entry

# Given the entries, the layout, a metadata piece and (ZIP) its entry's CRC, return its bytes.
Meta = Callable[[Sequence[Entry], Layout, Piece, int], bytes]


@dataclass(frozen=True)
class Format:
    """An archive format: how URLs name it, how it is served, planned and encoded."""

    name: str  # canonical: ?format=, the ETag, error messages
    extension: str  # what a download's name ends with, after a dot
    content_type: str
    # Given the entries, return whether the whole archive's size is known before sending
    # (Content-Length, a strong ETag, Range).
    sized: Callable[[Sequence[Entry]], bool]
    # Given the entries, return where each byte of the archive (before any compression of
    # the whole stream) comes from, or None when that is not known before sending.
    layout: Callable[[list[Entry]], Layout | None]
    meta: Meta | None  # renders the layout's metadata pieces
    encoder: str  # the kind of body encode/ writes for it when it is not sized
    aliases: tuple[str, ...] = ()  # other URL extensions naming it
    deflate_per_entry: bool = False  # whether the plan chooses store or deflate per entry
    # ZIP (APPNOTE 4.3.7): a stored entry's local header carries its CRC-32, which a sized
    # body must know before the entry's data.
    crc_in_header: bool = False
    folders_as: str = ""  # set when it holds exactly one file: the format named for more
    # checksums=sha256: "layout" (SHA256SUMS is a last entry of the layout, its size known
    # from the names), "streamed" (so too when the archive is sized, else the streamed body
    # adds it), "" (refused).
    sums: str = ""

    @property
    def extensions(self) -> tuple[str, ...]:
        """Return every extension an archive URL may end with to name this format."""
        return (self.extension, *self.aliases)

    @property
    def one_file(self) -> bool:
        """Return whether an archive of this format holds exactly one file (no folder, no selection)."""
        return bool(self.folders_as)


def _always(entries: Sequence[Entry]) -> bool:
    return True


def _never(entries: Sequence[Entry]) -> bool:
    return False


def _none_deflated(entries: Sequence[Entry]) -> bool:
    """Given ZIP entries, return whether all are stored."""
    return not any(e.deflate for e in entries)


def _zip_sized(entries: Sequence[Entry]) -> bool:
    """Given ZIP entries, return whether all are stored or deflated to a length known beforehand."""
    return _none_deflated(entries) or zippacked.known(entries)


def _zip_layout(entries: list[Entry]) -> Layout | None:
    if _none_deflated(entries):
        return zip.layout(entries)
    return zippacked.layout(entries) if zippacked.known(entries) else None


def _no_layout(entries: list[Entry]) -> None:
    return None


FORMATS: tuple[Format, ...] = (
    Format("zip", "zip", "application/zip", sized=_zip_sized, layout=_zip_layout, meta=zippacked.meta,
           encoder="zip", deflate_per_entry=True, crc_in_header=True, sums="streamed"),
    Format("tar", "tar", "application/x-tar", sized=_always, layout=tar.layout, meta=tar.meta,
           encoder="tar", sums="layout"),
    Format("tar.gz", "tar.gz", "application/gzip", sized=_never, layout=tar.layout, meta=tar.meta,
           encoder="gzip-tar", aliases=("tgz",), sums="layout"),
    Format("tar.zst", "tar.zst", "application/zstd", sized=_never, layout=tar.layout, meta=tar.meta,
           encoder="zstd-tar", sums="layout"),
    Format("gz", "gz", "application/gzip", sized=_never, layout=_no_layout, meta=None,
           encoder="gzip-file", folders_as="tar.gz"),
)
DEFAULT = FORMATS[0].name
NAMES = tuple(f.name for f in FORMATS)
BY_NAME = {f.name: f for f in FORMATS}
# URL extension -> format, longest first: "x.tar.gz" is x as tar.gz, not x.tar as gz.
BY_EXTENSION = dict(sorted(((ext, f) for f in FORMATS for ext in f.extensions),
                           key=lambda pair: -len(pair[0])))
_EXTS = [f".{ext}" for f in FORMATS for ext in f.extensions]
EXTENSION_LIST = ", ".join(_EXTS[:-1]) + " or " + _EXTS[-1]  # for messages: ".zip, ... or .gz"


def get(name: str) -> Format:
    """Given a canonical format name, return its row; raise KeyError for any other."""
    return BY_NAME[name]


def lookup(value: str) -> Format | None:
    """Given a format name or URL extension in any case, with or without its dot, return its row or None."""
    key = value.lower().lstrip(".")
    return BY_NAME.get(key) or BY_EXTENSION.get(key)


def split(raw: str, fmt: Format | None = None) -> tuple[str, Format] | None:
    """Given a name ending in an extension (of `fmt` when given), return (stem, format), or None.

    The longest extension wins.
    """
    for ext, row in BY_EXTENSION.items():
        if (fmt is None or row is fmt) and raw.endswith("." + ext):
            return raw[: -len(ext) - 1], row
    return None
