"""Object bytes for response bodies: ranged GETs with If-Match that pick up where a body broke
off, and read-ahead within one budget that every stream of the process shares.

A body reads its part in turn straight off the socket, a chunk at a time (the
store's TCP window paces it), and holds in memory only the parts it fetched
ahead. Those come out of one budget per process (`--s3-read-ahead` parts in
all, split evenly between the bodies reading), so a stream alone reads as far
ahead as before while fifty slow clients hold no more than one would: what a
slow client leaves waiting is its own chunks, never 4 parts of 8 MiB.

A GET whose body breaks off (reset, cut, timeout) is asked again for the bytes
still missing, with the same If-Match: the store gives the same version's
bytes or a 412, never another version's, and nothing of the span has left
the server yet. After BODY_ATTEMPTS breaks, or on any refusal, SourceChanged
cuts the connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import urllib3

from zipserve.core.node import Node
from zipserve.errors import SourceChanged
from zipserve.sources.ahead import Ahead, AheadBudget, Share
from zipserve.sources.base import Reader, Span
from zipserve.sources.resumed import BODY_ATTEMPTS, backoff, resumed
from zipserve.sources.s3.signed import Body, SignedGets, StoreError

log = logging.getLogger("zipserve.s3")



class Objects:
    """The bytes of planned objects under one bucket, each GET pinned to the planned ETag."""

    def __init__(self, client: Any, bucket: str, key_of: Callable[[Node], str], *, part: int,
                 ahead: int, pool: ThreadPoolExecutor) -> None:
        self.client, self.bucket, self.key_of = client, bucket, key_of
        self.gets = SignedGets(client, bucket, pool=16 * ahead + 16)
        self.part, self.ahead, self.pool = part, ahead, pool
        self.budget = AheadBudget(ahead * part)

    def stream(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        """Given a planned file and a span, yield its bytes as they arrive; raise SourceChanged.

        A body that breaks off is asked again from the first missing byte (see
        sources/resumed.py), so the chunks are the same whether or not it did.
        """
        def short(got: int) -> Exception:
            return SourceChanged(node.shown, "shorter than planned")

        def on_break(failures: int, got: int, exc: Exception) -> None:
            if failures >= BODY_ATTEMPTS:
                raise SourceChanged(node.shown, f"object store read failed ({exc})") from None
            log.warning("%s: the store's body broke off at byte %d (%s); asking again for"
                        " bytes %d-%d", node.shown, got, exc, got, stop - 1)
            time.sleep(backoff(failures))

        return resumed(lambda got: self._open(node, got, stop), start, stop, chunk,
                       broken=(urllib3.exceptions.HTTPError, OSError), short=short,
                       on_break=on_break)

    def _open(self, node: Node, start: int, stop: int) -> Body:
        """Given a planned file and a span, return the body of a ranged GET of it; raise SourceChanged."""
        from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped]

        try:
            return self.gets.open(self.key_of(node), node.version, start, stop, node.size)
        except StoreError as exc:
            raise SourceChanged(node.shown, exc.reason) from None
        except (BotoCoreError, urllib3.exceptions.HTTPError) as exc:  # no credentials; unreachable
            raise SourceChanged(node.shown, f"object store unreachable ({type(exc).__name__})"
                                ) from None

    def fetch(self, node: Node, start: int, stop: int, chunk: int = 1 << 20) -> list[bytes]:
        """Given a planned file and a span, return all its bytes (for read-ahead); raise SourceChanged."""
        return list(self.stream(node, start, stop, chunk))

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        """Given a planned file and a byte span, yield its bytes; raise SourceChanged.

        Spans of `part` bytes: the one in turn streamed, the next ones fetched
        ahead as far as this reader's share of the budget allows.
        """
        spans = [(lo, min(lo + self.part, stop)) for lo in range(start, stop, self.part)]
        if len(spans) <= 1:
            return self.stream(node, start, stop, chunk)
        return self._parts(node, spans, chunk)

    def _parts(self, node: Node, spans: list[tuple[int, int]], chunk: int) -> Iterator[bytes]:
        share = self.budget.share()
        fetched: dict[int, Future[list[bytes]]] = {}
        try:
            for i, (lo, hi) in enumerate(spans):
                self._top_up(node, spans, i + 1, fetched, share, chunk)
                future = fetched.pop(i, None)
                if future is None:
                    yield from self.stream(node, lo, hi, chunk)
                else:
                    yield from future.result()
                    share.give(hi - lo)
        finally:
            for future in fetched.values():
                future.cancel()
            share.close()

    def _top_up(self, node: Node, spans: list[tuple[int, int]], first: int,
                fetched: dict[int, Future[list[bytes]]], share: Share, chunk: int) -> None:
        """Fetch the spans after the one in turn, in order, while the share allows (at most `ahead`)."""
        for j in range(first, min(first + self.ahead, len(spans))):
            if j in fetched:
                continue
            lo, hi = spans[j]
            if not share.take(hi - lo):
                return
            fetched[j] = self.pool.submit(self.fetch, node, lo, hi, chunk)

    def prefetch(self, spans: Iterable[Span]) -> Reader:
        """Given the spans a body will read, return a Reader fetching the small ones a window ahead."""
        return Ahead(self, spans, self.fetch, self.pool, largest=self.part,
                     max_spans=8 * self.ahead, share=self.budget.share())

    def close(self) -> None:
        self.gets.close()
