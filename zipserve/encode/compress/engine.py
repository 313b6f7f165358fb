"""Deflate engines by level, and the process-wide pool of compression workers.

Levels 1-3 are ISA-L's 1-3, the fastest deflate at hand; 4-9 are zlib-ng's own
4-9, which keep within a few percent of zlib's ratio at the same level at 1.6-2.5x
its speed (bench/bench_engines.py measures them).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

from isal import isal_zlib
from zlib_ng import zlib_ng

T = TypeVar("T")
Block = bytes | memoryview  # a block of input: a view into the chunk that held it, or joined

# 256 KiB: as fast as 512 KiB and 1 MiB blocks with 2 workers, ratio within 0.1%, at a
# quarter of the memory; 64-128 KiB lose 10-20% of the speed to per-block overhead.
DEFAULT_BLOCK = 256 * 1024
# Blocks of input in flight per worker and stream: 2 keeps both workers fed for one stream,
# and each slow stream holds 1 MiB less than with 4 (4.7 -> 4.1 MiB of RSS a stream).
AHEAD = 2

_LIBRARIES: dict[str, ModuleType] = {"isal": isal_zlib, "zlib-ng": zlib_ng, "zlib": zlib}


@dataclass(frozen=True)
class Engine:
    """A deflate library and that library's own level."""

    name: str
    level: int

    @property
    def library(self) -> ModuleType:
        """Return the module that deflates for this engine (zlib's interface)."""
        return _LIBRARIES[self.name]


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


def window(pool: Pool, block_size: int = DEFAULT_BLOCK) -> int:
    """Given the pool, return how many bytes of input a stream keeps in flight on it at most."""
    return pool.workers * AHEAD * block_size
