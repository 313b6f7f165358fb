"""Read-ahead for sources where every read is a round trip: a body's small spans fetched a window ahead.

A store that answers each read after a round trip would spend most of a body
of many small files waiting; `Ahead` fetches those files on a pool before the
body asks, within the body's share of a per-process memory budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Protocol

from zipserve.core.node import Node, RelPath
from zipserve.sources.base import Reader, Span


def span_key(node: Node, start: int, stop: int) -> tuple[RelPath, str, int, int, int]:
    """Given a file and a span, return what names those bytes of that version of the file."""
    return node.path, node.version, node.size, start, stop


class Budgeted(Protocol):
    """A body's part of its source's memory budget for bytes fetched ahead: take before, give back after."""

    def take(self, size: int) -> bool: ...

    def give(self, size: int) -> None: ...

    def close(self) -> None: ...


class Ahead:
    """A Reader that fetches the small spans a body will read, a bounded window ahead of it.

    Each object read costs a round trip to the store; many small files read one
    after the other would spend most of their time waiting. Spans are fetched
    whole on the pool, at most `max_spans` at a time and as many bytes as the
    body's `share` of the process's read-ahead budget allows (so memory stays
    flat however many bodies run), and handed out when the body asks for that
    very span; any other read (a big file, a span out of turn) goes straight to
    the source. A fetch that failed raises when its span is read, not before.
    The window starts at two spans and doubles as spans are taken, so the first
    byte does not wait behind a whole window of fetches sharing the bandwidth.
    """

    def __init__(self, source: Reader, spans: Iterable[Span], fetch: Callable[..., list[bytes]],
                 pool: Executor, *, largest: int, max_spans: int, share: Budgeted) -> None:
        self.source, self.fetch, self.pool, self.share = source, fetch, pool, share
        self.max_spans = max_spans
        self._window = min(2, max_spans)
        self._todo: Iterator[Span] = (s for s in spans if 0 < s[2] - s[1] <= largest)
        self._queued: dict[tuple[RelPath, str, int, int, int], tuple[int, Future[list[bytes]]]] = {}
        self._next: Span | None = None
        self._fill()

    def _fill(self) -> None:
        while len(self._queued) < self._window:
            span = self._next or next(self._todo, None)
            if span is None:
                return
            key = span_key(*span)
            size = span[2] - span[1]
            if key not in self._queued:
                if not self.share.take(size):
                    self._next = span  # fetched when the budget has room again, or read in turn
                    return
                self._queued[key] = (size, self.pool.submit(self.fetch, *span))
            self._next = None

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        key = span_key(node, start, stop)
        queued = self._queued.pop(key, None)
        if queued is None:
            if self._next is not None and span_key(*self._next) == key:
                self._next = None  # read in turn: no need to fetch it ahead any more
            self._fill()
            return self.source.read(node, start, stop, chunk)
        self.share.give(queued[0])
        self._window = min(self.max_spans, 2 * self._window)
        self._fill()
        return iter(queued[1].result())

    def close(self) -> None:
        for _, future in self._queued.values():
            future.cancel()
        self._queued.clear()
        self._todo = iter(())
        self._next = None
        self.share.close()


class AheadBudget:
    """Bytes fetched ahead of the bodies of one process and not yet taken: at most `total` in all."""

    def __init__(self, total: int) -> None:
        self.total, self.used, self.readers = total, 0, 0
        self.lock = threading.Lock()

    def share(self) -> Share:
        """Return a new reader's part of the budget (an even split between the readers asking)."""
        return Share(self)


class Share:
    """One reader's part of an AheadBudget: take before fetching ahead, give back once taken.

    A reader joins the split when it first asks, so one that never reads ahead
    (a body of big files has a Reader for its small spans too) halves no one's part.
    """

    def __init__(self, budget: AheadBudget) -> None:
        self.budget, self.held = budget, 0
        self.joined = self.closed = False

    def take(self, size: int) -> bool:
        """Given a span's size, reserve it and return True, or False when over the share or the budget."""
        b = self.budget
        with b.lock:
            if self.closed:
                return False
            if not self.joined:
                self.joined = True
                b.readers += 1
            fair = b.total // b.readers
            if self.held + size > fair or b.used + size > b.total:
                return False
            self.held += size
            b.used += size
            return True

    def give(self, size: int) -> None:
        with self.budget.lock:
            size = min(size, self.held)
            self.held -= size
            self.budget.used -= size

    def close(self) -> None:
        """Give back everything held and leave the split (idempotent)."""
        with self.budget.lock:
            if not self.closed:
                self.closed = True
                self.budget.used -= self.held
                self.budget.readers -= 1 if self.joined else 0
                self.held = 0


class Parted:
    """A Reader of big spans in parts: the part in turn streamed, the next ones fetched ahead.

    A span over `part` bytes is cut into parts of `part` bytes (rounded down to
    a multiple of the read's chunk, so the chunks handed out are cut where one
    read of the whole span cuts them). While the body streams one part, up to
    `ahead` next ones are fetched on the pool, as far as the body's `share` of
    the read-ahead budget allows; shorter spans go straight to the source.
    """

    def __init__(self, source: Reader, fetch: Callable[..., list[bytes]], pool: Executor,
                 share: Budgeted, *, part: int, ahead: int = 2) -> None:
        self.source, self.fetch, self.pool, self.share = source, fetch, pool, share
        self.part, self.ahead = part, ahead

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        size = max(chunk, self.part // chunk * chunk)
        if stop - start <= size:
            return self.source.read(node, start, stop, chunk)
        return self._parts(node, [(lo, min(lo + size, stop)) for lo in range(start, stop, size)], chunk)

    def _parts(self, node: Node, parts: list[tuple[int, int]], chunk: int) -> Iterator[bytes]:
        fetched: dict[int, Future[list[bytes]]] = {}
        try:
            for i, (lo, hi) in enumerate(parts):
                for j in range(i + 1, min(i + 1 + self.ahead, len(parts))):
                    if j not in fetched:
                        if not self.share.take(parts[j][1] - parts[j][0]):
                            break
                        fetched[j] = self.pool.submit(self.fetch, node, *parts[j], chunk)
                future = fetched.pop(i, None)
                if future is None:
                    yield from self.source.read(node, lo, hi, chunk)
                else:
                    self.share.give(hi - lo)
                    yield from future.result()
        finally:
            for j, future in fetched.items():
                future.cancel()
                self.share.give(parts[j][1] - parts[j][0])

    def close(self) -> None:
        """Nothing of its own: the share is the body's, closed with its Ahead."""
