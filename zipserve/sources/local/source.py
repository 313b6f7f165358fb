"""A local folder as a Source: confined stat, walk and reads, and spans a Wire sends unread.

The rooms: confine.py keeps every path and opened file inside the root,
walk.py stats and lists, read.py reads planned files and sends spans by
sendfile. A body reads its files in their checked folders (InFolders), with
no read-ahead: the kernel does it on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from zipserve.core.limits import Budget
from zipserve.core.node import Node, RelPath
from zipserve.sources.base import Reader, Span
from zipserve.sources.local import read as reading
from zipserve.sources.local import walk as walking
from zipserve.sources.local.confine import Folders, Root
from zipserve.sources.unread import FilePart, Sink


def crc_key(node: Node) -> str:
    """Given a local file node, return its cache key: any write, rename over, chmod or touch changes it."""
    return f"local|{node.dev}|{node.ino}|{node.size}|{node.mtime_ns}|{node.ctime_ns}"


class Local(Root):
    """A served folder as a Source, whose file spans a body may name instead of reading (SendsUnread)."""

    def stat(self, rel: RelPath) -> Node:
        """Given a relative path, return its Node; raise NotFound or Forbidden."""
        return walking.stat(self, rel)

    def walk(self, top: Node, budget: Budget) -> Iterator[Node]:
        """Given a Node, yield it and, for a folder, every file and folder below it; raise TooLarge."""
        return walking.walk(self, top, budget)

    def children(self, folder: Node) -> list[Node]:
        """Given a folder Node, return its safe children, as a walk would see them."""
        return walking.children(self, folder)

    def read(self, node: Node, start: int, stop: int, chunk: int,
             folders: Folders | None = None) -> Iterator[bytes]:
        """Given a planned file and a byte span, return an iterator of its bytes; raise SourceChanged."""
        return reading.read(self, node, start, stop, chunk, folders)

    def prefetch(self, spans: Iterable[Span]) -> Reader:
        """Return a Reader that opens each file in its checked folder (the spans need no fetching)."""
        return InFolders(self)

    def crc_key(self, node: Node) -> str:
        return crc_key(node)

    def file_part(self, node: Node, start: int, stop: int, *, exact: bool = False) -> FilePart:
        """Given a planned file and a byte span, return it as a FilePart a body may name (see send)."""
        return FilePart(self, node, start, stop, exact)

    def send(self, node: Node, start: int, stop: int, sink: Sink, *, exact: bool = False) -> None:
        """Given a planned file, a byte span and a Sink, send the span by sendfile; raise SourceChanged."""
        reading.send(self, node, start, stop, sink, exact=exact)

    def close(self) -> None:
        pass


class InFolders:
    """A Reader of local files that opens each in its folder's fd (see confine.Folders)."""

    def __init__(self, root: Root) -> None:
        self.root, self.folders = root, Folders(root)

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        return reading.read(self.root, node, start, stop, chunk, self.folders)

    def close(self) -> None:
        self.folders.close()
