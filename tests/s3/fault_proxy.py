"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, put between zipserve and the real Ceph RGW.

Not a mock: every request it passes is answered by RGW. It parses each
request and response just enough to know where they end (clients such as
botocore never pipeline: one request, then its whole response), records what
it saw, and on the test's word:

- resets the next N connections as soon as they are accepted (RST, nothing read);
- answers a request itself with ``503 SlowDown`` (the S3 throttling answer);
- cuts a response's body after some bytes (the head and those bytes, then FIN),
  and can run a callback at that moment (e.g. replace the object in the store).

A rule is a function of the request (and the proxy's record so far) returning
"pass", "reset", "slowdown" or ("cut", n). Runs its own event loop in a thread;
every read has a time limit and every connection a bounded number of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

IO_TIMEOUT = 60.0  # seconds any one read or connect may take before the connection is dropped
MAX_REQUESTS = 10_000  # per connection
MAX_HEAD = 64 * 1024
SLOWDOWN = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
            b"<Message>Please reduce your request rate.</Message></Error>")


@dataclass
class Seen:
    """One request the proxy received, and what it did with it."""

    conn: int
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    action: str = "pass"
    status: int = 0  # the store's answer (0: none)
    sent: int = -1  # body bytes of the response passed on (-1: no response from the store)

    @property
    def path(self) -> str:
        """The target without its query (a presigned URL's signature)."""
        return self.target.split("?", 1)[0]


Action = str | tuple[str, int]
Rule = Callable[[Seen], Action]


@dataclass
class FaultProxy:
    """Listens on 127.0.0.1 and forwards to `upstream` (host, port) unless a fault is due."""

    upstream: tuple[str, int]
    rule: Rule | None = None
    on_cut: Callable[[Seen], None] | None = None
    seen: list[Seen] = field(default_factory=list)
    resets: int = 0  # connections reset on accept so far
    port: int = 0
    _reset_next: int = 0
    _conns: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then end the loop and its thread."""
        assert self._loop is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    # -- what the test asks ------------------------------------------------------------------------

    def reset_connections(self, count: int) -> None:
        """Reset the next `count` connections as soon as they are accepted."""
        with self._lock:
            self._reset_next = count

    def requests(self, match: Callable[[Seen], bool] = lambda s: True) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if match(s)]

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()
            self.resets = 0
        self.rule = None
        self.on_cut = None

    # -- the proxy ---------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._connection(reader, writer)
        except asyncio.CancelledError:
            pass  # stopping: the connection is closed below and in _connection
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            conn, self._conns = self._conns, self._conns + 1
            reset = self._reset_next > 0
            if reset:
                self._reset_next -= 1
                self.resets += 1
        if reset:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), IO_TIMEOUT)
        except OSError:
            _reset(writer)
            return
        try:
            for _ in range(MAX_REQUESTS):
                if not await self._exchange(conn, reader, writer, up_reader, up_writer):
                    break
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()
            for w in (writer, up_writer):
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await w.wait_closed()

    async def _exchange(self, conn: int, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                        up_writer: asyncio.StreamWriter) -> bool:
        """Pass one request and its response on (or fault them); return whether the connection lives on."""
        head = await _read_head(reader)
        if head is None:
            return False
        method, target, headers = _parse_request(head)
        seen = Seen(conn, method, target, headers)
        action = self.rule(seen) if self.rule is not None else "pass"
        seen.action = action if isinstance(action, str) else f"{action[0]}:{action[1]}"
        with self._lock:
            self.seen.append(seen)
        if action == "reset":
            _reset(writer)
            return False
        length = int(headers.get("content-length", "0"))
        if "chunked" in headers.get("transfer-encoding", ""):
            raise ValueError("chunked request bodies are not supported")
        if action == "slowdown":
            await _timed(reader.readexactly(length))
            writer.write(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (len(SLOWDOWN), SLOWDOWN))
            await _timed(writer.drain())
            return False
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # answered here; RGW never sees it
            head = _without_header(head, b"expect")
        up_writer.write(head)
        await _copy(reader, up_writer, length)
        return await self._respond(seen, action, writer, up_reader)

    async def _respond(self, seen: Seen, action: Action, writer: asyncio.StreamWriter,
                       up_reader: asyncio.StreamReader) -> bool:
        head = await _read_head(up_reader)
        if head is None:
            return False
        status, headers = _parse_response(head)
        seen.status = status
        writer.write(head)
        if isinstance(action, tuple):  # ("cut", n): the head, n bytes of the body, then FIN
            n = min(action[1], int(headers.get("content-length", action[1])))
            await _copy(up_reader, writer, n)
            seen.sent = n
            if self.on_cut is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.on_cut, seen)
            return False
        if seen.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            seen.sent = 0
        elif "chunked" in headers.get("transfer-encoding", ""):
            seen.sent = await _copy_chunked(up_reader, writer)
        elif "content-length" in headers:
            seen.sent = int(headers["content-length"])
            await _copy(up_reader, writer, seen.sent)
        else:  # the body runs to the end of the connection
            seen.sent = await _copy(up_reader, writer, None)
            return False
        return headers.get("connection", "").lower() != "close"


async def _timed(step: Any) -> Any:
    return await asyncio.wait_for(step, IO_TIMEOUT)


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """Return one message head (through the blank line), or None at a clean end of the connection."""
    try:
        head: bytes = await _timed(reader.readuntil(b"\r\n\r\n"))
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    if len(head) > MAX_HEAD:
        raise ValueError("head too long")
    return head


def _fields(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _parse_request(head: bytes) -> tuple[str, str, dict[str, str]]:
    first, headers = _fields(head)
    method, target, _ = first.split(" ", 2)
    return method, target, headers


def _parse_response(head: bytes) -> tuple[int, dict[str, str]]:
    first, headers = _fields(head)
    return int(first.split(" ", 2)[1]), headers


def _without_header(head: bytes, name: bytes) -> bytes:
    lines = head.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(name + b":"))


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                count: int | None) -> int:
    """Copy `count` bytes (None: up to the end of the connection); return how many were copied."""
    done = 0
    while count is None or done < count:
        want = 65536 if count is None else min(65536, count - done)
        data = await _timed(reader.read(want))
        if not data:
            if count is None:
                break
            raise asyncio.IncompleteReadError(b"", count - done)
        writer.write(data)
        await _timed(writer.drain())
        done += len(data)
    return done


async def _copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Copy a chunked body, trailers included; return its payload size."""
    total = 0
    for _ in range(1 << 20):
        line = await _timed(reader.readuntil(b"\r\n"))
        writer.write(line)
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            break
        total += size
        await _copy(reader, writer, size + 2)  # the data and its CRLF
    for _ in range(1000):  # trailers, up to the blank line
        line = await _timed(reader.readuntil(b"\r\n"))
        writer.write(line)
        if line == b"\r\n":
            break
    await _timed(writer.drain())
    return total


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
