"""Deflated ZIP entries with known lengths: learning the lengths, and making one entry's data again.

Deflate output depends on the input, the level, the engine and its version,
the block size and where read chunks begin (see compress/deflate.py); the
profile names all but the input, so a length kept under a file's identity key
and the profile is the length the next stream writes. The streamed writer
teaches every entry it finishes (Packs.learn), and a large one's length
block by block; a sized body makes a deflated entry's data by deflating the
file again exactly as the streamed writer does, from its first byte or from
the block holding the span's start, keeping only the span (packed_data).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata

from zipserve.core.node import PACKED_UNKNOWN, Entry, Node
from zipserve.core.plan import Packing
from zipserve.core.selection import Options
from zipserve.encode import compress
from zipserve.encode.compress.deflate import WINDOW
from zipserve.encode.ordered import Stream, in_order
from zipserve.encode.reads import Reads
from zipserve.errors import SourceChanged
from zipserve.sources.base import Reader
from zipserve.sources.crc import crc32
from zipserve.sources.packed import PackedStore

Blocks = list[tuple[int, int]]  # a large entry's deflate output block by block: length, CRC-32
_PACKAGES = {"isal": "isal", "zlib-ng": "zlib-ng", "zlib": ""}


def _version(engine: str) -> str:
    """Given an engine name, return the version of the package that deflates for it."""
    package = _PACKAGES.get(engine, "")
    if not package:
        import zlib
        return zlib.ZLIB_RUNTIME_VERSION
    return metadata.version(package)


class Packs:
    """Compressed lengths of deflated ZIP entries, in a PackedStore under identity key and profile."""

    def __init__(self, store: PackedStore, key_of: Callable[[Node], str], chunk: int) -> None:
        self.store, self.key_of, self.chunk = store, key_of, chunk
        self._versions: dict[str, str] = {}

    def profile(self, options: Options) -> str:
        """Given a ZIP's options, return what its deflated bytes depend on besides the files."""
        engine = compress.engine_for(options.level).name
        if engine not in self._versions:
            self._versions[engine] = _version(engine)
        return (f"{engine}-{self._versions[engine]}/level{options.level}/{options.compression}"
                f"/block{compress.DEFAULT_BLOCK}/chunk{self.chunk}")

    def learn(self, node: Node, options: Options, value: int) -> None:
        """Given a file, a ZIP's options and its entry's compressed length (or PACKED_STORED), keep it."""
        self.store.put(self._key(node, options), value)

    def learn_blocks(self, node: Node, options: Options, blocks: Blocks) -> None:
        """Given a large file, a ZIP's options and its entry's blocks (output length, CRC), keep them."""
        self.store.put_blocks(self._key(node, options), blocks)

    def blocks(self, node: Node, options: Options) -> Blocks | None:
        """Given a large file and a ZIP's options, return its entry's blocks, or None."""
        return self.store.blocks(self._key(node, options))

    def data(self, reads: Reads, entry: Entry, options: Options, crc: int, span: tuple[int, int],
             held: bytes | None, reader: Reader) -> Iterator[bytes]:
        """Given a deflated entry of known length and CRC, yield the span of its data (see packed_data).

        Made from the block holding the span's start when the entry's blocks
        are known. A length that proves wrong is forgotten, so the next plan of
        the entry is unsized, and SourceChanged raised: the body is cut.
        """
        lo, hi = span
        blocks = self.blocks(entry.node, options) if lo else None
        try:
            yield from packed_data(reads, entry, options.level, crc, lo, hi, held, reader, blocks)
        except SourceChanged:
            self.forget(entry.node, options)
            raise

    def _key(self, node: Node, options: Options) -> str:
        return f"{self.key_of(node)}\0{self.profile(options)}"

    def flush(self) -> None:
        """Write the lengths kept so far where other processes see them."""
        self.store.flush()

    def forget(self, node: Node, options: Options) -> None:
        """Given a file whose entry did not deflate to its kept length under a ZIP's options, drop it."""
        self.store.forget(self._key(node, options))

    def lookup(self, nodes: Sequence[Node], options: Options) -> list[int]:
        """Given files and a ZIP's options, return each one's known length, PACKED_STORED or _UNKNOWN."""
        profile = self.profile(options)
        keys = [f"{self.key_of(n)}\0{profile}" for n in nodes]
        found = self.store.get_many(keys)
        return [found.get(k, PACKED_UNKNOWN) for k in keys]

    def packing(self, options: Options) -> Packing:
        """Given a ZIP's options, return what a plan looks its entries' lengths up with."""
        return Packing(self.profile(options), lambda nodes: self.lookup(nodes, options))


