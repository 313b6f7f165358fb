"""Data GETs as presigned URLs fetched with urllib3: boto3 signs, urllib3 carries the bytes.

A boto3 get_object costs ~3 ms of CPU a request, most of it building and
parsing the request in Python; signing a URL costs ~0.3 ms and urllib3's
request ~0.7. On the Ceph RGW sharing two cores with the server, 16 threads
of presigned GETs read the mixed tree at 1.04-1.42 CPU s/GB against boto3's
1.78-2.20 (bench/bench_s3_reference.py). The credentials, region and
addressing style stay boto3's (the URL is signed by the same client, SigV4,
If-Match and Range among the signed headers). What boto3's standard retry mode did before a response (5xx,
throttling, resets, refused connections: 4 tries, backoff) urllib3's Retry
does here; a body that breaks later is resumed by the caller.
"""

from __future__ import annotations

from typing import Any

import urllib3
from urllib3.util import Retry, Timeout

PRESIGNED_SECONDS = 900  # a URL is used at once; this only bounds a slow connect and retries
RETRY = Retry(total=3, connect=3, read=0, status=3, backoff_factor=0.5, backoff_max=4,
              backoff_jitter=0.5, status_forcelist=(500, 502, 503, 504),
              allowed_methods=frozenset({"GET"}), raise_on_status=False,
              respect_retry_after_header=True)
TIMEOUT = Timeout(connect=5, read=30)
# Statuses of a pinned ranged GET -> why the transfer stops (RFC 9110 13.1.1, 15.5.17).
REASONS = {412: "replaced since the request was planned", 404: "vanished",
           416: "shrank since the request was planned"}


class StoreError(Exception):
    """A data GET answered something else than the span: `reason` says what it means."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Body:
    """A response body that goes back to the pool when read to its end, else is closed."""

    def __init__(self, response: urllib3.BaseHTTPResponse, length: int) -> None:
        self.response, self.left = response, length

    def read(self, size: int) -> bytes:
        """Given a size, return up to that many bytes; raise ProtocolError where the body broke off.

        What arrived before a cut is returned first (urllib3 would drop it with
        its own length check), so the caller asks again from the right byte.
        """
        data = self.response.read(min(size, self.left)) if self.left else b""
        if not data and self.left:
            raise urllib3.exceptions.ProtocolError(f"body ended {self.left} bytes early")
        self.left -= len(data)
        return data

    def close(self) -> None:
        if self.left == 0:
            self.response.release_conn()  # whole: the connection may carry the next GET
        else:
            self.response.close()


class SignedGets:
    """Ranged, pinned GETs of one bucket's objects through presigned URLs."""

    def __init__(self, client: Any, bucket: str, pool: int) -> None:
        self.client, self.bucket = client, bucket
        self.http = urllib3.PoolManager(maxsize=pool, retries=RETRY, timeout=TIMEOUT)

    def open(self, key: str, version: str, start: int, stop: int, size: int) -> Body:
        """Given an object, its planned ETag and a span, return the span's body.

        Raises StoreError when the store answers anything but those bytes, and
        urllib3's HTTPError when it cannot be reached (after the retries).
        """
        span = f"bytes={start}-{stop - 1}"
        # SigV4 signs If-Match and Range too: the URL is good for this span of this version only.
        url = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key, "IfMatch": version,
                                  "Range": span}, ExpiresIn=PRESIGNED_SECONDS)
        response = self.http.request("GET", url, headers={"If-Match": version, "Range": span},
                                     preload_content=False, enforce_content_length=False)
        if response.status != 206:
            response.close()
            raise StoreError(REASONS.get(response.status,
                                         f"object store read failed ({response.status})"))
        if response.headers.get("Content-Range") != f"bytes {start}-{stop - 1}/{size}":
            response.close()
            raise StoreError("size changed since the request was planned")
        return Body(response, stop - start)

    def close(self) -> None:
        self.http.clear()
