"""HTTP(S) objects named by manifest entries: stat by HEAD, bytes by ranged GETs pinned to a validator.

`stat` asks HEAD for the size (Content-Length), the validator (a strong ETag,
else Last-Modified) and the mtime (Last-Modified). `read` asks for byte
ranges with If-Range on that validator (RFC 9110 §13.1.5), plus If-Match on
an ETag (§13.1.1) or If-Unmodified-Since on a date (§13.1.4): an origin
whose object was replaced answers 412, or 200 with the whole new object,
and either raises SourceChanged, so no body ever mixes two versions.

Requests that fail before their response's first byte (no connection, 5xx,
429) are asked again with backoff; a body that breaks off is asked again
from its first missing byte under the same validator, BODY_ATTEMPTS times.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import ssl
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor

from zipserve.core.node import Node
from zipserve.core.urlpolicy import Url, UrlPolicy, shown_url
from zipserve.errors import BadGateway, NotFound, SourceChanged, Unavailable, ZipserveError
from zipserve.sources.ahead import Ahead, Budgeted, Parted
from zipserve.sources.base import Reader, Span
from zipserve.sources.http.fetch import Fetcher, Resolver, resolve
from zipserve.sources.resumed import BODY_ATTEMPTS, backoff, resumed

log = logging.getLogger("zipserve.http_source")

ATTEMPTS = 3  # requests that fail before their first byte
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
FILE_MODE = 0o644
# Spans up to this size are fetched ahead whole, one request each; a body holds one such
# file at most to send its CRC in its header without reading it twice (Encoder.hold).
WHOLE_READ = 4 << 20
PART = 4 << 20  # longer spans: read in parts of this size, the next ones fetched ahead


def validator_of(response: http.client.HTTPResponse) -> str:
    """Given a response, return its strong ETag, else its Last-Modified, else ""."""
    etag = response.getheader("ETag") or ""
    if etag.startswith('"') and etag.endswith('"') and len(etag) >= 2:
        return etag  # RFC 9110 §8.8.3: W/"..." is weak and cannot pin a range
    return response.getheader("Last-Modified") or ""


def mtime_ns_of(response: http.client.HTTPResponse) -> int:
    """Given a response, return its Last-Modified in nanoseconds since the epoch, or 0."""
    text = response.getheader("Last-Modified")
    try:
        when = email.utils.parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError):
        when = None
    return int(when.timestamp()) * 1_000_000_000 if when is not None else 0


def conditions(validator: str) -> dict[str, str]:
    """Given a validator, return the headers that make a ranged GET fail if the object changed."""
    if not validator:
        return {}
    if validator.startswith('"'):
        return {"If-Range": validator, "If-Match": validator}
    return {"If-Range": validator, "If-Unmodified-Since": validator}


class HttpObjects:
    """Objects behind allowlisted http(s) URLs; a Node's path is its one checked URL."""

    def __init__(self, policy: UrlPolicy, *, timeout: float = 10.0, resolver: Resolver = resolve,
                 context: ssl.SSLContext | None = None) -> None:
        self.fetcher = Fetcher(policy, timeout=timeout, resolver=resolver, context=context)

    def stat(self, raw: str) -> Node:
        """Given a URL, return its Node (path: the normalised URL, version: the validator).

        Raises BadRequest or Forbidden (policy), NotFound (404, 410), BadGateway
        (another answer, no Content-Length, too many redirects) or Unavailable.
        """
        response, url = self.attempt("HEAD", raw, {})
        with response:
            status = response.status
            length = response.getheader("Content-Length") or ""
            if status in (404, 410):
                raise NotFound("no object at this URL", path=shown_url(raw))
            if status != 200:
                raise BadGateway(f"{shown_url(raw)}: HEAD answered {status}")
            if not length.isdigit():
                raise BadGateway(f"{shown_url(raw)}: HEAD gave no Content-Length")
            mtime = mtime_ns_of(response)
            return Node(path=(str(url),), kind="file", size=int(length), mtime_ns=mtime,
                        mode=FILE_MODE, dev=0, ino=0, ctime_ns=mtime, version=validator_of(response))

    def attempt(self, method: str, raw: str, headers: dict[str, str]
                ) -> tuple[http.client.HTTPResponse, Url]:
        """Given a request, send it, retrying failures before the first byte; return (response, url).

        Raises what Fetcher.request raises, BadGateway for a certificate that fails
        verification, and Unavailable once ATTEMPTS failed.
        """
        for failures in range(1, ATTEMPTS + 1):
            try:
                response, url = self.fetcher.request(method, raw, headers)
            except ssl.SSLCertVerificationError as exc:  # asking again would not change the answer
                raise BadGateway(f"{shown_url(raw)}: origin's certificate refused ({exc.reason})"
                                 ) from None
            except (OSError, http.client.HTTPException) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if response.status not in RETRY_STATUS:
                    return response, url
                reason = f"status {response.status}"
                response.close()
            if failures < ATTEMPTS:
                log.warning("%s: %s failed (%s); asking again", shown_url(raw), method, reason)
                time.sleep(backoff(failures))
        raise Unavailable(f"{shown_url(raw)}: origin unreachable ({reason})")

    def read(self, node: Node, start: int, stop: int, chunk: int = 1 << 16) -> Iterator[bytes]:
        """Given a stat'ed Node and a byte span, yield its bytes in `chunk`-sized pieces; raise SourceChanged.

        Chunks are `chunk` bytes from `start` (the last may be shorter) whether
        or not a body broke off and was asked again (see sources/resumed.py).
        """
        shown = shown_url(node.shown)

        def short(got: int) -> Exception:
            return http.client.IncompleteRead(b"", stop - got)

        def on_break(failures: int, got: int, exc: Exception) -> None:
            if failures >= BODY_ATTEMPTS:
                raise SourceChanged(shown, f"origin read failed ({exc})") from None
            log.warning("%s: the origin's body broke off at byte %d (%s); asking again for"
                        " bytes %d-%d", shown, got, exc, got, stop - 1)
            time.sleep(backoff(failures))

        return resumed(lambda got: self.open(node, got, stop), start, stop, chunk,
                       broken=(OSError, http.client.HTTPException), short=short, on_break=on_break)

    def open(self, node: Node, start: int, stop: int) -> http.client.HTTPResponse:
        """Given a Node and a span, return the response to a pinned ranged GET of it; raise SourceChanged."""
        shown = shown_url(node.shown)
        headers = {"Range": f"bytes={start}-{stop - 1}", **conditions(node.version)}
        try:
            response, _ = self.attempt("GET", node.path[0], headers)
        except ZipserveError as exc:
            raise SourceChanged(shown, exc.message) from None
        status, content_range = response.status, response.getheader("Content-Range")
        same_etag = not node.version.startswith('"') or response.getheader("ETag") == node.version
        if status == 206 and content_range == f"bytes {start}-{stop - 1}/{node.size}" and same_etag:
            return response
        response.close()
        if status in (200, 206, 412, 416):
            # RFC 9110 §13.1.5: a 200 to a ranged If-Range request means the validator no longer matches.
            raise SourceChanged(shown, "the object changed since the request was planned")
        raise SourceChanged(shown, f"the origin answered {status} to a ranged GET")

    def fetch(self, node: Node, start: int, stop: int, chunk: int = 1 << 20) -> list[bytes]:
        """Given a Node and a span, return all its bytes (for read-ahead); raise SourceChanged."""
        return list(self.read(node, start, stop, chunk))

    def prefetch(self, spans: Iterable[Span], pool: Executor, share: Budgeted, *,
                 largest: int = WHOLE_READ, max_spans: int = 16, part: int = PART) -> Reader:
        """Given the spans a body will read, a pool and the body's share of a read-ahead budget,
        return a Reader fetching spans up to `largest` bytes a window ahead, and longer ones
        in parts of `part` bytes, the next ones fetched while the body streams one."""
        parted = Parted(self, self.fetch, pool, share, part=part)
        return Ahead(parted, spans, self.fetch, pool, largest=largest, max_spans=max_spans, share=share)

    def close(self) -> None:
        """Close the connections kept alive for later requests."""
        self.fetcher.close()
