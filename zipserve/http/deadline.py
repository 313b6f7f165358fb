"""uvicorn's HTTP protocols with a deadline on a request's head (slowloris).

uvicorn bounds only the idle time between requests (timeout_keep_alive): a
connection that sends nothing, or trickles its request line and headers a
byte at a time, is kept for ever, each one a socket and a parser state. Here a
connection whose request head has not completed `header_timeout` seconds after
the connection was made, or after the first byte of a later request on it, is
closed, like Apache's mod_reqtimeout (`header=`) and nginx's
client_header_timeout. The body is not bounded here: request bodies are small
(max_body) and read by the app, which has its own limits.

The mixin only watches what uvicorn's parser made of the bytes: a request's
head is complete when the connection has a new request cycle.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderDeadline(asyncio.Protocol):
    """A mixin for a uvicorn HTTP protocol: close a connection whose request head is late."""

    cycle: Any
    transport: Any
    loop: asyncio.AbstractEventLoop

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:
            self._disarm()  # a request's head is complete
        elif before is None or before.response_complete:
            self._arm()  # bytes of a next request's head, not yet complete
        # else: a pipelined request behind a response in flight; the parser waits with it

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.header_timeout, self._late)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _late(self) -> None:
        """Drop the connection: its request head did not arrive in time (no answer is owed)."""
        self.head_timer = None
        if not self.transport.is_closing():
            self.transport.abort()  # nothing of ours is buffered: no response was begun


class HttpToolsDeadline(HeaderDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-head deadline."""


def protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """Given the seconds a request head may take, return the protocol uvicorn should run.

    uvicorn's httptools protocol (what its "auto" picks, and what a Wire needs)
    with the deadline. The result is a partial of a module-level class, so
    uvicorn can hand it to worker processes.
    """
    return cast("type[asyncio.Protocol]",
                functools.partial(HttpToolsDeadline, header_timeout=header_timeout))
