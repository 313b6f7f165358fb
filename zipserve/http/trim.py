"""Freed heap memory back to the system once no archive is in flight (glibc's malloc_trim).

Read buffers, deflate blocks and zstd jobs are freed when a stream ends, but
glibc keeps most of that memory: what is freed between blocks still in use
stays mapped, and only the top of each arena is ever given back on its own.
After 500 dropped deflated ZIPs the server kept ~140 MiB above its idle RSS;
malloc_trim(0) returned it all. A trim walks every arena, so it runs in a
worker thread, a moment after the last stream ended, and only if none began
meanwhile: a busy server is not trimmed between streams.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

DELAY = 1.0  # seconds of no stream in flight before a trim


def _malloc_trim() -> Callable[[int], int] | None:
    """Return glibc's malloc_trim, or None where the C library is not glibc."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


class IdleTrim:
    """Trims the heap after the process has had no stream in flight for DELAY seconds."""

    def __init__(self, busy: Callable[[], bool]) -> None:
        self.busy = busy
        self.trim = _malloc_trim()
        self.timer: asyncio.TimerHandle | None = None

    def idle(self) -> None:
        """Call on the event loop when the last stream in flight ended: schedule a trim."""
        if self.trim is None or self.timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on an event loop: nothing to schedule on
        self.timer = loop.call_later(DELAY, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self.timer = None
        if self.trim is not None and not self.busy():
            loop.run_in_executor(None, self.trim, 0)
