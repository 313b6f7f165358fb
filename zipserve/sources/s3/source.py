"""An S3 prefix as a Source: listings, stats and ranged reads through boto3, in worker threads.

Folders are key prefixes; a 0-byte "folder/" marker object is an (empty) folder.
Sizes, times and ETags come from ListObjectsV2, so planning (and so HEAD,
Content-Length, ETag, Range) reads no object. Times are whole seconds, as a HEAD
gives them; the object's ETag is the node's `version`, sent as If-Match on
every GET, so an object replaced mid-stream fails its next GET (412) and the
transfer is aborted instead of mixing two versions.

Keys are not a tree: a key that is not a safe relative path (``a/../b``,
``a//b``, ``/a``, a backslash: anything `selection.parse_path` would not give
back unchanged) or a file key that is also a prefix (``x`` beside ``x/y``) is
skipped and logged, never served under another name.

Reads (read.py): a file's span is fetched as ranged GETs of `part` bytes,
the one in turn streamed and the next ones fetched ahead on a thread pool,
within one read-ahead budget per process, so one stream runs near what the
store gives while memory stays flat however many streams run; bodies made of
many small files fetch whole files a bounded window ahead (sources.ahead).
Transient errors are retried by botocore's "standard" mode (with backoff)
before the response reaches us; a body that breaks off is asked again for its
missing bytes with the same If-Match, which yields the same bytes or a 412,
never another version's. Anything else after the headers raises
SourceChanged, so the connection is cut. Shared CRCs: crc.py.

Why boto3 in worker threads (bench/bench_s3_clients.py: Ceph RGW 16 on
127.0.0.1, 2 cores shared with other jobs, best of 3). One 256 MiB object:
boto3 598 MB/s in one stream (0.31 CPU s/GB), 633 MB/s as 8 MiB ranged GETs 4
in flight; urllib3 on a presigned URL 696 MB/s; obstore 0.12 (Rust
object_store) 721 MB/s (0.41 CPU s/GB). 128 objects of 1 MiB on 16 threads:
boto3 507 MB/s, urllib3 619, obstore 643. 16 KiB objects: every client waits
~45 ms per GET on this store (21-22 GETs/s on one thread), 282-368 GETs/s on 16.
So the store, not the client, sets the pace once requests overlap; what boto3
costs is CPU per request: ~3 ms (1.7 CPU s/GB at 1 MiB objects) against
obstore's ~0.7 ms and a presigned URL's 0.3 ms plus urllib3's ~0.7. That is
most of what serving from S3 adds: a tar of 1 MiB files costs the server ~4.5
CPU s/GB from S3 against ~1 from disk (bench/bench_s3.py), so a server short
of CPU streams ~1 MiB files at a few hundred MB/s per core; big files barely
notice. Signing our own GETs for urllib3 would halve that, at the price of
redoing what botocore gets right (proxies, CA bundles, retries, error codes).
Against that, boto3 brings
the whole AWS credential chain (environment, config files and profiles, SSO,
instance roles), the standard retry mode, and every S3 field we use (If-Match,
ChecksumMode, ChecksumType, ListObjectsV2 paging) from the reference client,
and its sync calls fit our encoders, which are sync iterators in worker
threads (an async client would need a loop bridge in every read). Requests
overlap through the read-ahead above, so the per-request latency is hidden.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from zipserve.core.limits import Budget
from zipserve.core.node import Node, RelPath
from zipserve.core.selection import parse_path
from zipserve.errors import NotFound, TooLarge, ZipserveError
from zipserve.sources.base import Reader, Span
from zipserve.sources.s3.crc import S3CrcStore
from zipserve.sources.s3.errors import refusal
from zipserve.sources.s3.read import Objects

log = logging.getLogger("zipserve.s3")

FILE_MODE, DIR_MODE = 0o644, 0o755  # objects have no Unix mode: what a fresh checkout would have
KNOWN_CRC_MIN = 1 << 20  # below this, asking the store for its checksum costs about a read
SKIP_LOGS = 10  # skipped keys logged one by one per listing; the rest are counted


def parse_root(url: str) -> tuple[str, str]:
    """Given ``s3://bucket/prefix``, return (bucket, key prefix ending in "/" or empty); raise ValueError."""
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket or "\\" in bucket or not all(c.isalnum() or c in "-._" for c in bucket):
        raise ValueError(f"{url} does not name a bucket: use s3://bucket/prefix")
    prefix = prefix.strip("/")
    if prefix and safe_parts(prefix) is None:
        raise ValueError(f"{url}: the prefix is not a plain relative path")
    return bucket, prefix + "/" if prefix else ""


