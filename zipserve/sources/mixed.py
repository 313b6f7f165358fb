"""A manifest's sources as one Source: the served root, the configured S3 store's buckets, allowlisted URLs.

A manifest names each file where it lies: a path under the root, an
``s3://bucket/key`` of the configured store, or an http(s) URL the operator
allowed (``--allow-url``). `stat_ref` turns such a reference into a Node that
says where it came from (Node.origin); every read, read-ahead and CRC cache
key afterwards goes to that origin's source. Bytes the server makes itself
(a missing=skip report) are nodes of origin "inline".
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from zipserve.core.limits import Budget
from zipserve.core.manifest import SourceRef
from zipserve.core.node import Node, RelPath
from zipserve.errors import BadRequest
from zipserve.sources.ahead import AheadBudget
from zipserve.sources.base import (
    CrcStore,
    FetchesWhole,
    KnowsCrcs,
    Reader,
    SendsUnread,
    SharesCrcs,
    Source,
    Span,
)
from zipserve.sources.http.objects import WHOLE_READ, HttpObjects
from zipserve.sources.unread import FilePart

HTTP, INLINE = "http", "inline"
MAX_BUCKETS = 16  # each bucket has a client of its own; a manifest naming more is refused
AHEAD = 16 << 20  # bytes of URL objects fetched ahead, in all, for every body of the process


class Mixed:
    """The root, the store's buckets (opened on first use) and URL objects, as one Source.

    `open_bucket` opens a bucket of the configured S3 store (None: no store is
    configured); `urls` fetches allowlisted URLs (None: no --allow-url).
    """

    def __init__(self, root: Source, *, open_bucket: Callable[[str], Source] | None,
                 urls: HttpObjects | None) -> None:
        self.root, self.open_bucket, self.urls = root, open_bucket, urls
        self.buckets: dict[str, Source] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="zipserve-mixed")
        self.budget = AheadBudget(AHEAD)
        whole = root.whole_read if isinstance(root, FetchesWhole) else 0
        # Remote files are fetched whole up to this size: CRC and bytes in one request.
        self.whole_read = max(whole, WHOLE_READ if urls is not None else 0)

    @property
    def crc_store(self) -> CrcStore | None:
        """Return the root's fleet-wide CRC store, or None."""
        return self.root.crc_store if isinstance(self.root, SharesCrcs) else None

    def stat_ref(self, ref: SourceRef) -> Node:
        """Given a manifest's source, return its file's Node; raise BadRequest, Forbidden, NotFound, ...

        A folder is refused: a manifest lists files (and empty folders by name).
        """
        if ref.kind == "local":
            node = self.root.stat(ref.path)
        elif ref.kind == "s3":
            node = self.bucket(ref.bucket).stat(tuple(ref.key.split("/")))
            node.origin = "s3://" + ref.bucket
        else:
            if self.urls is None:
                raise BadRequest("this server fetches no URLs (it has no --allow-url)",
                                 path=ref.text)
            node = self.urls.stat(ref.text)
            node.origin = HTTP
        if node.kind != "file":
            raise BadRequest("a manifest's source must be a file, not a folder", path=ref.text)
        return node

    def bucket(self, name: str) -> Source:
        """Given a bucket's name, return its source (opened once); raise BadRequest."""
        if self.open_bucket is None:
            raise BadRequest("this server has no S3 store for s3:// sources (--s3-endpoint)",
                             path=f"s3://{name}")
        with self.lock:
            source = self.buckets.get(name)
            if source is None:
                if len(self.buckets) >= MAX_BUCKETS:
                    raise BadRequest(f"a server reads from at most {MAX_BUCKETS} buckets",
                                     path=f"s3://{name}")
                source = self.buckets[name] = self.open_bucket(name)
            return source

    def source_of(self, origin: str) -> Source | HttpObjects | None:
        """Given a node's origin, return what reads it (None: inline bytes)."""
        if not origin:
            return self.root
        if origin == HTTP:
            assert self.urls is not None, "URL nodes come from stat_ref"
            return self.urls
        if origin == INLINE:
            return None
        return self.bucket(origin.removeprefix("s3://"))

    # The Source protocol: a manifest's body reads through these.

    def stat(self, rel: RelPath) -> Node:
        return self.root.stat(rel)

    def walk(self, top: Node, budget: Budget) -> Iterator[Node]:
        return self.root.walk(top, budget)

    def children(self, folder: Node) -> list[Node]:
        return self.root.children(folder)

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        """Given a planned file and a byte span, yield its bytes from its origin; raise SourceChanged."""
        source = self.source_of(node.origin)
        if source is None:
            return inline(node, start, stop, chunk)
        return source.read(node, start, stop, chunk)

    def prefetch(self, spans: Iterable[Span]) -> Reader:
        """Given the spans a body will read, return a Reader: each origin's own, over its spans."""
        return MixedReader(self, spans)

    def reader_of(self, origin: str, spans: list[Span]) -> Reader | None:
        """Given an origin and the spans a body reads from it, return its Reader (None: inline)."""
        source = self.source_of(origin)
        if isinstance(source, HttpObjects):
            return source.prefetch(spans, self.pool, self.budget.share())
        return source.prefetch(spans) if source is not None else None

    def crc_key(self, node: Node) -> str:
        """Given a file node, return its CRC cache key, as its origin names its identity.

        A CRC a manifest claimed is part of the key: a wrong claim cached under
        the object's own key would be every later archive's header.
        """
        claim = f"|claimed:{node.claimed_crc:08x}" if node.origin and node.claimed_crc >= 0 else ""
        if node.origin == HTTP:
            return f"http|{node.path[0]}|{node.version}|{node.size}{claim}"
        if node.origin == INLINE:
            return f"inline|{node.version}|{node.size}"
        source = self.source_of(node.origin)
        assert source is not None and not isinstance(source, HttpObjects)
        return source.crc_key(node) + claim

    def known_crc(self, node: Node) -> int | None:
        """Given a file node, return a remote file's CRC-32 as its manifest or its store gives it."""
        if node.origin and node.claimed_crc >= 0:
            return node.claimed_crc
        source = self.source_of(node.origin)
        return source.known_crc(node) if isinstance(source, KnowsCrcs) else None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for source in self.buckets.values():
            source.close()
        if self.urls is not None:
            self.urls.close()


