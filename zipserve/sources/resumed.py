"""A span of a remote object read as ranged requests, resumed where a body broke off.

Object stores and HTTP origins cut bodies now and then. The span is asked
again from its first missing byte (under the same validator, so the same
version or a refusal), and the chunks handed out are cut at the same offsets
either way, so whatever is made of them (a compressed stream) does not depend
on where a body broke.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Protocol

BODY_ATTEMPTS = 3  # requests of one span whose body breaks off
BACKOFF = 0.1  # seconds before the first retry, doubled each time, with jitter


class Body(Protocol):
    """The body of one ranged response."""

    def read(self, size: int) -> bytes: ...

    def close(self) -> None: ...


def backoff(failures: int) -> float:
    """Given how many attempts failed, return the seconds to wait before the next."""
    return float(BACKOFF * 2 ** (failures - 1) * random.uniform(0.5, 1.0))


def resumed(open_at: Callable[[int], Body], start: int, stop: int, chunk: int, *,
            broken: tuple[type[Exception], ...], short: Callable[[int], Exception],
            on_break: Callable[[int, int, Exception], None]) -> Iterator[bytes]:
    """Given how to open a body from an offset to `stop`, yield bytes [start, stop) in `chunk`-sized pieces.

    `short(got)` is raised when a body ends early; an exception of `broken`
    calls `on_break(failures, got, exc)`, which raises to give up or returns
    (after its own wait) to ask again from byte `got`.
    """
    sent = got = start  # bytes handed out; bytes received (the chunk being made between)
    pieces: list[bytes] = []
    failures = 0
    while sent < stop:
        body = open_at(got)
        try:
            while sent < stop:
                size = min(chunk, stop - sent)
                data = body.read(size - (got - sent))
                if not data:
                    raise short(got)
                pieces.append(data)
                got += len(data)
                if got - sent == size:
                    out = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    pieces, sent = [], got
                    yield out
        except broken as exc:
            failures += 1
            on_break(failures, got, exc)
        finally:
            body.close()
