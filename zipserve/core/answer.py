"""What to answer a GET or HEAD, decided before a byte is sent (pure).

Given what is served (a sized archive, an unsized archive or a file) and what
the request asks (method, validator headers, Range, a pinned ``?etag=``),
`answer_for` returns the status, every header and the layout of the body; the
HTTP layer only sends it (as aiohttp's web_fileresponse decides, then acts).
A refusal comes back as an error for the one place that maps errors to HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from zipserve.core import ranges
from zipserve.core.headers import content_disposition, http_date
from zipserve.errors import PreconditionFailed, RangeNotSatisfiable, ZipserveError

# A half-open byte span of what is served; a stop of None runs to the end of a
# body whose length is not known before it is sent (an unsized archive).
Span = tuple[int, int | None]
# The body is its parts back to back: literal bytes (multipart framing) or spans.
Part = bytes | Span

PINNED_CHANGED = ("the files changed since this link was made (its ?etag= is no longer current):"
                  " fetch the archive again from the start")
# RFC 9110 §15.4.5 (304) and §13.2.2 (412): an answer without content repeats
# only the headers a cache needs to update what it holds.
VALIDATOR_HEADERS = ("ETag", "Last-Modified", "Cache-Control")


@dataclass(frozen=True)
class Served:
    """What a request asks for, as far as the answer depends on it."""

    kind: str  # "archive" or "file": names it in a refusal's message
    content_type: str
    size: int | None  # None: an unsized archive, whose length is known only once sent
    etag: str | None  # strong, with quotes; None for an unsized archive
    last_modified: int | None  # POSIX seconds sent as Last-Modified; None: not sent
    dated: bool  # whether Last-Modified also validates (If-Modified-Since, an If-Range date)
    filename: str | None = None  # an archive's download name (Content-Disposition)

    @classmethod
    def sized_archive(cls, content_type: str, filename: str, size: int, etag: str,
                      last_modified: int) -> Served:
        """Given a sized archive's type, name, length, ETag and newest mtime, return it as served.

        Its Last-Modified does not validate: removing or renaming a file leaves
        the newest mtime as it was, so only the ETag tells versions apart.
        """
        return cls("archive", content_type, size, etag, last_modified, False, filename)

    @classmethod
    def unsized_archive(cls, content_type: str, filename: str) -> Served:
        """Given a streamed archive's type and name, return it as served (no length, no validators)."""
        return cls("archive", content_type, None, None, None, False, filename)

    @classmethod
    def file(cls, content_type: str, size: int, etag: str, last_modified: int) -> Served:
        """Given a file's type, length, ETag and mtime in seconds, return it as served."""
        return cls("file", content_type, size, etag, last_modified, True)


@dataclass(frozen=True)
class Asked:
    """What the request asks, as far as the answer depends on it."""

    method: str
    headers: Mapping[str, str]  # lower-cased names, repeated headers joined with ", "
    pinned: str | None = None  # an archive link's ?etag=: only that version may be sent


@dataclass(frozen=True)
class Answer:
    """The status, the headers and the body's parts to send, or the refusal to map instead."""

    status: int
    headers: dict[str, str]
    body: tuple[Part, ...] | None = None  # None: no content (304, 412, refusals)
    error: ZipserveError | None = None  # set for a refusal; its status and headers are above


def answer_for(served: Served, asked: Asked) -> Answer:
    """Given what is served and what the request asks, return the answer (never raises)."""
    if asked.pinned is not None and asked.pinned.strip('"') != (served.etag or "").strip('"'):
        return refusal(PreconditionFailed(PINNED_CHANGED))
    headers = headers_of(served)
    if served.size is None:
        # No length before sending: no ranges (RFC 9110 §14.2 lets a server
        # ignore Range) and no validator to compare a precondition with.
        return Answer(200, headers, ((0, None),))
    validators = ranges.Validators(size=served.size, etag=served.etag,
                                   last_modified=served.last_modified if served.dated else None)
    decision = ranges.decide(asked.method, asked.headers, validators)
    if decision.status == 416:
        return refusal(RangeNotSatisfiable(f"the requested range is not within the {served.kind}",
                                           size=served.size))
    if decision.status in (304, 412):
        return Answer(decision.status, only_validators(headers))
    return with_body(decision, served, served.size, headers)


def headers_of(served: Served) -> dict[str, str]:
    """Given what is served, return the headers every answer with its content carries."""
    headers = {"Content-Type": served.content_type}
    if served.filename is not None:
        # An archive is a download, and made afresh: no proxy buffering, no caching unchecked.
        headers.update({"Content-Disposition": content_disposition(served.filename),
                        "X-Accel-Buffering": "no", "Cache-Control": "no-cache"})
    # RFC 9110 §14.3: "none" tells a client not to try a Range on a streamed archive.
    headers["Accept-Ranges"] = "bytes" if served.size is not None else "none"
    if served.etag is not None:
        headers["ETag"] = served.etag
    if served.last_modified is not None:
        headers["Last-Modified"] = http_date(served.last_modified)
    return headers


def with_body(decision: ranges.Decision, served: Served, size: int,
              headers: dict[str, str]) -> Answer:
    """Given a 200 or 206 decision, return the answer with its length headers and body parts."""
    if decision.status == 200:
        headers["Content-Length"] = str(size)
        return Answer(200, headers, ((0, size),))
    if len(decision.ranges) == 1:
        start, stop = decision.ranges[0]
        headers["Content-Range"] = ranges.content_range(start, stop, size)
        headers["Content-Length"] = str(stop - start)
        return Answer(206, headers, ((start, stop),))
    # RFC 9110 §14.6: several ranges go as multipart/byteranges, each part framed.
    boundary = ranges.boundary_for(served.etag or "")
    parts, total = ranges.multipart_parts(decision.ranges, size, served.content_type, boundary)
    headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
    headers["Content-Length"] = str(total)
    return Answer(206, headers, tuple(parts))


def only_validators(headers: Mapping[str, str]) -> dict[str, str]:
    """Given full headers, return those a 304 or 412 repeats (RFC 9110 §15.4.5)."""
    return {k: v for k, v in headers.items() if k in VALIDATOR_HEADERS}


def refusal(error: ZipserveError) -> Answer:
    """Given an error, return the answer that refuses with it."""
    return Answer(error.status, error.headers(), error=error)