class MixedUnread(Mixed):
    """Mixed over a root whose spans a Wire may send unread: the root's files only (see Encoder)."""

    def file_part(self, node: Node, start: int, stop: int, *, exact: bool = False) -> FilePart:
        assert not node.origin and isinstance(self.root, SendsUnread)
        return self.root.file_part(node, start, stop, exact=exact)


def mixed(root: Source, *, open_bucket: Callable[[str], Source] | None,
          urls: HttpObjects | None) -> Mixed:
    """Given the root and the other sources a manifest may name, return them as one Source."""
    kind = MixedUnread if isinstance(root, SendsUnread) else Mixed
    return kind(root, open_bucket=open_bucket, urls=urls)


def inline_node(name: str, data: bytes, mtime_ns: int) -> Node:
    """Given a name and bytes the server made, return their Node (version: their SHA-256)."""
    digest = hashlib.sha256(data).hexdigest()[:32]
    return Node(path=(name,), kind="file", size=len(data), mtime_ns=mtime_ns, mode=0o644, dev=0,
                ino=0, ctime_ns=mtime_ns, version=digest, origin=INLINE, inline=data)


def inline(node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
    """Given an inline node and a span, yield its bytes `chunk` at a time."""
    for lo in range(start, stop, chunk):
        yield node.inline[lo:min(stop, lo + chunk)]


class MixedReader:
    """A body's Reader over a manifest's origins: each origin's spans go to its own Reader."""

    def __init__(self, sources: Mixed, spans: Iterable[Span]) -> None:
        self.sources = sources
        by_origin: dict[str, list[Span]] = {}
        for span in spans:  # a manifest's body: as many spans as entries, within --max-files
            by_origin.setdefault(span[0].origin, []).append(span)
        self.readers: dict[str, Reader | None] = {}
        try:
            for origin, some in by_origin.items():
                self.readers[origin] = sources.reader_of(origin, some)
        except BaseException:
            self.close()
            raise

    def read(self, node: Node, start: int, stop: int, chunk: int) -> Iterator[bytes]:
        reader = self.readers.get(node.origin)
        if reader is None:
            return self.sources.read(node, start, stop, chunk)
        return reader.read(node, start, stop, chunk)

    def close(self) -> None:
        for reader in self.readers.values():
            if reader is not None:
                reader.close()
