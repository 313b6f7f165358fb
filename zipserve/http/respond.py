"""Answer -> response: a plan or a file is described, answered by core.answer, then sent.

The decision (status, headers, body parts) is made before any byte by the pure
`answer_for`; this module only turns its body parts into a BodyResponse's body
factory and, for archives, holds the stream cap, the metrics and the log line.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import anyio
from starlette.requests import Request

from zipserve.core.answer import Answer, Asked, Part, Served, answer_for
from zipserve.core.headers import file_etag
from zipserve.core.node import Node
from zipserve.core.plan import ArchivePlan
from zipserve.encode.encoder import Encoder
from zipserve.errors import Busy
from zipserve.http.metrics import Metrics
from zipserve.http.streaming import BodyResponse, Chunk, Outcome
from zipserve.settings import Settings

log = logging.getLogger("zipserve.access")

# Makes a body; takes whether it may hold FileParts (see streaming.BodyResponse).
BodyFactory = Callable[[bool], Iterator[Chunk]]
# Makes the bytes of one span of what is served, likewise.
SliceOf = Callable[[int, int | None, bool], Iterator[Chunk]]


@dataclass(frozen=True)
class Sender:
    """How this app sends bodies: worker threads, stall timeout, Wires, and the archive stream cap."""

    limiter: anyio.CapacityLimiter
    send_timeout: float
    direct: bool
    metrics: Metrics
    max_streams: int

    @classmethod
    def of(cls, settings: Settings, metrics: Metrics) -> Sender:
        """Given settings and the app's metrics, return its Sender."""
        return cls(anyio.CapacityLimiter(max(settings.max_streams * 2, 8)), settings.send_timeout,
                   settings.direct_send, metrics, settings.max_streams)

    def respond(self, status: int, headers: Mapping[str, str], body: BodyFactory | None,
                on_done: Callable[[Outcome], None] | None = None) -> BodyResponse:
        """Given a status, headers and a body factory (None: no content), return the response."""
        return BodyResponse(status, headers, body, limiter=self.limiter,
                            send_timeout=self.send_timeout, on_done=on_done, direct=self.direct)


def serve_archive(plan: ArchivePlan, request: Request, encoder: Encoder,
                  sender: Sender) -> BodyResponse:
    """Given a plan, decide the answer (pinned ETag, preconditions, range), then send it.

    Raises the answer's refusal, or Busy when a body would exceed the stream cap.
    """
    answer = answer_for(served_archive(plan), asked(request, request.query_params.get("etag")))
    if answer.error is not None or answer.body is None:
        return without_body(answer, sender)
    body = body_of(answer.body, lambda a, b, zero_copy: encoder.batches(plan, a, b,
                                                                         parts=zero_copy))
    counted = request.method != "HEAD"  # a HEAD sends no body: it takes no stream slot
    if counted and not sender.metrics.try_start(sender.max_streams):
        raise Busy(f"more than {sender.max_streams} archives in flight; try again shortly")
    started = time.monotonic()

    def done(outcome: Outcome) -> None:
        seconds = time.monotonic() - started
        if counted:
            sender.metrics.finish(outcome, seconds)
        log_archive(plan, outcome, seconds)
    return sender.respond(answer.status, answer.headers, body, done)


def serve_file(node: Node, request: Request, encoder: Encoder, sender: Sender) -> BodyResponse:
    """Given a file node, decide the answer (preconditions, range), then send it; raise its refusal."""
    answer = answer_for(served_file(node), asked(request))
    if answer.error is not None or answer.body is None:
        return without_body(answer, sender)
    body = body_of(answer.body, lambda a, b, zero_copy: encoder.file_body(
        node, a, node.size if b is None else b, parts=zero_copy))
    return sender.respond(answer.status, answer.headers, body)


def without_body(answer: Answer, sender: Sender) -> BodyResponse:
    """Given an answer without content, raise its refusal for the error mapping, or send it."""
    if answer.error is not None:
        raise answer.error
    return sender.respond(answer.status, answer.headers, None)


def served_archive(plan: ArchivePlan) -> Served:
    """Given a plan, return the archive as the answer sees it."""
    if not plan.sized:
        return Served.unsized_archive(plan.content_type, plan.filename)
    assert plan.total is not None and plan.etag is not None
    return Served.sized_archive(plan.content_type, plan.filename, plan.total, plan.etag,
                                plan.last_modified)


def served_file(node: Node) -> Served:
    """Given a file node, return the file as the answer sees it."""
    ctype = mimetypes.guess_type(node.path[-1])[0] or "application/octet-stream"
    return Served.file(ctype, node.size, file_etag(node.size, node.mtime_ns, node.version),
                       node.mtime_ns // 1_000_000_000)


def asked(request: Request, pinned: str | None = None) -> Asked:
    """Given a request (and an archive link's ?etag=), return what it asks."""
    return Asked(request.method, lower(request), pinned)


def lower(request: Request) -> dict[str, str]:
    """Given a request, return its headers as a lower-cased dict, repeated ones joined."""
    out: dict[str, str] = {}
    for key, value in request.headers.items():
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def body_of(parts: tuple[Part, ...], slice_of: SliceOf) -> BodyFactory:
    """Given an answer's body parts, return its body factory: one span as it is, or each part in turn."""
    if len(parts) == 1 and isinstance(parts[0], tuple):
        start, stop = parts[0]
        return lambda zero_copy: slice_of(start, stop, zero_copy)

    def multipart(zero_copy: bool) -> Iterator[Chunk]:
        for part in parts:
            if isinstance(part, bytes):
                yield part
            else:
                yield from slice_of(*part, zero_copy)
    return multipart


def log_archive(plan: ArchivePlan, outcome: Outcome, seconds: float) -> None:
    """Given a plan and how its body ended, log one JSON line about it."""
    log.info("archive %s", json.dumps({
        "name": plan.filename, "format": plan.options.format, "entries": len(plan.entries),
        "bytes_planned": sum(e.node.size for e in plan.entries), "status": outcome.status,
        "bytes_sent": outcome.sent, "outcome": outcome.result, "error": outcome.error,
        "seconds": round(seconds, 3), "path": outcome.path, "bytes_unread": outcome.unread},
        ensure_ascii=False))
