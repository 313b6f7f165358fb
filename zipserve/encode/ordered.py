"""Work handed to the compression pool, its output taken back in order, a bounded amount ahead.

A compressed body is a sequence of items: bytes to send as they are, a Task (work on the pool
and what its result becomes once its turn comes) or a Later (bytes made only when their turn
comes, such as a data descriptor that needs the CRC of everything before it).  The producer of
the items reads input and submits work; `in_order` pulls it only while the work in flight
weighs less than its limit, so one ordered window runs across every entry of an archive: the
workers never wait for the blocks of one file to drain before the next file's are submitted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, wait
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Stream = Generator[bytes, None, None]  # closable, so a dropped download stops its work


class Task(Generic[T]):
    """Work submitted to the pool, `weight` bytes of input, and `take`: its result -> output."""

    __slots__ = ("future", "take", "weight")

    def __init__(self, future: Future[T], take: Callable[[T], Iterable[bytes]], weight: int) -> None:
        self.future, self.take, self.weight = future, take, weight


class Later:
    """Output made when its turn comes: `make` reads state that the items before it filled."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Iterable[bytes]]) -> None:
        self.make = make


Item = bytes | Task[Any] | Later


def _weight(item: Item) -> int:
    return item.weight if isinstance(item, Task) else len(item) if isinstance(item, bytes) else 0


def _output(item: Item) -> Iterable[bytes]:
    if isinstance(item, bytes):
        return (item,)
    if isinstance(item, Task):
        return item.take(item.future.result())
    return item.make()


def in_order(items: Iterator[Item], *, limit: int) -> Stream:
    """Given items (whose producer submits their work) and a weight limit, return their output in order.

    The producer is pulled only while the tasks and bytes held weigh less than `limit`, so input
    is read only as output is taken (the backpressure), and whatever the producer has submitted
    is done in order.  A producer that fails has everything before the failure sent first.
    Closing the stream cancels queued work and waits for running work.
    """
    held: deque[Item] = deque()
    weight = 0
    try:
        for item in _guarded(items):
            held.append(item)
            weight += _weight(item)
            while held and (weight >= limit or _ready(held[0])):
                head = held.popleft()
                weight -= _weight(head)
                yield from _output(head)
        while held:
            yield from _output(held.popleft())
    finally:
        _abandon(held)
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _ready(item: Item) -> bool:
    return not isinstance(item, Task) or item.future.done()


def _guarded(items: Iterator[Item]) -> Iterator[Item]:
    """Given the producer, yield its items; when it fails, mark the failure to be raised in turn."""
    try:
        yield from items
    except Exception as exc:  # sent after what came before it, as a plain stream would be
        failure: Future[None] = Future()
        failure.set_exception(exc)
        yield Task(failure, lambda _: (), 0)


def _abandon(held: deque[Item]) -> None:
    """Given items no one will take, cancel their queued work and wait for the running work."""
    futures = [item.future for item in held if isinstance(item, Task)]
    for future in futures:
        future.cancel()
    wait(futures)
    held.clear()
