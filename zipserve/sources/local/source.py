"""A local folder as a Source: fs.Root's confined stat, walk and reads, plus what a body needs.

A body reads its files in their checked folders (InFolders, see fs.Folders),
with no read-ahead: the kernel does it on disk. Spans of its files may be sent
unread (SendsUnread): a Wire sends them from the page cache by sendfile.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from zipserve.core.node import Node
from zipserve.sources.base import Reader, Span
from zipserve.sources.local.fs import Folders, Root
from zipserve.sources.unread import FilePart


def crc_key(node: Node) -> str:
    """Given a local file node, return its cache key: any write, rename over, chmod or touch changes it."""
    return f"local|{node.dev}|{node.ino}|{node.size}|{node.mtime_ns}|{node.ctime_ns}"


class Local(Root):
    """A local folder as a Source, whose file spans a body may name instead of reading."""

    def prefetch(self, spans: Iterable[Span]) -> Reader:
        """Return a Reader that opens each file in its checked folder (the spans need no fetching)."""
        return InFolders(self)

    def crc_key(self, node: Node) -> str:
        return crc_key(node)

    def file_part(self, node: Node, start: int, stop: int, *, exact: bool = False) -> FilePart:
        """Given a planned file and a byte span, return it as a FilePart a body may name (see Root.send)."""
        return FilePart(self, node, start, stop, exact)

    def close(self) -> None:
        pass


class InFolders:
    """A Reader of local files that opens each in its folder's fd (see fs.Folders)."""

    def __init__(self, root: Root) -> None:
        self.root, self.folders = root, Folders(root)

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        return self.root.read(node, start, stop, chunk, self.folders)

    def close(self) -> None:
        self.folders.close()