def safe_parts(rel: str) -> RelPath | None:
    """Given a key relative to a folder, return its parts, or None when it is not a safe relative path.

    Safe means a request for it names exactly this key: `parse_path` accepts it
    and gives every part back (``a//b`` would come back as ``a/b``).
    """
    parts = tuple(rel.split("/"))
    try:
        return parts if parse_path(rel) == parts else None
    except ZipserveError:
        return None


def safe_lead(rel: str) -> RelPath:
    """Given an unsafe key relative to a folder, return its leading folders that are safe names."""
    lead: list[str] = []
    for part in rel.split("/")[:-1]:
        if safe_parts(part) is None:
            break
        lead.append(part)
    return tuple(lead)


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


def seconds_ns(when: datetime) -> int:
    """Given an object's LastModified, return it as nanoseconds, whole seconds (as HEAD gives it)."""
    return int(when.timestamp()) * 1_000_000_000


def make_client(endpoint: str | None, pool: int) -> Any:
    """Given an endpoint (None: AWS, or one the environment or profile names), return a boto3 client."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    session = boto3.session.Session()

    def client(style: str) -> Any:
        config = Config(
            # Standard mode retries throttling, 5xx and connection errors with backoff
            # (up to 1, 2, then 4 s, jittered), before a response is handed to us: nothing
            # has been sent to our client yet. 4 tries in all ("max_attempts" counts retries).
            retries={"mode": "standard", "total_max_attempts": 4},
            connect_timeout=5, read_timeout=30, max_pool_connections=pool,
            s3={"addressing_style": style})
        return session.client("s3", endpoint_url=endpoint or None, config=config,
                              region_name=session.region_name or "us-east-1")

    made = client("auto")
    if "amazonaws.com" not in made.meta.endpoint_url:
        # A store of our own (Ceph, MinIO) is rarely set up for bucket-name hosts.
        made.close()
        made = client("path")
    return made


@dataclass
class Listing:
    """Everything under one folder's prefix, as nodes (built by S3Source.walk)."""

    files: dict[RelPath, Node] = field(default_factory=dict)
    folders: set[RelPath] = field(default_factory=set)
    markers: dict[RelPath, int] = field(default_factory=dict)  # folder -> its marker's time
    newest: dict[RelPath, int] = field(default_factory=dict)  # folder -> newest object below
    skipped: int = 0


