"""Input chunks -> one raw deflate stream, its blocks deflated in parallel on the pool (pigz-style).

The input is cut into fixed-size blocks, each primed with the 32 KiB before it as
dictionary (RFC 1951 section 3.2: matches reach back at most 32 KiB) and ended with
a sync flush, so the blocks join byte-aligned into one valid deflate stream.
Output bytes depend only on the input, the level, the block size and where chunks
of at least 16 KiB begin inside a block (see segments).

The thread that reads the input only cuts it into blocks (views, no copy) and
hands them out; joining a block that spans chunks, its CRC-32 and its deflate run
on a worker, and the CRCs are combined in order (crc32_combine), so that thread
never reads the data again. Blocks go through one ordered window (ordered.py),
which a ZIP keeps open across its entries.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from isal import isal_zlib

from zipserve.encode.compress.block import deflate_block
from zipserve.encode.compress.engine import DEFAULT_BLOCK, Block, Engine, Pool, engine_for, window
from zipserve.encode.ordered import Item, Later, Stream, Task, in_order

WINDOW = 32 * 1024  # RFC 1951 3.2: the largest distance a match may reach back
MIN_SEGMENT = 16 * 1024  # the smallest part of a block deflated or stored on its own


@dataclass(frozen=True, slots=True)
class Deflated:
    """A block's deflate output, with the CRC-32 and length of the input it came from."""

    data: bytes
    crc: int
    size: int


def _joined(pieces: Sequence[Block]) -> Block:
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def deflate_job(engine: Engine, pieces: Sequence[Block], zdict: Sequence[Block], last: bool) -> Deflated:
    """Given a block (in pieces) and the 32 KiB before it, return its deflate output and CRC.

    Runs on a worker: joining a block that spans chunks, its CRC and its deflate all happen
    there, off the thread that reads the input and sends the output.  A block that spans
    chunks is deflated or stored segment by segment (see segments).
    """
    block = memoryview(_joined(pieces))
    before = _joined(zdict)
    cuts = segments([len(piece) for piece in pieces])
    out = [deflate_block(engine, block[lo:hi], _window_before(before, block, lo), last and hi == len(block))
           for lo, hi in itertools.pairwise(cuts)]
    return Deflated(out[0] if len(out) == 1 else b"".join(out), isal_zlib.crc32(block), len(block))


def segments(sizes: list[int]) -> list[int]:
    """Given the sizes of a block's pieces, return the offsets that cut it into segments.

    In a tar stream a chunk ends where a file does: random data followed by text in one
    deflate block gets Huffman codes fitted to neither, and stored whole it keeps the text's
    bytes (over the bench's tar, such blocks cost 1.1% of the input).  So a block is cut
    before each piece of at least MIN_SEGMENT bytes that starts at least MIN_SEGMENT after the
    last cut: a tar header sticks to the data before it, and small chunks never cut.  The
    output depends on where such chunks begin as well as on the input.
    """
    cuts, at = [0], 0
    for size in sizes:
        if at and size >= MIN_SEGMENT and at - cuts[-1] >= MIN_SEGMENT:
            cuts.append(at)
        at += size
    cuts.append(at)
    return cuts


def _window_before(zdict: Block, block: memoryview, start: int) -> Block:
    """Given the 32 KiB before a block, the block and an offset in it, return the 32 KiB before it."""
    if start == 0:
        return zdict
    if start >= WINDOW:
        return block[start - WINDOW : start]
    return bytes(zdict)[-(WINDOW - start) :] + block[:start]


def _blocks(chunks: Iterable[bytes], size: int) -> Iterator[tuple[list[memoryview], bool]]:
    """Given chunks of any sizes, return (pieces, is_last) pairs of blocks of exactly `size` bytes.

    A full block is held back until one more byte arrives, so the last block is always known
    as such (and the stream ends with Z_FINISH) whatever the chunk boundaries are.  A block is
    a list of views of the chunks that hold it, never a copy here.
    """
    parts: list[memoryview] = []  # the block being filled
    have = 0
    full: list[memoryview] | None = None  # a whole block, waiting to learn whether it is the last
    for chunk in chunks:
        # bytes never change under a view; anything else is copied once so it cannot.
        view = memoryview(chunk if isinstance(chunk, bytes) else bytes(chunk))
        while view:
            if full is not None:
                yield full, False
                full = None
            take = min(size - have, len(view))
            parts.append(view[:take])
            have += take
            view = view[take:]
            if have == size:
                full, parts, have = parts, [], 0
    yield (full, True) if full is not None else (parts, True)


