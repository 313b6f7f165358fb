"""What a source is: the protocols every source implements, and the capabilities only some have.

Selection, plan, formats, ranges and the HTTP layer see only `Source`: stat a
path, walk a folder, list one level, read a byte span, name a file's identity
for the CRC cache. What only some sources can do is a capability of its own,
a runtime-checkable protocol asked for with isinstance (never the kind of
source): SendsUnread (spans sent by sendfile, unread), SharesCrcs (a CRC
store every server of a fleet shares), KnowsCrcs (the store keeps each
object's CRC) and FetchesWhole (each read is a request to a store, and small
files are fetched whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from zipserve.core.limits import Budget
from zipserve.core.node import Node, RelPath
from zipserve.sources.unread import FilePart

Span = tuple[Node, int, int]  # a file and a half-open byte span of it


class Reader(Protocol):
    """Reads spans of files for one response body; see Source.prefetch."""

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class Source(Protocol):
    """The files being served, under their own root: every path given is relative and parsed."""

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

    def crc_key(self, node: Node) -> str:
        """Given a file node, return its CRC cache key: it changes whenever the content may have."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SendsUnread(Protocol):
    """A source whose file spans a body may name instead of reading, for a Wire to send by sendfile."""

    def file_part(self, node: Node, start: int, stop: int, *, exact: bool = False) -> FilePart:
        """Given a planned file and a byte span, return it as a FilePart.

        `exact`: the bytes must be those a cached CRC describes (the source
        checks, before the last byte, that the file cannot have changed).
        """
        ...


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


@runtime_checkable
class SharesCrcs(Protocol):
    """A source that can keep the CRCs it learns where every server of a fleet finds them."""

    @property
    def crc_store(self) -> CrcStore | None:
        """Return the fleet-wide CRC store, or None when the settings name none."""
        ...


@runtime_checkable
class KnowsCrcs(Protocol):
    """A source whose store may keep a file's CRC-32 beside it, cheaper to ask than to read the file."""

    def known_crc(self, node: Node) -> int | None:
        """Given a file node, return the CRC-32 its store keeps for it, or None."""
        ...


@runtime_checkable
class FetchesWhole(Protocol):
    """A source where every read is a request to a store, and a small file is fetched in one.

    Holding such a file to learn its CRC costs nothing more than reading it,
    and every CRC known spares a later request (a page-cached disk read is
    cheap to repeat instead).
    """

    @property
    def whole_read(self) -> int:
        """Return the size up to which a file is fetched whole, in one request."""
        ...


class Direct:
    """A Reader that reads every span when asked, straight from its source."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        return self.source.read(node, start, stop, chunk)

    def close(self) -> None:
        pass