class S3Source:
    """The keys under ``s3://bucket/prefix`` as a read-only tree."""

    def __init__(self, bucket: str, prefix: str, client: Any, *, part: int = 8 << 20,
                 ahead: int = 4, crc_prefix: str | None = None, endpoint: str | None = None) -> None:
        self.bucket, self.prefix, self.client = bucket, prefix, client
        self.part, self.ahead, self.endpoint = part, ahead, endpoint
        self.whole_read = part  # one GET each: holding one costs no more than reading ahead
        self.pool = ThreadPoolExecutor(max_workers=8 * ahead, thread_name_prefix="zipserve-s3")
        self.objects = Objects(client, bucket, self._key_of, part=part, ahead=ahead, pool=self.pool)
        self.crc_prefix = crc_prefix
        self.crc_store = S3CrcStore(client, bucket, crc_prefix) if crc_prefix else None

    def close(self) -> None:
        if self.crc_store is not None:
            self.crc_store.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def check(self) -> None:
        """Ask the store for one key under the prefix; raise the refusal a request would meet."""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except Exception as exc:
            raise refusal(exc, "") from None

    # -- names ------------------------------------------------------------------------------

    def _key(self, rel: RelPath) -> str:
        return self.prefix + "/".join(rel)

    def _key_of(self, node: Node) -> str:
        return self._key(node.path)

    def _dir_key(self, rel: RelPath) -> str:
        return self.prefix + "".join(p + "/" for p in rel)

    def _hidden(self, key: str) -> bool:
        """Given a key, return whether it lies in the shared CRC area (never served)."""
        return self.crc_prefix is not None and key.startswith(self.crc_prefix)

    def crc_key(self, node: Node) -> str:
        # Bucket, key, ETag and size: the same object version on every machine.
        return f"s3|{self.bucket}|{self._key(node.path)}|{node.version}|{node.size}"

    # -- stat, listings ---------------------------------------------------------------------

    def _list(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        yield from paginator.paginate(Bucket=self.bucket, **kwargs)

    def stat(self, rel: RelPath) -> Node:
        """Given a relative path, return its Node: a folder if any key lies below it, else the object."""
        shown = "/".join(rel)
        if not rel:
            return self._folder((), 0)
        if self._hidden(self._dir_key(rel)) or self._hidden(self._key(rel)):
            raise NotFound(f"no such file or folder: {shown}", path=shown)
        try:
            below = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._dir_key(rel),
                                                MaxKeys=1)
            if below.get("KeyCount", 0):
                first = below.get("Contents", [{}])[0]
                marker = first.get("Key") == self._dir_key(rel)  # its own "folder/" object
                return self._folder(rel, seconds_ns(first["LastModified"]) if marker else 0)
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
        except Exception as exc:
            raise refusal(exc, shown) from None
        return self._file(rel, head["ContentLength"], head["LastModified"], head["ETag"])

    def _folder(self, rel: RelPath, mtime_ns: int) -> Node:
        return Node(path=rel, kind="dir", size=0, mtime_ns=mtime_ns, mode=DIR_MODE,
                    dev=0, ino=0, ctime_ns=0)

    def _file(self, rel: RelPath, size: int, when: datetime, etag: str) -> Node:
        return Node(path=rel, kind="file", size=size, mtime_ns=seconds_ns(when), mode=FILE_MODE,
                    dev=0, ino=0, ctime_ns=0, version=etag)

    def walk(self, top: Node, budget: Budget) -> Iterator[Node]:
        """Given a Node, yield it and, for a folder, every file and folder below it.

        One listing of the whole prefix (no delimiter), paginated; the tree is
        built from it, so a folder's time is its marker's, else its newest object's.
        """
        if top.kind == "file":
            budget.take(top)
            yield top
            return
        found = self._list_all(top, budget)
        nodes = [self._folder(f, found.markers.get(f, found.newest.get(f, 0)))
                 for f in found.folders]
        for rel, node in found.files.items():
            if rel in found.folders:
                self._skip(found, rel, "a folder of the same name exists")
            else:
                nodes.append(node)
        if found.skipped > SKIP_LOGS:
            log.warning("skipped %d keys under %s in all", found.skipped, top.shown or ".")
        mtime = found.markers.get(top.path, found.newest.get(top.path, top.mtime_ns))
        yield self._folder(top.path, mtime)
        for node in sorted(nodes, key=lambda n: n.path):
            budget.take(node)
            yield node

    def _list_all(self, top: Node, budget: Budget) -> Listing:
        """Given a folder, return every safe key below it as a Listing; raise TooLarge early."""
        prefix = self._dir_key(top.path)
        found = Listing()
        # A dropped file (x beside x/y) always leaves a file below its folder, so at
        # least half the listed files are kept: past twice the budget it cannot fit.
        room = 2 * (budget.max_files - budget.files)
        listed = 0
        try:
            for page in self._list(Prefix=prefix):
                for obj in page.get("Contents", ()):
                    listed += self._add(found, top, obj, obj["Key"][len(prefix):], budget)
                    if listed > room:
                        raise TooLarge(f"selection has more than {budget.max_files} files"
                                       " (--max-files)")
        except ZipserveError:
            raise
        except Exception as exc:
            raise refusal(exc, top.shown) from None
        return found

    def _add(self, found: Listing, top: Node, obj: dict[str, Any], rel: str,
             budget: Budget) -> int:
        """Given one listed object, add it to the listing; return 1 if it is a file, else 0."""
        if self._hidden(obj["Key"]):
            return 0
        when = seconds_ns(obj["LastModified"])
        if rel == "":  # the folder's own marker
            found.markers[top.path] = when
            return 0
        marker = rel.endswith("/")
        parts = safe_parts(rel[:-1] if marker else rel)
        if parts is None:
            self._skip(found, top.path + (rel,), "not a safe relative path")
            # Its safe leading folders are still prefixes, as a one-level listing shows them.
            self._add_folders(found, top, top.path + safe_lead(rel), when, budget)
            return 0
        path = top.path + parts
        self._add_folders(found, top, path if marker else path[:-1], when, budget)
        if marker:
            found.markers[path] = when
            return 0
        found.files[path] = self._file(path, obj["Size"], obj["LastModified"], obj["ETag"])
        return 1

    def _add_folders(self, found: Listing, top: Node, folder: RelPath, when: int,
                     budget: Budget) -> None:
        """Given a folder below top holding an object of time `when`, add it and its parents."""
        budget.check_depth(len(folder) - len(top.path), "/".join(folder))  # as the disk walk counts
        for i in range(len(top.path), len(folder) + 1):
            found.newest[folder[:i]] = max(found.newest.get(folder[:i], 0), when)
            if i > len(top.path):
                found.folders.add(folder[:i])

    def _skip(self, found: Listing, path: tuple[str, ...], why: str) -> None:
        found.skipped += 1
        if found.skipped <= SKIP_LOGS:
            log.warning("skipped key %r: %s", self.prefix + "/".join(path), why)

    def children(self, folder: Node) -> list[Node]:
        """Given a folder Node, return its safe entries one level down (folders' times unknown: 0)."""
        prefix = self._dir_key(folder.path)
        files: dict[str, Node] = {}
        folders: dict[str, Node] = {}
        found = Listing()
        try:
            for page in self._list(Prefix=prefix, Delimiter="/"):
                for obj in page.get("Contents", ()):
                    name = obj["Key"][len(prefix):]
                    if name and not self._hidden(obj["Key"]):
                        self._child(found, files, folder.path, name, obj)
                for common in page.get("CommonPrefixes", ()):
                    name = common["Prefix"][len(prefix):-1]
                    if self._hidden(common["Prefix"]):
                        continue
                    if safe_parts(name) is None:
                        self._skip(found, folder.path + (name + "/",), "not a safe relative path")
                    else:
                        folders[name] = self._folder(folder.path + (name,), 0)
        except Exception as exc:
            raise refusal(exc, folder.shown) from None
        for name in files.keys() & folders.keys():
            self._skip(found, folder.path + (name,), "a folder of the same name exists")
            del files[name]
        return [*folders.values(), *files.values()]

    def _child(self, found: Listing, files: dict[str, Node], here: RelPath, name: str,
               obj: dict[str, Any]) -> None:
        if safe_parts(name) is None:
            self._skip(found, here + (name,), "not a safe relative path")
        else:
            files[name] = self._file(here + (name,), obj["Size"], obj["LastModified"], obj["ETag"])

    # -- reads ------------------------------------------------------------------------------

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        """Given a planned file and a byte span, yield its bytes; raise SourceChanged."""
        return self.objects.read(node, start, stop, chunk)

    def prefetch(self, spans: Iterable[Span]) -> Reader:
        return Settling(self.objects.prefetch(spans), self.crc_store)

    def known_crc(self, node: Node) -> int | None:
        """Given a big file, return the store's CRC-32 of the whole object, when it keeps one."""
        if node.size < KNOWN_CRC_MIN:
            return None
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(node.path),
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
