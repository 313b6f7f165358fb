"""Where served files come from: one interface, two implementations (a local folder, an S3 prefix).

Selection, plan, formats, ranges and the HTTP layer see only `Source`: stat a
path, walk a folder, list one level, read a byte span, name a file's identity
for the CRC cache. `open_source` picks the implementation from the root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Protocol

from zipserve.core.node import Node, RelPath
from zipserve.sources import crc
from zipserve.sources.local.fs import Budget, FilePart, Folders, Root

if TYPE_CHECKING:
    from zipserve.settings import Settings

Span = tuple[Node, int, int]  # a file and a half-open byte span of it


class Reader(Protocol):
    """Reads spans of files for one response body; see Source.prefetch."""

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class CrcStore(Protocol):
    """CRCs shared by every machine that serves the same files (keys as Source.crc_key names them)."""

    def get(self, key: str) -> int | None: ...

    def get_many(self, keys: list[str]) -> dict[str, int]: ...

    def get_archive(self, keys: list[str]) -> dict[str, int]:
        """Given a stored ZIP's file keys, in order, return every CRC of them kept as one, or {}."""
        ...

    def put(self, key: str, value: int) -> None: ...

    def put_archive(self, keys: list[str], values: list[int]) -> None:
        """Given every CRC of a stored ZIP's files, in order, keep them as one (for get_archive)."""
        ...

    def forget(self, key: str) -> None: ...

    def close(self) -> None: ...


class Source(Protocol):
    """The files being served, under their own root: every path given is relative and parsed."""

    @property
    def crc_store(self) -> CrcStore | None:
        """Return the fleet-wide CRC store, when the source has one."""
        ...

    @property
    def whole_read(self) -> int:
        """Return the size up to which a file is fetched whole anyway (so may be held to learn its CRC)."""
        ...

    def stat(self, rel: RelPath) -> Node:
        """Given a relative path, return its Node; raise NotFound, Forbidden or a store error."""
        ...

    def walk(self, top: Node, budget: Budget) -> Iterator[Node]:
        """Given a Node, yield it and, for a folder, every file and folder below it (budget counts them)."""
        ...

    def children(self, folder: Node) -> list[Node]:
        """Given a folder Node, return its entries one level down."""
        ...

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        """Given a planned file and a byte span, yield its bytes; raise SourceChanged."""
        ...

    def prefetch(self, spans: Iterable[Span]) -> Reader:
        """Given the spans a body will read, in order, return the Reader it should read them with."""
        ...

    def file_part(self, node: Node, start: int, stop: int, *, exact: bool = False) -> FilePart | None:
        """Given a planned file and a byte span, return a FilePart a Wire can send unread, or None.

        `exact`: the bytes must be those a cached CRC describes (see fs.Root.send).
        """
        ...

    def crc_key(self, node: Node) -> str:
        """Given a file node, return its CRC cache key: it changes whenever the content may have."""
        ...

    def known_crc(self, node: Node) -> int | None:
        """Given a file node, return a CRC-32 the source already holds for it, or None."""
        ...

    def close(self) -> None: ...


class Local(Root):
    """A local folder as a Source (fs.Root plus the few things an object store needs)."""

    crc_store: CrcStore | None = None
    whole_read = 0  # the page cache makes a second read cheap: hold no more than a chunk

    def prefetch(self, spans: Iterable[Span]) -> Reader:
        # No read-ahead (the kernel does it on disk); files open in their checked folder.
        return InFolders(self)

    def crc_key(self, node: Node) -> str:
        return crc.key(node)

    def known_crc(self, node: Node) -> int | None:
        return None

    def close(self) -> None:
        pass


class Direct:
    """A Reader that reads every span when asked, straight from its source."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        return self.source.read(node, start, stop, chunk)

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


def span_key(node: Node, start: int, stop: int) -> tuple[RelPath, str, int, int, int]:
    return node.path, node.version, node.size, start, stop


class Budgeted(Protocol):
    """A reader's part of a memory budget for bytes fetched ahead (see s3read.Share)."""

    def take(self, size: int) -> bool: ...

    def give(self, size: int) -> None: ...

    def close(self) -> None: ...


class Ahead:
    """A Reader that fetches the small spans a body will read, a bounded window ahead of it.

    Each object read costs a round trip to the store; many small files read one
    after the other would spend most of their time waiting. Spans are fetched
    whole on the pool, at most `max_spans` at a time and as many bytes as the
    body's `share` of the process's read-ahead budget allows (so memory stays
    flat however many bodies run), and handed out when the body asks for that
    very span; any other read (a big file, a span out of turn) goes straight to
    the source. A fetch that failed raises when its span is read, not before.
    The window starts at two spans and doubles as spans are taken, so the first
    byte does not wait behind a whole window of fetches sharing the bandwidth.
    """

    def __init__(self, source: Reader, spans: Iterable[Span], fetch: Callable[..., list[bytes]],
                 pool: Executor, *, largest: int, max_spans: int, share: Budgeted) -> None:
        self.source, self.fetch, self.pool, self.share = source, fetch, pool, share
        self.max_spans = max_spans
        self._window = min(2, max_spans)
        self._todo: Iterator[Span] = (s for s in spans if 0 < s[2] - s[1] <= largest)
        self._queued: dict[tuple[RelPath, str, int, int, int], tuple[int, Future[list[bytes]]]] = {}
        self._next: Span | None = None
        self._fill()

    def _fill(self) -> None:
        while len(self._queued) < self._window:
            span = self._next or next(self._todo, None)
            if span is None:
                return
            key = span_key(*span)
            size = span[2] - span[1]
            if key not in self._queued:
                if not self.share.take(size):
                    self._next = span  # fetched when the budget has room again, or read in turn
                    return
                self._queued[key] = (size, self.pool.submit(self.fetch, *span))
            self._next = None

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        key = span_key(node, start, stop)
        queued = self._queued.pop(key, None)
        if queued is None:
            if self._next is not None and span_key(*self._next) == key:
                self._next = None  # read in turn: no need to fetch it ahead any more
            self._fill()
            return self.source.read(node, start, stop, chunk)
        self.share.give(queued[0])
        self._window = min(self.max_spans, 2 * self._window)
        self._fill()
        return iter(queued[1].result())

    def close(self) -> None:
        for _, future in self._queued.values():
            future.cancel()
        self._queued.clear()
        self._todo = iter(())
        self._next = None
        self.share.close()


def open_source(settings: Settings) -> Source:
    """Given settings, return the source their root names (a local folder or an S3 prefix)."""
    from zipserve.settings import is_s3

    if is_s3(settings.root):
        from zipserve.sources.s3.source import S3Source

        return S3Source.from_settings(settings)
    return Local(settings.root)  # type: ignore[arg-type]  # a Path once settings checked it
