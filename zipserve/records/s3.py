"""Records as objects under an S3 prefix, for a fleet: ``<prefix><key>``, the expiry in the object's metadata.

An expired record reads as absent but its object stays: S3 deletes nothing by
itself. Give the prefix a lifecycle rule (expire objects some days after the
longest link lifetime, --max-lifetime) to reclaim the space. A key put again
keeps the later expiry: the put reads the object's expiry first (a HEAD), so
two servers putting one key at the same moment may leave the earlier one;
a link then lives as long as the shorter expiry.

The client is the one an s3:// root uses (sources/s3/client.py), made from the
same options (--s3-endpoint and the AWS environment); boto3 is imported only
when such a store is opened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from zipserve.errors import BadGateway, Unavailable, ZipserveError
from zipserve.records.base import MAX_RECORD, check_key, check_record, expired, later
from zipserve.sources.plugin import Options, text
from zipserve.sources.s3.client import make_client
from zipserve.sources.s3.errors import code, is_missing, refusal
from zipserve.sources.s3.keys import parse_root
from zipserve.sources.s3.options import ENDPOINT

EXPIRES = "zipserve-expires"  # the metadata field (x-amz-meta-zipserve-expires): POSIX seconds


class S3Records:
    """Records under ``s3://bucket/prefix`` of the configured store."""

    def __init__(self, client: Any, bucket: str, prefix: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.client, self.bucket, self.prefix, self.clock = client, bucket, prefix, clock

    def get(self, digest: str) -> bytes | None:
        """Given a key, return its record's bytes, or None when absent or expired.

        Raises ValueError for a bad key, Unavailable or BadGateway when the store fails.
        """
        key = self.prefix + check_key(digest)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            with response["Body"] as body:
                data = bytes(body.read(MAX_RECORD + 1))  # more is no record we wrote
        except Exception as exc:
            if is_missing(exc):
                return None
            raise failure(exc, "reading a record") from None
        if expired(expiry(response.get("Metadata", {})), self.clock()):
            return None
        return data

    def put(self, digest: str, data: bytes, *, expires: int | None = None) -> None:
        """Given a key, its bytes and their expiry, keep them; a key put again keeps the later expiry.

        Raises ValueError for a bad key or record, Unavailable or BadGateway when the store fails.
        """
        key = self.prefix + check_key(digest)
        check_record(data, expires)
        try:
            live, held = self._held(key)
            if live:
                expires = later(held, expires)
            meta = {} if expires is None else {EXPIRES: str(expires)}
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=meta,
                                   ContentType="application/octet-stream")
        except ZipserveError:
            raise
        except Exception as exc:
            raise failure(exc, "writing a record") from None

    def _held(self, key: str) -> tuple[bool, int | None]:
        """Given an object key, return whether a live record is there, and its expiry (None: never)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if is_missing(exc):
                return False, None
            raise
        held = expiry(head.get("Metadata", {}))
        return not expired(held, self.clock()), held

    def probe(self) -> None:
        """List one key under the prefix; raise Unavailable or BadGateway as a request would meet them."""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except Exception as exc:
            raise failure(exc, "listing its prefix") from None

    def close(self) -> None:
        self.client.close()


def expiry(metadata: dict[str, str]) -> int | None:
    """Given an object's metadata, return its record's expiry (None: never; 0, long past, if malformed)."""
    value = metadata.get(EXPIRES)
    if value is None:
        return None
    return int(value) if value.isdigit() else 0


def failure(exc: Exception, what: str) -> ZipserveError:
    """Given a boto3 error, return the refusal a request meets: 503 if it may pass, else 502."""
    if isinstance(refusal(exc, ""), Unavailable):
        return Unavailable(f"the record store is unreachable or busy while {what};"
                           " try again shortly")
    return BadGateway(f"the record store failed while {what}"
                      f" ({code(exc) or type(exc).__name__})")


def open_s3(spec: str, options: Options) -> S3Records:
    """Given a checked s3:// records spec and the s3 options (defaults filled in), return its store."""
    bucket, prefix = parse_root(spec)
    return S3Records(make_client(text(options, ENDPOINT), pool=16), bucket, prefix)
