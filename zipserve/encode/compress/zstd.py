"""Input chunks -> one zstd frame, compressed by zstd's own workers in bounded memory."""

from __future__ import annotations

from collections.abc import Iterable

import zstandard

from zipserve.encode.ordered import Stream

# Our levels 1..9 -> zstd levels of the same spirit (fast .. strong).
_LEVELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 7, 7: 9, 8: 12, 9: 15}


def zstd_level(level: int) -> int:
    """Given our level 1..9, return the zstd level of the same spirit; raise KeyError outside 1..9."""
    return _LEVELS[level]


def zstd_stream(chunks: Iterable[bytes], *, level: int, threads: int) -> Stream:
    """Given the input as chunks, return one zstd frame of it, as zstd produces it.

    zstd's own workers compress (threads=0: this thread; -1: one per core).  Levels above 19
    are refused with ValueError: their 64-128 MiB windows would break the memory bound.
    """
    if not 1 <= level <= 19:
        raise ValueError(f"zstd level must be 1..19, not {level!r}")
    compressor = zstandard.ZstdCompressor(compression_params=_parameters(level, threads))
    return _frame(compressor.compressobj(), chunks)


def _parameters(level: int, threads: int) -> zstandard.ZstdCompressionParameters:
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


def _frame(compressor: zstandard.ZstdCompressionObj, chunks: Iterable[bytes]) -> Stream:
    """Given a zstd compression object and chunks, return the frame's pieces as they appear."""
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()
