"""The plain data that flows from the filesystem layer into the pure planner."""

from __future__ import annotations

from dataclasses import dataclass

RelPath = tuple[str, ...]

# Entry.packed when no compressed length is known for a deflated entry.
PACKED_UNKNOWN = -1
# What a packed-size lookup answers for an entry that `auto` wrote stored (it did not shrink).
PACKED_STORED = -2


# Plain slotted dataclasses, not frozen: a plan makes one Node and one Entry per
# file, and a frozen init costs about 2 us more each (a tenth of a small file's
# whole budget). Nothing writes to them after they are made.
@dataclass(slots=True)
class Node:
    """A file or folder under the root, as stat saw it when the request was planned."""

    path: RelPath
    kind: str  # "file" or "dir"
    size: int
    mtime_ns: int
    mode: int  # permission bits only
    dev: int
    ino: int
    ctime_ns: int
    # The object store's ETag of this version ("" on disk): reads send it as If-Match,
    # and it is part of every ETag built on the node.
    version: str = ""
    # Where a manifest's node comes from (see sources/mixed.py): "" the served root,
    # "s3://BUCKET" an object of the configured store, "http" an allowlisted URL (path:
    # the URL), "inline" bytes the server made itself (held in `inline`).
    origin: str = ""
    # A manifest's crc32 for a remote file (-1: none): it plans a stored ZIP's headers
    # without reading the file first; the bytes read must agree or the stream is cut.
    claimed_crc: int = -1
    inline: bytes = b""

    @property
    def shown(self) -> str:
        """Return the path as users wrote it, for logs and errors."""
        return "/".join(self.path)


@dataclass(slots=True)
class Entry:
    """One member of an archive: its name inside, where it comes from, how it is encoded."""

    name: str  # "/"-separated, no trailing slash, never empty
    node: Node
    deflate: bool = False  # ZIP: deflate this entry (or, under auto, try to)
    # The time its header shows, when a manifest gives one (-1: the node's own, which
    # reads still compare with the file's to see that it did not change).
    shown_mtime_ns: int = -1
    sealed: bool = False  # ZIP: encrypt this entry's data (WinZip AES-256, AE-2)
    # ZIP: a deflated entry's compressed length, as an earlier stream wrote it with the
    # plan's level and engine (PACKED_UNKNOWN: not known, so the archive is not sized).
    packed: int = PACKED_UNKNOWN

    @property
    def mtime_ns(self) -> int:
        """Return the modification time the archive shows for this entry."""
        return self.node.mtime_ns if self.shown_mtime_ns < 0 else self.shown_mtime_ns

    @property
    def is_dir(self) -> bool:
        return self.node.kind == "dir"
