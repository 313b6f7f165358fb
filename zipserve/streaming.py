"""Sync chunk iterators -> an ASGI body that always closes its source.

Starlette's StreamingResponse neither closes its iterator when the client goes
away nor bounds a stalled send. Here every chunk is produced in a worker
thread (reads and compression never run on the event loop), the source is
closed on completion, error and disconnect alike, a send that stalls past the
timeout drops the client, and a failure after the headers aborts the
connection so the client sees an incomplete transfer, never a whole-looking
wrong archive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import anyio
import anyio.abc
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import SourceChanged

log = logging.getLogger("zipserve.stream")

_DONE = object()
# What a body iterator yields: bytes, or a list of buffers to send back to back.
Chunk = bytes | list[bytes]
ABORT = "zipserve.abort"  # scope["extensions"] key: drop this connection at once


@dataclass
class Outcome:
    """How one body ended, for logs and metrics."""

    status: int
    sent: int = 0
    result: str = "client_gone"  # complete | client_gone | failed
    error: str = ""
    started: float = 0.0


def _next(it: Iterator[Chunk]) -> object:
    return next(it, _DONE)


def close(it: Iterator[Chunk]) -> None:
    """Given a body iterator, close it (generators release their files in their finally blocks)."""
    closer = getattr(it, "close", None)
    if closer is not None:
        closer()


class BodyResponse(Response):
    """An ASGI response whose body comes from a sync iterator made on demand."""

    def __init__(self, status: int, headers: Mapping[str, str],
                 body: Callable[[], Iterator[Chunk]] | None, *, limiter: anyio.CapacityLimiter,
                 send_timeout: float, on_done: Callable[[Outcome], None] | None = None) -> None:
        self.status_code = status
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in headers.items()]
        self.make_body = body
        self.background = None
        self.limiter = limiter
        self.send_timeout = send_timeout
        self.on_done = on_done
        self.length = _content_length(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = Outcome(self.status_code, started=time.monotonic())
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            if self.make_body is None or scope.get("method") == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                outcome.result = "complete"
                return
            body = await anyio.to_thread.run_sync(self.make_body, limiter=self.limiter)
            try:
                await self._stream(body, scope, receive, send, outcome)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(close, body, limiter=self.limiter)
        finally:
            if (outcome.result == "client_gone" and not outcome.error
                    and outcome.sent == self.length):
                # The client had every byte of a sized body and hung up before the
                # final empty send: that download is complete, not gone.
                outcome.result = "complete"
            if self.on_done is not None:
                self.on_done(outcome)

    async def _stream(self, body: Iterator[Chunk], scope: Scope, receive: Receive, send: Send,
                      outcome: Outcome) -> None:
        # One batch is made in a worker thread while the previous one is sent:
        # reading (and compressing) overlaps the socket writes on another core.
        # No buffer beyond that hand-over: a stream holds at most two batches.
        ahead, batches = anyio.create_memory_object_stream[object](max_buffer_size=0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_disconnect, receive, tg.cancel_scope)
            tg.start_soon(self._produce, body, ahead)
            try:
                async with batches:
                    async for batch in batches:
                        if isinstance(batch, BaseException):
                            raise batch
                        await self._send(batch, send, outcome)
                await send({"type": "http.response.body", "body": b""})
                outcome.result = "complete"
            except SourceChanged as exc:
                # Returning without the final empty body makes uvicorn close the
                # connection: the client sees a cut transfer (curl exit 18).
                outcome.result, outcome.error = "failed", str(exc)
                log.error("aborted a transfer after %d bytes: %s", outcome.sent, exc)
            except TimeoutError:
                outcome.result, outcome.error = "client_gone", "send timed out"
                abort_connection(scope)
            except OSError as exc:  # uvicorn's ClientDisconnected
                outcome.result, outcome.error = "client_gone", type(exc).__name__
            tg.cancel_scope.cancel()

    async def _produce(self, body: Iterator[Chunk],
                       out: anyio.abc.ObjectSendStream[object]) -> None:
        """Make batches in worker threads and hand them over, errors included, until the end."""
        async with out:
            while True:
                try:
                    batch = await anyio.to_thread.run_sync(_next, body, limiter=self.limiter)
                except Exception as exc:  # SourceChanged, or a bug: the sender decides
                    await out.send(exc)
                    return
                if batch is _DONE:
                    return
                await out.send(batch)

    async def _send(self, batch: object, send: Send, outcome: Outcome) -> None:
        """Send one batch: bytes, or a list of buffers sent back to back without copying them."""
        parts: list[bytes] = batch if isinstance(batch, list) else [batch]  # type: ignore[list-item]
        for part in parts:
            with anyio.fail_after(self.send_timeout):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            outcome.sent += len(part)


def _content_length(headers: Mapping[str, str]) -> int | None:
    """Given response headers, return the Content-Length they declare, or None."""
    for key, value in headers.items():
        if key.lower() == "content-length":
            return int(value)
    return None


def abort_connection(scope: Scope) -> None:
    """Given a request's scope, reset its connection now, when the server allows it.

    A polite close waits for the send buffer to drain, which a client that
    stopped reading never lets happen: its socket and buffered chunk would stay
    until it left.
    """
    abort = (scope.get("extensions") or {}).get(ABORT)
    if abort is not None:
        abort()


class ExposeAbort:
    """Outermost ASGI wrapper: lets a response reset its connection (see abort_connection).

    uvicorn's send is a method of its request cycle, which holds the transport;
    inner middleware wrap send, so only the outermost app can reach it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if scope["type"] == "http" and callable(getattr(transport, "abort", None)):
            extensions = {**(scope.get("extensions") or {}), ABORT: transport.abort}  # type: ignore[union-attr]
            scope = {**scope, "extensions": extensions}
        await self.app(scope, receive, send)


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Wait for the client to go away, then cancel the body so its source closes at once."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
