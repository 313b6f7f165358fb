"""Compression engine shared by every compressed format: deflate (ZIP entries, gzip) and zstd.

Deflate runs pigz-style: the input is cut into fixed-size blocks that the pool compresses in
parallel, each primed with the 32 KiB before it as dictionary (RFC 1951 section 3.2: matches
reach back at most 32 KiB) and ended with a sync flush, so the blocks join byte-aligned into
one valid deflate stream.  Output bytes depend only on the input, the level, the block size and
where chunks of at least 16 KiB begin inside a block (see _segments).

Measured on 2 shared cores (bench/bench_engines.py; MB/s of input on one thread, ratio =
output/input; "logs" is the bench's synthetic text, "py" Python's own sources as a real check):

    engine   lvl  logs MB/s  ratio  py MB/s  ratio  random MB/s  ratio
    isal     1       385     0.283    368    0.269      667      1.001
    isal     2       384     0.280    352    0.265      674      1.001
    isal     3       274     0.277    259    0.253      301      1.001
    zlib-ng  1       229     0.367    209    0.338       74      1.055
    zlib-ng  3       112     0.262    106    0.240       52      1.000
    zlib-ng  4        83     0.247     82    0.231       52      1.000
    zlib-ng  5        70     0.241     75    0.224       49      1.000
    zlib-ng  6        45     0.235     46    0.223       49      1.000
    zlib-ng  7        25     0.223     31    0.221       50      1.000
    zlib-ng  8        15     0.223     14    0.219       51      1.000
    zlib-ng  9        26     0.228     26    0.219       27      1.000
    zlib     6        31     0.228     26    0.222       43      1.000
    zlib     9        13     0.224      7    0.219       38      1.000

Levels 1-3 are ISA-L 1-3; 4-9 are zlib-ng's own 4-9.  Level 6 was zlib-ng 5 until the
bench's text ran 4.3% behind zlib 6 with it; in 256 KiB blocks with their dictionaries, on
~25 MB of each corpus (the bench's log text, Python's sources, /usr/bin, /usr/share/doc), one
thread, against zlib 6 (what zipstream-ng runs):

    engine      logs speed  ratio   py speed  ratio   bin speed  ratio   doc speed  ratio
    zlib-ng 4       2.87x   +6.2%      2.91x  +4.2%      2.97x  +4.1%      2.86x  +4.2%
    zlib-ng 5       2.13x   +4.3%      2.52x  +1.3%      3.25x  +2.8%      2.35x  +1.1%
    zlib-ng 6       1.62x   +3.1%      1.88x  +0.7%      2.51x  +2.5%      1.79x  +0.2%
    zlib-ng 7       1.02x   -1.7%      1.14x  -0.4%      1.60x  +1.5%      1.20x  -0.8%
    zlib-ng 8       0.58x   -2.0%      0.45x  -1.0%      1.08x  +1.5%      0.86x  -1.4%
    zlib-ng 9       0.93x   +1.4%      0.80x  -1.1%      0.81x  -0.7%      0.92x  -0.6%
    zlib 5          1.43x   +2.0%      1.48x  +1.7%      1.56x  +1.1%      1.29x  +2.1%
    zlib 9          0.46x   -0.8%      0.23x  -1.2%      0.38x  -0.5%      0.57x  -1.1%

Within 2% of zlib 6's ratio on all four, the fastest is zlib-ng 7 at 1.02-1.60x its speed per
thread (on two cores ~2x zipstream-ng on the logs, short of the 2.5x asked); level 6 is zlib-ng
6, within 3.1% of zlib 6's ratio at 1.6-2.5x its speed.  zlib stays only as an engine.

With 2 workers deflate_raw runs 1.7-1.9x one thread at a ratio within 0.1% of one unbroken
stream.  Blocks that do not shrink are stored: every level
first deflates eight 1 KiB samples of the block with ISA-L in one call, unless they are all
ASCII (~35 us, ~4% of ISA-L deflating a text block; random blocks then pass at ~4 GB/s, not
deflated for nothing at 400 MB/s with ISA-L or ~50 MB/s with zlib-ng).

The thread that reads the input only cuts it into blocks (views, no copy) and hands them out;
joining a block that spans chunks, its CRC-32 and its deflate run on a worker, and the CRCs are
combined in order (crc32_combine), so that thread never reads the data again.  Blocks go
through one ordered window (ordered.py), which a ZIP keeps open across its entries.
"""

