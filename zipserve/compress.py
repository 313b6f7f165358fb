"""Compression engine shared by every compressed format: deflate (ZIP entries, gzip) and zstd.

Deflate runs pigz-style: the input is cut into fixed-size blocks that the pool compresses in
parallel, each primed with the 32 KiB before it as dictionary (RFC 1951 section 3.2: matches
reach back at most 32 KiB) and ended with a sync flush, so the blocks join byte-aligned into
one valid deflate stream.  Output bytes depend only on the input, the level and the block size.

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

Each public level is a distinct point on that speed/ratio frontier, near zlib's ratio at the
same level (py: within 2%; logs and /usr/bin binaries: up to 6-7% behind at levels 2, 3 and 6)
at 2-10x its speed: 1-3 are ISA-L 1-3, 4-9 are zlib-ng 3, 4, 5, 6, 7, 9.  zlib-ng 8 is slower
than 9 for no gain, and zlib is never faster at a given ratio, so it stays only as an engine.
With 2 workers deflate_raw runs 1.7-1.9x one thread (level 1: ~530 MB/s, level 6: ~120 MB/s) at
a ratio within 0.1% of one unbroken stream.  Blocks that do not shrink are stored: zlib-ng
levels probe samples first (random data then passes at ~1 GB/s, not deflated for nothing at
~50 MB/s); so do ISA-L levels, whose probe costs ~5% on text but spares ~70% on random data.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

import zstandard
from isal import isal_zlib
from zlib_ng import zlib_ng

T = TypeVar("T")
Stream = Generator[bytes, None, None]  # closable, so a dropped download stops its work
Block = bytes | memoryview  # a block of input: a view into the chunk that held it, or joined

# 256 KiB: measured as fast as 512 KiB and 1 MiB blocks with 2 workers, ratio within 0.1%, at a
# quarter of the memory; 64-128 KiB lose 10-20% of the speed to per-block overhead.
DEFAULT_BLOCK = 256 * 1024
WINDOW = 32 * 1024  # RFC 1951 3.2: the largest distance a match may reach back
_RAW = -15  # wbits for a raw deflate stream: no zlib or gzip wrapper
_SAMPLE = 8 * 1024  # bytes per probe sample when deciding whether a block is worth deflating
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
    4: Engine("zlib-ng", 3),
    5: Engine("zlib-ng", 4),
    6: Engine("zlib-ng", 5),
    7: Engine("zlib-ng", 6),
    8: Engine("zlib-ng", 7),
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
        self._marker = threading.local()
        self._executor = ThreadPoolExecutor(
            workers, thread_name_prefix="zipserve-compress", initializer=self._mark_thread
        )

    def _mark_thread(self) -> None:
        self._marker.inside = True

    def on_worker(self) -> bool:
        """Return whether the calling thread is one of this pool's workers."""
        return bool(getattr(self._marker, "inside", False))

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        """Given a function and its arguments, return the future of running it on a worker."""
        return self._executor.submit(fn, *args)

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


def shrinks(sample: Block, *, min_saving: float = 0.05) -> bool:
    """Given the first block of an entry, return whether ISA-L level 1 saves min_saving of it."""
    if not sample:
        return False
    deflated = isal_zlib.compress(sample, 1, _RAW)
    return len(deflated) <= len(sample) * (1.0 - min_saving)


def _worth_deflating(block: Block) -> bool:
    """Given a block, return whether any of four spread samples shrinks under fast deflate.

    Sampling costs a few percent of one ISA-L pass and spares deflating already compressed
    data, which runs at ~50 MB/s and saves nothing.  Small blocks are just deflated.
    """
    if len(block) < 4 * _SAMPLE:
        return True
    step = len(block) // 4
    return any(shrinks(block[i * step : i * step + _SAMPLE]) for i in range(4))


def _deflate_block(engine: Engine, block: Block, zdict: Block, last: bool) -> bytes:
    """Given a block and the 32 KiB before it, return its deflate blocks, sync-flushed or final.

    Whatever does not shrink comes out stored, so the stream never grows by more than RFC 1951's
    5 bytes per 64 KiB.
    """
    if not _worth_deflating(block):
        # Even ISA-L gains: on one thread it deflates random blocks at ~400 MB/s, and probes
        # them at ~1,300 MB/s (bench_compress.py runs the mixed tree's random half).
        return _stored(block, last)
    library = _LIBRARIES[engine.name]
    extra = {"zdict": zdict} if zdict else {}
    compressor = library.compressobj(engine.level, library.DEFLATED, _RAW, **extra)
    flush = library.Z_FINISH if last else library.Z_SYNC_FLUSH
    deflated: bytes = compressor.compress(block) + compressor.flush(flush)
    return _stored(block, last) if len(deflated) > _stored_size(len(block)) else deflated