def _tail(pieces: list[memoryview], size: int) -> list[memoryview]:
    """Given a block's pieces, return views of its last `size` bytes (the next block's dictionary)."""
    tail: list[memoryview] = []
    for piece in reversed(pieces):
        if size <= 0:
            break
        tail.append(piece[-size:])
        size -= len(tail[-1])
    tail.reverse()
    return tail


def _check_block_size(block_size: int) -> None:
    """Raise ValueError unless each block can carry a whole 32 KiB window for the next one."""
    if block_size < WINDOW:
        raise ValueError(f"block_size must be at least {WINDOW}, not {block_size!r}")


def deflate_items(
    chunks: Iterable[bytes], *, level: int, pool: Pool, crc: Crc, block_size: int = DEFAULT_BLOCK,
    outputs: list[tuple[int, int]] | None = None, before: bytes = b"",
) -> Iterator[Item]:
    """Given the input as chunks, return the items of one raw deflate stream of it (see ordered).

    Each block is a Task on the pool; crc takes in each block's CRC as its output is taken,
    and `outputs`, if given, each block's output length and CRC-32. An input of one block
    is deflated in turn on the taking thread: the pool would only add a hand-off. To make the rest of a
    stream from a block boundary on, give the input from there (cut where the whole input's
    chunks were) and, as `before`, the 32 KiB before it: the blocks come out as they did.
    Raises ValueError for a level outside 1..9 or a block_size under 32 KiB.
    """
    engine = engine_for(level)
    _check_block_size(block_size)
    zdict = [memoryview(before[-WINDOW:])] if before else []
    return _deflate_items(engine, _blocks(chunks, block_size), pool, crc, outputs, zdict)


def _deflate_items(engine: Engine, blocks: Iterator[tuple[list[memoryview], bool]], pool: Pool, crc: Crc,
                   outputs: list[tuple[int, int]] | None, zdict: list[memoryview]) -> Iterator[Item]:
    def take(done: Deflated) -> tuple[bytes]:
        crc.combine(done.crc, done.size)
        if outputs is not None:
            outputs.append((len(done.data), isal_zlib.crc32(done.data)))
        return (done.data,)

    for index, (pieces, last) in enumerate(blocks):
        if last and index == 0:
            yield _inline(take, partial(deflate_job, engine, pieces, zdict, last))
            return
        future = pool.submit(deflate_job, engine, pieces, zdict, last)
        yield Task(future, take, sum(map(len, pieces)))
        zdict = _tail(pieces, WINDOW)


def _inline(take: Callable[[Deflated], tuple[bytes]], job: Callable[[], Deflated]) -> Later:
    """Given a job and what its result becomes, return it as output made in turn, on this thread."""
    return Later(lambda: take(job()))


def deflate_raw(
    chunks: Iterable[bytes], *, level: int, pool: Pool, block_size: int = DEFAULT_BLOCK,
    crc: Crc | None = None,
) -> Stream:
    """Given the input as chunks of any sizes, return one raw deflate stream of it, block by block.

    Call it from a worker thread, never from the event loop.  At most `window(pool)` bytes of
    input are in flight, and input is read only as output is taken (the backpressure); crc, if
    given, holds the input's CRC-32 and size once the stream is done.  Raises ValueError for a
    level outside 1..9 or a block_size under 32 KiB.
    """
    items = deflate_items(chunks, level=level, pool=pool, crc=crc or Crc(), block_size=block_size)
    return in_order(items, limit=window(pool, block_size))


class Crc:
    """Running CRC-32 (ISA-L's, the fastest at hand) and size of the data seen so far."""

    __slots__ = ("size", "value")

    def __init__(self) -> None:
        self.value = 0
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        """Given the next piece of data, fold it into the CRC and size."""
        self.value = isal_zlib.crc32(data, self.value)
        self.size += len(data)

    def combine(self, crc: int, size: int) -> None:
        """Given the CRC-32 and size of the next piece of data, fold them in (no data needed)."""
        self.value = isal_zlib.crc32_combine(self.value, crc, size)
        self.size += size

