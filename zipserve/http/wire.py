"""Body bytes -> the client's socket, written from a worker thread.

uvicorn writes every body chunk on the event-loop thread, holding the GIL
while the kernel copies it, after an await chain per chunk (Starlette's
middleware, anyio's timeouts): at 1 MiB chunks that caps one stream near
1.3 GB/s on two cores, with the thread making the bytes mostly waiting.  A
Wire writes a response's body straight to the socket from the thread that
makes it, with os.writev (the GIL released, batches never joined), and waits
for room with poll.  uvicorn keeps the connection: it wrote the status line and
headers, it is told how many body bytes went by, and it ends the response.

Used only where that is known to be safe: uvicorn's httptools protocol on a
plain TCP socket (see Connection.of).  Everywhere else (h11, TLS, the ASGI
test client) the body goes through the ordinary ASGI send.
"""

from __future__ import annotations

import os
import select
import threading
import time
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import Any, Protocol

IOV_MAX = 1024  # Linux's limit on buffers in one writev
POLL_SLICE = 0.1  # seconds: how often a wait looks at the stop flag


class Part(Protocol):
    """A body part that is not in memory (sources.unread.FilePart): it sends itself through the Wire."""

    def __len__(self) -> int: ...

    def send(self, wire: Wire) -> None: ...


class ClientGone(OSError):
    """The client closed the connection, or the response was cancelled."""


class Wire:
    """A response body's path to one socket; every method blocks, so call them from a worker thread.

    It owns `fd` (a duplicate of the connection's) and closes it in close().
    """

    def __init__(self, fd: int, *, chunked: bool, timeout: float) -> None:
        self.fd, self.chunked, self.timeout = fd, chunked, timeout
        self.stop = threading.Event()  # set from the event loop: disconnect, cancel
        self.sent = 0  # body bytes written, without chunk framing
        self.unread = 0  # of those, bytes sendfile took from files without Python reading them

    def close(self) -> None:
        """Release the Wire's descriptor (the connection itself stays uvicorn's)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def write(self, parts: Sequence[bytes | Part]) -> None:
        """Given buffers and Parts, write them back to back (as one chunk when the body is chunked).

        Raises ClientGone when the peer left or `stop` was set, TimeoutError when
        the socket took no byte for `timeout` seconds.
        """
        size = sum(map(len, parts))
        if not size:
            return
        if self.stop.is_set():
            raise ClientGone("the response was cancelled")
        framed = [b"%x\r\n" % size, *parts, b"\r\n"] if self.chunked else parts
        run: list[bytes] = []
        for part in framed:
            if isinstance(part, bytes):
                run.append(part)
                continue
            self._writev(run)
            run = []
            part.send(self)
        self._writev(run)
        self.sent += size

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Given an open file and a span, send a first part of it from the page cache; return its length.

        Does not count the bytes in `sent`: the caller's write() does.
        """
        while True:
            try:
                sent = os.sendfile(self.fd, fd, offset, count)
                self.unread += sent
                return sent
            except BlockingIOError:
                self._wait()
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise ClientGone(exc.errno, exc.strerror) from None

    def _writev(self, buffers: list[bytes]) -> None:
        views: list[bytes | memoryview] = [b for b in buffers if b]  # writev takes bytes as they are
        ends = list(accumulate(map(len, views)))
        written = 0
        while views and written < ends[-1]:
            try:
                written += os.writev(self.fd, pending(views, ends, written))
            except BlockingIOError:
                self._wait()
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise ClientGone(exc.errno, exc.strerror) from None

    def _wait(self) -> None:
        """Block until the socket takes bytes again; raise ClientGone or TimeoutError."""
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        deadline = time.monotonic() + self.timeout
        while True:
            if self.stop.is_set():
                raise ClientGone("the response was cancelled")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the client took no byte for {self.timeout:g} s")
            if poller.poll(min(left, POLL_SLICE) * 1000):
                return  # room, or an error the next writev reports


def pending(views: list[bytes | memoryview], ends: list[int], written: int
            ) -> list[bytes | memoryview]:
    """Given buffers, where each ends in their run and how many bytes are written, return the next to write.

    At most IOV_MAX of them, the first cut where the writing stopped; found by
    bisection, so a batch of many small buffers costs no walk per write.
    """
    first = bisect_right(ends, written)
    if first == len(views):
        return []
    rest = views[first:first + IOV_MAX]
    start = ends[first - 1] if first else 0
    if written > start:
        rest[0] = memoryview(rest[0])[written - start:]  # a view: the rest is not copied
    return rest


class Connection:
    """One request's uvicorn connection, as far as a Wire needs it: its socket and its body accounting."""

    def __init__(self, cycle: Any, transport: Any, fd: int) -> None:
        self.cycle, self.transport, self.fd = cycle, transport, fd

    @classmethod
    def of(cls, send: Any) -> Connection | None:
        """Given the ASGI send of the server itself, return its Connection, or None where unsafe."""
        cycle = getattr(send, "__self__", None)
        if type(cycle).__module__ != "uvicorn.protocols.http.httptools_impl":
            return None  # h11 counts body bytes itself: they must pass through it
        transport = getattr(cycle, "transport", None)
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            return None
        sock = transport.get_extra_info("socket")
        if sock is None or not all(hasattr(cycle, a) for a in
                                   ("expected_content_length", "chunked_encoding", "disconnected")):
            return None
        return cls(cycle, transport, sock.fileno())

    def wire(self, timeout: float) -> Wire | None:
        """Given the send timeout, return a Wire for the body just started, or None if it cannot have one.

        The headers must have left uvicorn's buffer, or body bytes would pass
        them. The Wire writes to a duplicate of the socket's descriptor: when
        the client leaves, uvicorn closes its own, and the number may at once
        name the next client's socket; the duplicate still names this one.
        """
        if self.cycle.disconnected or self.transport.get_write_buffer_size():
            return None
        return Wire(os.dup(self.fd), chunked=bool(self.cycle.chunked_encoding), timeout=timeout)

    def account(self, wire: Wire) -> None:
        """Given a finished Wire, tell uvicorn how many body bytes went by (it checks Content-Length)."""
        if not self.cycle.chunked_encoding:
            self.cycle.expected_content_length -= wire.sent