from __future__ import annotations

import itertools
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import TypeVar

import zstandard
from isal import isal_zlib
from zlib_ng import zlib_ng

from zipserve.encode.ordered import Item, Later, Stream, Task, in_order

T = TypeVar("T")
Block = bytes | memoryview  # a block of input: a view into the chunk that held it, or joined

# 256 KiB: measured as fast as 512 KiB and 1 MiB blocks with 2 workers, ratio within 0.1%, at a
# quarter of the memory; 64-128 KiB lose 10-20% of the speed to per-block overhead.
DEFAULT_BLOCK = 256 * 1024
WINDOW = 32 * 1024  # RFC 1951 3.2: the largest distance a match may reach back
_RAW = -15  # wbits for a raw deflate stream: no zlib or gzip wrapper
_SAMPLES = 8  # samples from a block's start to its end, deflated together: is it worth deflating?
_SAMPLE = 1024  # bytes per sample
MIN_SAVING = 0.05  # what deflating must save for `auto` to keep it
MIN_SEGMENT = 16 * 1024  # the smallest part of a block deflated or stored on its own
AHEAD = 4  # blocks of input in flight per worker
_STORED_MAX = 0xFFFF  # RFC 1951 3.2.4: LEN is 16 bits

_LIBRARIES: dict[str, ModuleType] = {"isal": isal_zlib, "zlib-ng": zlib_ng, "zlib": zlib}


@dataclass(frozen=True)
class Engine:
    """A deflate library and that library's own level."""

    name: str
    level: int


_LEVELS: dict[int, Engine] = {
    1: Engine("isal", 1),
    2: Engine("isal", 2),
    3: Engine("isal", 3),
    4: Engine("zlib-ng", 4),
    5: Engine("zlib-ng", 5),
    6: Engine("zlib-ng", 6),
    7: Engine("zlib-ng", 7),
    8: Engine("zlib-ng", 8),
    9: Engine("zlib-ng", 9),
}


def engine_for(level: int) -> Engine:
    """Given a public level 1..9, return the engine for it; raise ValueError outside 1..9."""
    try:
        return _LEVELS[level]
    except KeyError:
        raise ValueError(f"deflate level must be 1..9, not {level!r}") from None


class Pool:
    """Process-wide compression workers (a ThreadPoolExecutor of `workers` threads)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers!r}")
        self.workers = workers
        self._threads: set[int] = set()  # the workers' idents
        self._executor = ThreadPoolExecutor(
            workers, thread_name_prefix="zipserve-compress", initializer=self._mark_thread
        )

    def _mark_thread(self) -> None:
        self._threads.add(threading.get_ident())

    def on_worker(self) -> bool:
        """Return whether the calling thread is one of this pool's workers."""
        return threading.get_ident() in self._threads

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        """Given a function and its arguments, return the future of running it on a worker.

        On a worker itself it runs at once: a pool thread waiting on its own pool could
        deadlock it.
        """
        if not self.on_worker():
            return self._executor.submit(fn, *args)
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Drop queued work, wait for running work and stop the workers."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stored(block: Block, last: bool) -> bytes:
    """Given a block, return it as RFC 1951 stored blocks (3.2.4), the final one marked if last.

    Every block before this one ended byte-aligned (sync flush or stored), so the 3 header bits
    fill one byte and LEN/NLEN follow at once.
    """
    parts: list[Block] = []
    for start in range(0, max(len(block), 1), _STORED_MAX):
        piece = block[start : start + _STORED_MAX]
        final = last and start + _STORED_MAX >= len(block)
        parts.append(struct.pack("<BHH", int(final), len(piece), len(piece) ^ 0xFFFF))
        parts.append(piece)
    return b"".join(parts)