def packed_data(reads: Reads, entry: Entry, level: int, crc: int, lo: int, hi: int,
                held: bytes | None, reader: Reader, blocks: Blocks | None = None) -> Iterator[bytes]:
    """Given a deflated entry of known length and CRC, yield bytes [lo, hi) of its compressed data.

    The file is deflated again as the streamed writer does (whole when small,
    else block by block from chunks read as it reads them): from its start, or
    given its ``blocks`` from the block holding ``lo``, each block's output
    then checked against its kept length and CRC. ``held`` is its data when
    the body read it already. When the whole entry is made, its CRC and
    length are checked before the last bytes leave. A mismatch raises
    SourceChanged, so a changed file never completes an entry.
    """
    node = entry.node
    if node.size <= compress.DEFAULT_BLOCK:
        data = held if held is not None else b"".join(reader.read(node, 0, node.size, node.size))
        out = compress.deflate_bytes(data, level=level)
        _check(entry, crc32(data), len(data), crc, len(out))
        return iter((out[lo:hi],))
    if blocks is not None and sum(n for n, _ in blocks) != entry.packed:
        blocks = None  # not this entry's: made from the start, checked as a whole
    if blocks and lo >= blocks[0][0]:
        return _resumed(reads, entry, level, (lo, hi), blocks)
    running = compress.Crc()
    items = compress.deflate_items(reads.data_from(node, 0), level=level, pool=reads.pool, crc=running)

    def whole(at: int) -> None:
        _check(entry, running.value, running.size, crc, at)
    return _span(entry, in_order(items, limit=compress.window(reads.pool)), (0, 0), (lo, hi), blocks, whole)


def _resumed(reads: Reads, entry: Entry, level: int, span: tuple[int, int],
             blocks: Blocks) -> Iterator[bytes]:
    """Given a large deflated entry and its blocks, yield the span made from the block holding its start.

    The file is read from a boundary before that block where its chunks are
    cut as a read from the start cuts them (Reads.grain) and the 32 KiB before the
    block become its dictionary; each block's output is checked against the
    kept one (the file's CRC needs the bytes before, not read).
    """
    offsets = list(itertools.accumulate((n for n, _ in blocks), initial=0))
    k = bisect.bisect_right(offsets, span[0]) - 1
    begin = k * compress.DEFAULT_BLOCK  # in the file
    first = max(begin - WINDOW, 0) // reads.grain * reads.grain
    before, rest = _split(reads.data_from(entry.node, first), begin - first)
    items = compress.deflate_items(rest, level=level, pool=reads.pool, crc=compress.Crc(), before=before)

    def whole(at: int) -> None:
        if at != entry.packed:
            raise SourceChanged(entry.node.shown, "deflates to another length than the archive planned")
    return _span(entry, in_order(items, limit=compress.window(reads.pool)), (k, offsets[k]), span,
                 blocks, whole)


def _span(entry: Entry, stream: Stream, first: tuple[int, int], span: tuple[int, int],
          blocks: Blocks | None, whole: Callable[[int], None]) -> Iterator[bytes]:
    """Given an entry's deflate stream from a block on (its index and offset), yield [lo, hi) of it.

    Each block's output (one chunk of the stream) is checked against ``blocks``
    when given; a span that runs to the entry's end calls ``whole`` with the
    stream's length before its last bytes leave.
    """
    (k, at), (lo, hi) = first, span
    pending = b""
    try:
        for j, chunk in enumerate(stream, k):
            if blocks is not None and (j >= len(blocks) or blocks[j] != (len(chunk), crc32(chunk))):
                raise SourceChanged(entry.node.shown, "deflates to other bytes than the archive planned")
            start, at = at, at + len(chunk)
            if at <= lo:
                continue  # before the span: made only to reach it
            part = chunk[max(lo - start, 0): min(hi, at) - start]
            if at >= hi and hi < entry.packed:
                yield pending + part  # the span ends inside the entry: nothing whole to check
                return
            if pending:
                yield pending
            pending = part
        whole(at)
        yield pending
    finally:
        stream.close()


def _split(chunks: Iterator[bytes], skip: int) -> tuple[bytes, Iterator[bytes]]:
    """Given chunks and a count, return the last 32 KiB of the first `skip` bytes, and the chunks after."""
    tail, left = b"", skip
    for chunk in chunks:
        if left >= len(chunk):
            tail, left = (tail + chunk)[-WINDOW:], left - len(chunk)
            continue
        tail += chunk[:left]
        return tail[-WINDOW:], itertools.chain([chunk[left:]], chunks)
    return tail[-WINDOW:], iter(())


def _check(entry: Entry, crc: int, size: int, expected: int, packed: int) -> None:
    """Raise SourceChanged unless an entry's data and compressed length are those it was planned with."""
    if crc != expected or size != entry.node.size:
        raise SourceChanged(entry.node.shown, "content differs from its CRC in the archive")
    if packed != entry.packed:
        raise SourceChanged(entry.node.shown, "deflates to another length than the archive planned")
