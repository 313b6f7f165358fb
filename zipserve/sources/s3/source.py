"""An S3 prefix as a Source: listings, stats and ranged reads through boto3, in worker threads.

The rooms: keys.py names paths by keys, listing.py stats and walks from
ListObjectsV2 (planning reads no object), read.py reads objects, crc.py
shares CRCs across a fleet, errors.py says what the store's errors mean,
client.py makes the boto3 client.

The object's ETag is the node's `version`, sent as If-Match on every GET, so
an object replaced mid-stream fails its next GET (412) and the transfer is
aborted instead of mixing two versions. A file's span is fetched as ranged
GETs of `part` bytes, the one in turn streamed and the next ones fetched
ahead on a thread pool, within one read-ahead budget per process, so one
stream runs near what the store gives while memory stays flat however many
streams run; bodies made of many small files fetch whole files a bounded
window ahead (sources.ahead). Transient errors are retried by botocore's
"standard" mode (with backoff) before the response reaches us; a body that
breaks off is asked again for its missing bytes with the same If-Match, which
yields the same bytes or a 412, never another version's. Anything else after
the headers raises SourceChanged, so the connection is cut.

Capabilities (sources.base): SharesCrcs (with --s3-crc-prefix), KnowsCrcs
(the store's CRC32 checksum of a whole object) and FetchesWhole (a file up to
one part is one GET); never SendsUnread.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zipserve.core.limits import Budget
from zipserve.core.node import Node, RelPath
from zipserve.sources.base import Reader, Span
from zipserve.sources.s3.crc import S3CrcStore
from zipserve.sources.s3.errors import refusal
from zipserve.sources.s3.keys import Keys
from zipserve.sources.s3.listing import Listings
from zipserve.sources.s3.read import Objects

KNOWN_CRC_MIN = 1 << 20  # below this, asking the store for its checksum costs about a read


def crc_from_checksum(value: str | None, kind: str | None) -> int | None:
    """Given S3's ChecksumCRC32 and ChecksumType, return the CRC-32 of the whole object, or None.

    A multipart upload's COMPOSITE checksum ("...-N") is a CRC of the parts' CRCs,
    not of the object's bytes: it is of no use for a ZIP header.
    """
    if not value or (kind is not None and kind != "FULL_OBJECT") or "-" in value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return int.from_bytes(raw, "big") if len(raw) == 4 else None


class S3Source:
    """The keys under ``s3://bucket/prefix`` as a read-only tree."""

    def __init__(self, bucket: str, prefix: str, client: Any, *, part: int = 8 << 20,
                 ahead: int = 4, crc_prefix: str | None = None, endpoint: str | None = None) -> None:
        self.bucket, self.prefix, self.client = bucket, prefix, client
        self.part, self.ahead, self.endpoint = part, ahead, endpoint
        self.whole_read = part  # one GET each: holding one costs no more than reading ahead
        self.keys = Keys(bucket, prefix, crc_prefix)
        self.listings = Listings(client, self.keys)
        self.pool = ThreadPoolExecutor(max_workers=8 * ahead, thread_name_prefix="zipserve-s3")
        self.objects = Objects(client, bucket, self.keys.key_of, part=part, ahead=ahead,
                               pool=self.pool)
        self.crc_prefix = crc_prefix
        self.crc_store = S3CrcStore(client, bucket, crc_prefix) if crc_prefix else None

    def close(self) -> None:
        if self.crc_store is not None:
            self.crc_store.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.objects.close()
        self.client.close()

    def check(self) -> None:
        """Ask the store for one key under the prefix; raise the refusal a request would meet."""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except Exception as exc:
            raise refusal(exc, "") from None

    def crc_key(self, node: Node) -> str:
        # Bucket, key, ETag and size: the same object version on every machine.
        return f"s3|{self.bucket}|{self.keys.key(node.path)}|{node.version}|{node.size}"

    def stat(self, rel: RelPath) -> Node:
        """Given a relative path, return its Node: a folder if any key lies below it, else the object."""
        return self.listings.stat(rel)

    def walk(self, top: Node, budget: Budget) -> Iterator[Node]:
        """Given a Node, yield it and, for a folder, every file and folder below it; raise TooLarge."""
        return self.listings.walk(top, budget)

    def children(self, folder: Node) -> list[Node]:
        """Given a folder Node, return its safe entries one level down (folders' times unknown: 0)."""
        return self.listings.children(folder)

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        """Given a planned file and a byte span, yield its bytes; raise SourceChanged."""
        return self.objects.read(node, start, stop, chunk)

    def prefetch(self, spans: Iterable[Span]) -> Reader:
        """Given the spans a body will read, return a Reader fetching its small files a window ahead."""
        return Settling(self.objects.prefetch(spans), self.crc_store)

    def known_crc(self, node: Node) -> int | None:
        """Given a big file, return the store's CRC-32 of the whole object, when it keeps one."""
        if node.size < KNOWN_CRC_MIN:
            return None
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.keys.key(node.path),
                                           IfMatch=node.version, ChecksumMode="ENABLED")
        except Exception:
            return None  # the read that follows meets the same error and reports it
        return crc_from_checksum(head.get("ChecksumCRC32"), head.get("ChecksumType"))


class Settling:
    """A body's Reader that, when the body ends, lets the shared CRC store write what it learned."""

    def __init__(self, reader: Reader, store: S3CrcStore | None) -> None:
        self.reader, self.store = reader, store

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        return self.reader.read(node, start, stop, chunk)

    def close(self) -> None:
        self.reader.close()
        if self.store is not None:
            self.store.settle()