def deflate_bytes(data: bytes, *, level: int) -> bytes:
    """Given a whole input held in memory, return its raw deflate stream, inline.

    Equals deflate_raw([data]) whenever data fits in one block, so callers may deflate small
    entries with it (or submit it to the pool to deflate independent entries in parallel).
    """
    return _deflate_block(engine_for(level), data, b"", True)


def _blocks(chunks: Iterable[bytes], size: int) -> Iterator[tuple[Block, bool]]:
    """Given chunks of any sizes, return (block, is_last) pairs of exactly `size` bytes.

    A full block is held back until one more byte arrives, so the last block is always known
    as such (and the stream ends with Z_FINISH) whatever the chunk boundaries are.  A block
    inside one chunk is a view of it, not a copy; only a block that spans chunks is joined
    (copying every byte twice cost the reading thread ~0.4 s of CPU per GB).
    """
    parts: list[memoryview] = []  # the block being filled
    have = 0
    full: Block | None = None  # a whole block, waiting to learn whether it is the last
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
                full = parts[0] if len(parts) == 1 else b"".join(parts)
                parts, have = [], 0
    yield (full, True) if full is not None else (b"".join(parts), True)


def _check_block_size(block_size: int) -> None:
    """Raise ValueError unless each block can carry a whole 32 KiB window for the next one."""
    if block_size < WINDOW:
        raise ValueError(f"block_size must be at least {WINDOW}, not {block_size!r}")


def deflate_raw(
    chunks: Iterable[bytes], *, level: int, pool: Pool, block_size: int = DEFAULT_BLOCK
) -> Stream:
    """Given the input as chunks of any sizes, return one raw deflate stream of it, block by block.

    Call it from a worker thread, never from the event loop.  At most pool.workers * 2 blocks
    are in the pool at once, and input is read only as output is taken (the backpressure).
    Raises ValueError for a level outside 1..9 or a block_size under 32 KiB.
    """
    engine = engine_for(level)
    _check_block_size(block_size)
    blocks = _blocks(chunks, block_size)
    if pool.on_worker():
        # A pool thread waiting on its own pool could deadlock it: stay sequential and inline.
        return _deflate_inline(engine, blocks)
    return _deflate_pipelined(engine, blocks, pool)


def _deflate_inline(engine: Engine, blocks: Iterator[tuple[Block, bool]]) -> Stream:
    """Given blocks, return their deflate output compressed one after another in this thread."""
    zdict: Block = b""
    for block, last in blocks:
        yield _deflate_block(engine, block, zdict, last)
        zdict = block[-WINDOW:]


def _deflate_pipelined(engine: Engine, blocks: Iterator[tuple[Block, bool]], pool: Pool) -> Stream:
    """Given blocks, return their deflate output in order, compressing up to workers*2 at once."""
    limit = pool.workers * 2
    pending: deque[Future[bytes]] = deque()
    zdict: Block = b""
    try:
        for block, last in blocks:
            if last and not pending:
                # Nothing else to wait for (a tiny input, or the tail): the pool would only add
                # a hand-off, as this thread would wait for it anyway.
                yield _deflate_block(engine, block, zdict, last)
                return
            pending.append(pool.submit(_deflate_block, engine, block, zdict, last))
            zdict = block[-WINDOW:]
            while pending and (len(pending) >= limit or pending[0].done()):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        _abandon(pending)


def _abandon(pending: deque[Future[bytes]]) -> None:
    """Given futures no one will read, cancel the queued ones and wait for the running ones."""
    for future in pending:
        future.cancel()
    wait(pending)
    pending.clear()


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


def _through_crc(chunks: Iterable[bytes], crc: Crc) -> Iterator[bytes]:
    """Given chunks, return them unchanged while folding each into crc."""
    for chunk in chunks:
        crc.update(chunk)
        yield chunk


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
    body = deflate_raw(_through_crc(chunks, crc), level=level, pool=pool, block_size=block_size)
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