def _stored_size(length: int) -> int:
    """Given a block length, return the size of its stored encoding."""
    return length + 5 * max(1, -(-length // _STORED_MAX))


def shrinks(sample: Block, *, min_saving: float = MIN_SAVING) -> bool:
    """Given a sample of an entry, return whether ISA-L level 1 saves min_saving of it."""
    if not sample:
        return False
    return saves(isal_zlib.compress(sample, 1, _RAW), sample, min_saving=min_saving)


def saves(deflated: Block, data: Block, *, min_saving: float = MIN_SAVING) -> bool:
    """Given data and its deflate output, return whether deflating saved min_saving of it."""
    return bool(data) and len(deflated) <= len(data) * (1.0 - min_saving)


def worth_deflating(block: Block) -> bool:
    """Given a block, return whether samples spread over it, together, shrink under fast deflate.

    One ISA-L call costs ~35 us whatever the sample (most of it building Huffman tables), a few
    percent of deflating the block, and spares deflating already compressed data, which runs
    at ~50 MB/s and saves nothing.  Four 8 KiB samples tried one by one cost up to 4x that for
    the same decisions (over 1,500 blocks of system files and the bench tree: 5 blocks told
    apart, 0.1 MB of saving lost).  The first and last samples sit at the block's ends, so the
    text that starts or ends a tar block between two files is seen.  Samples that are all ASCII
    need no trial: deflate's Huffman codes alone save at least 1/8 of bytes that use 7 bits,
    and text blocks skip the ISA-L call (~4% of deflating them).  Small blocks are just
    deflated.
    """
    if len(block) < 32 * _SAMPLE:
        return True
    step = (len(block) - _SAMPLE) // (_SAMPLES - 1)
    sample = b"".join(block[i * step : i * step + _SAMPLE] for i in range(_SAMPLES))
    return sample.isascii() or shrinks(sample)


def _deflate_block(engine: Engine, block: Block, zdict: Block, last: bool) -> bytes:
    """Given a block and the 32 KiB before it, return its deflate blocks, sync-flushed or final.

    Whatever does not shrink comes out stored, so the stream never grows by more than RFC 1951's
    5 bytes per 64 KiB.
    """
    if not worth_deflating(block):
        # Even ISA-L gains: on one thread it deflates random blocks at ~400 MB/s, and probes
        # them at ~1,300 MB/s (bench_compress.py runs the mixed tree's random half).
        return _stored(block, last)
    library = _LIBRARIES[engine.name]
    extra = {"zdict": zdict} if zdict else {}
    compressor = library.compressobj(engine.level, library.DEFLATED, _RAW, **extra)
    flush = library.Z_FINISH if last else library.Z_SYNC_FLUSH
    deflated: bytes = compressor.compress(block) + compressor.flush(flush)
    return _stored(block, last) if len(deflated) > _stored_size(len(block)) else deflated


def deflate_bytes(data: Block, *, level: int) -> bytes:
    """Given a whole input held in memory, return its raw deflate stream, inline.

    Equals deflate_raw([data]) whenever data fits in one block, so callers may deflate small
    entries with it (or submit it to the pool to deflate independent entries in parallel).
    """
    return _deflate_block(engine_for(level), data, b"", True)


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
    chunks is deflated or stored segment by segment (see _segments).
    """
    block = memoryview(_joined(pieces))
    window = _joined(zdict)
    cuts = _segments([len(piece) for piece in pieces])
    out = [_deflate_block(engine, block[lo:hi], _window_before(window, block, lo), last and hi == len(block))
           for lo, hi in itertools.pairwise(cuts)]
    return Deflated(out[0] if len(out) == 1 else b"".join(out), isal_zlib.crc32(block), len(block))


def _segments(sizes: list[int]) -> list[int]:
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


def window(pool: Pool, block_size: int = DEFAULT_BLOCK) -> int:
    """Given the pool, return how many bytes of input a stream keeps in flight on it at most."""
    return pool.workers * AHEAD * block_size


def deflate_items(
    chunks: Iterable[bytes], *, level: int, pool: Pool, crc: Crc, block_size: int = DEFAULT_BLOCK
) -> Iterator[Item]:
    """Given the input as chunks, return the items of one raw deflate stream of it (see ordered).

    Each block is a Task on the pool; crc takes in each block's CRC as its output is taken.
    An input of one block is deflated in turn on the taking thread: the pool would only add a
    hand-off.  Raises ValueError for a level outside 1..9 or a block_size under 32 KiB.
    """
    engine = engine_for(level)
    _check_block_size(block_size)
    return _deflate_items(engine, _blocks(chunks, block_size), pool, crc)


def _deflate_items(engine: Engine, blocks: Iterator[tuple[list[memoryview], bool]], pool: Pool,
                   crc: Crc) -> Iterator[Item]:
    def take(done: Deflated) -> tuple[bytes]:
        crc.combine(done.crc, done.size)
        return (done.data,)

    zdict: list[memoryview] = []
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


def _gzip_header(mtime: int, filename: str | None, level: int) -> bytes:
    """Given the member's mtime, name and level, return its RFC 1952 (2.3) header."""
    name = _latin1_basename(filename)
    flags = 0x08 if name is not None else 0  # FNAME
    # MTIME 0 means "no time stamp"; XFL 2 = slowest/best, 4 = fastest (RFC 1952 2.3.1).
    stamp = mtime if 0 <= mtime <= 0xFFFFFFFF else 0
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    os_unknown = 255  # the same bytes whatever system serves them
    header = struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, flags, stamp, xfl, os_unknown)
    return header + (name + b"\0" if name is not None else b"")


def _latin1_basename(filename: str | None) -> bytes | None:
    """Given a file name, return its last component in ISO 8859-1, or None if it has none.

    RFC 1952 2.3.1: FNAME is the original name stripped of directories, latin-1, zero-ended.
    """
    if filename is None:
        return None
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if not base or "\0" in base:
        return None
    try:
        return base.encode("latin-1")
    except UnicodeEncodeError:
        return None


def gzip_stream(
    chunks: Iterable[bytes],
    *,
    level: int,
    pool: Pool,
    mtime: int = 0,
    filename: str | None = None,
    block_size: int = DEFAULT_BLOCK,
) -> Stream:
    """Given the input as chunks, return one gzip member (RFC 1952) of it, deterministically.

    Raises ValueError as deflate_raw does.
    """
    crc = Crc()
    body = deflate_raw(chunks, level=level, pool=pool, block_size=block_size, crc=crc)
    return _gzip_member(_gzip_header(mtime, filename, level), body, crc)


def _gzip_member(header: bytes, body: Stream, crc: Crc) -> Stream:
    """Given a header, a deflate body and the Crc it fills, return the whole member."""
    yield header
    yield from body  # closing this generator closes body too, cancelling its blocks
    # RFC 1952 2.3.1: ISIZE is the input size modulo 2**32.
    yield struct.pack("<II", crc.value, crc.size & 0xFFFFFFFF)


def zstd_stream(chunks: Iterable[bytes], *, level: int, threads: int) -> Stream:
    """Given the input as chunks, return one zstd frame of it, as zstd produces it.

    zstd's own workers compress (threads=0: this thread; -1: one per core).  Levels above 19
    are refused with ValueError: their 64-128 MiB windows would break the memory bound.
    """
    if not 1 <= level <= 19:
        raise ValueError(f"zstd level must be 1..19, not {level!r}")
    compressor = zstandard.ZstdCompressor(compression_params=_zstd_parameters(level, threads))
    return _zstd_frame(compressor.compressobj(), chunks)


def _zstd_parameters(level: int, threads: int) -> zstandard.ZstdCompressionParameters:
    """Given a level and thread count, return zstd parameters with jobs of one window.

    zstd's default jobs of 4 windows cost 190 MiB at level 3 and 260 MiB at level 9 with 2
    threads (measured, random input); one-window jobs (at least 1 MiB) cost 60 and 120 MiB at
    the same ratio.  Smaller jobs would reload more overlap than they compress.
    """
    if threads == 0:
        return zstandard.ZstdCompressionParameters.from_level(level, write_checksum=True)
    window = 1 << zstandard.ZstdCompressionParameters.from_level(level).window_log
    return zstandard.ZstdCompressionParameters.from_level(
        level, threads=threads, job_size=max(window, 1 << 20), write_checksum=True
    )


def _zstd_frame(compressor: zstandard.ZstdCompressionObj, chunks: Iterable[bytes]) -> Stream:
    """Given a zstd compression object and chunks, return the frame's pieces as they appear."""
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()
