"""A body's reads of planned files: through the source, their CRCs checked or learned on the way.

The sized bodies (encoder.py) and the streamed ZIP (streamzip.py) both read
through one Reads; the streamed ZIP gets only this, never the whole Encoder.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable, Iterator
from typing import Protocol

from zipserve.core.node import Node
from zipserve.core.selection import Options
from zipserve.encode.compress import Pool
from zipserve.errors import SourceChanged
from zipserve.sources.base import FetchesWhole, Reader, Source, Span
from zipserve.sources.crc import Crcs, crc32


class Learns(Protocol):
    """What keeps deflated ZIP entries' compressed lengths (encode/packing.py's Packs)."""

    def learn(self, node: Node, options: Options, value: int) -> None: ...

    def learn_blocks(self, node: Node, options: Options, blocks: list[tuple[int, int]]) -> None: ...

    def flush(self) -> None: ...


class Reads:
    """Reads planned files through a source and a CRC cache, `chunk` bytes at a time.

    `hold`: files up to this size are read once, whole, for both their CRC and
    their bytes. `pool`: the compression workers the bodies share. `packs`:
    what keeps a deflated ZIP entry's compressed length (encode/packing.py).
    """

    def __init__(self, root: Source, crcs: Crcs, pool: Pool, chunk: int, hold: int,
                 packs: Learns | None = None) -> None:
        self.root, self.crcs, self.pool, self.chunk, self.hold = root, crcs, pool, chunk, hold
        self.packs = packs
        # Reads from a multiple of this cut their chunks where a read from 0 does: a chunk
        # boundary, and where a store's reads start a request (a span of `whole_read`).
        self.grain = math.lcm(chunk, root.whole_read) if isinstance(root, FetchesWhole) else chunk

    def prefetch(self, spans: Iterable[Span]) -> Reader:
        """Given the spans a body will read, in order, return the Reader it should read them with."""
        return self.root.prefetch(spans)

    def data(self, node: Node, lo: int = 0, hi: int | None = None, *,
             expected: int | None = None, learn: bool = False,
             reader: Reader | None = None) -> Iterator[bytes]:
        """Given a file and a span of it, yield its bytes.

        When the span is the whole file its CRC is computed on the way: checked
        against ``expected`` before the last chunk leaves (a mismatch raises
        SourceChanged), and stored in the cache when ``learn`` is set. ``reader``
        is the body's (see prefetch), else the source itself.
        """
        hi = node.size if hi is None else hi
        whole = lo == 0 and hi == node.size
        value, done = 0, lo
        for data in (reader or self.root).read(node, lo, hi, self.chunk):
            done += len(data)
            if whole:
                value = crc32(data, value)
                if done == hi:
                    self.settle(node, value, expected, learn)
            yield data
        if whole and hi == 0:
            self.settle(node, 0, expected, learn)

    def settle(self, node: Node, value: int, expected: int | None, learn: bool) -> None:
        """Given a read CRC, check it against `expected`, keep it if `learn`; raise SourceChanged."""
        if expected is not None and value != expected:
            self.crcs.cache.forget(node)
            raise SourceChanged(node.shown, "content differs from its CRC in the archive header")
        if learn and node.size:
            self.crcs.cache.put(node, value)

    def data_from(self, node: Node, lo: int) -> Generator[bytes, None, None]:
        """Given a file and an offset, return a lazy reader of the rest (opens nothing when empty)."""
        if lo < node.size:
            yield from self.root.read(node, lo, node.size, self.chunk)

    def crc_of(self, node: Node) -> int:
        """Given a file node, return its CRC-32 (cached, else learned); raise SourceChanged."""
        return self.crcs.of(node)

    def packed(self, node: Node, options: Options, value: int) -> None:
        """Given a file, a ZIP's options and the length its deflated entry was sent with, keep it."""
        if self.packs is not None:
            self.packs.learn(node, options, value)

    def packed_blocks(self, node: Node, options: Options, blocks: list[tuple[int, int]]) -> None:
        """Given a large file, a ZIP's options and its deflated entry's blocks (length, CRC), keep them."""
        if self.packs is not None:
            self.packs.learn_blocks(node, options, blocks)

    def packed_done(self) -> None:
        """Make the lengths kept by one body visible to every process (they are written in batches)."""
        if self.packs is not None:
            self.packs.flush()

    def learned(self, node: Node, crc: int) -> None:
        """Given a file node and the CRC-32 its bytes were just sent with, keep it in the cache."""
        self.crcs.cache.put(node, crc)
