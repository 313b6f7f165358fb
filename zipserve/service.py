"""Requests -> plans: every check made before the first byte of a body.

Holds the parts one server process shares (root, CRC cache, compression
workers, encoder, records) and turns validated request fields into an ArchivePlan or a
file Node. Knows nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from zipserve import records, sources
from zipserve.core import plan
from zipserve.core.limits import Budget
from zipserve.core.manifest import Manifest
from zipserve.core.node import Node
from zipserve.core.selection import (
    download_name,
    make_selection,
    parse_options,
    parse_path,
)
from zipserve.core.urlpolicy import UrlPolicy
from zipserve.encode import compress
from zipserve.encode.encoder import Encoder
from zipserve.encode.packing import Packs
from zipserve.errors import BadRequest, TooLarge
from zipserve.manifests import ManifestPlan, plan_manifest
from zipserve.settings import Settings
from zipserve.sources.base import SharesCrcs, Source
from zipserve.sources.crc import CrcCache, Crcs
from zipserve.sources.hashes import HashStore, Sha256s
from zipserve.sources.hashes import beside as hashes_beside
from zipserve.sources.http.objects import HttpObjects
from zipserve.sources.mixed import mixed
from zipserve.sources.packed import PackedStore, beside


def url_policy(settings: Settings) -> UrlPolicy | None:
    """Given settings, return the policy for manifests' URLs, or None when no URL is allowed."""
    return UrlPolicy.from_prefixes(settings.allow_url) if settings.allow_url else None


def bucket_opener(settings: Settings) -> Callable[[str], Source] | None:
    """Given settings, return what opens a bucket of the configured S3 store, or None.

    A store is configured when the root is in one, or --s3-endpoint names one.
    """
    if str(settings.root).startswith("s3://") or settings.source_options.get("s3_endpoint"):
        return lambda bucket: sources.open_source(f"s3://{bucket}", settings.source_options)
    return None


MAX_PASSWORD = 1024  # bytes of UTF-8


class Service:
    """One process's shared parts and the request -> plan decisions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Whichever source the root names: nothing below cares.
        self.root = sources.open_source(settings.root, settings.source_options)
        # A manifest's files may also lie in the S3 store's buckets or behind allowed URLs:
        # its bodies read through `mixed`, whose keys for the root's files are the root's own.
        self.mixed = mixed(self.root, open_bucket=bucket_opener(settings),
                           urls=HttpObjects(policy) if (policy := url_policy(settings)) else None)
        shared = self.root.crc_store if isinstance(self.root, SharesCrcs) else None
        self.cache = CrcCache(settings.crc_cache, key_of=self.mixed.crc_key, shared=shared)
        self.crcs = Crcs(self.root, self.cache, settings.chunk_size)
        # Records behind links (stored manifests, protected selections), shared like the source.
        self.records = records.open_records(settings.records, settings.source_options)
        self.pool = compress.Pool(settings.compress_workers)
        # Deflated entries' compressed lengths, beside the CRC cache: they make deflated ZIPs sized.
        store = PackedStore(beside(settings.crc_cache) if settings.crc_cache is not None else None)
        self.packs = Packs(store, self.cache.key_of, settings.chunk_size)
        # SHA-256 of files for SHA256SUMS in sized archives, beside it too (memory without one).
        self.hashes = HashStore(hashes_beside(settings.crc_cache) if settings.crc_cache else None)
        sha256s = Sha256s(self.hashes)
        self.encoder = Encoder(self.root, self.crcs, self.pool, settings.chunk_size, self.packs,
                               sha256s)
        self.manifest_encoder = Encoder(self.mixed, Crcs(self.mixed, self.cache, settings.chunk_size),
                                        self.pool, settings.chunk_size, self.packs, sha256s)

    def close(self) -> None:
        self.pool.close()
        self.records.close()
        self.hashes.close()
        self.cache.close()
        self.packs.store.close()
        self.mixed.close()
        self.root.close()

    def file(self, raw: str) -> Node:
        """Given a requested file path, return its Node; raise BadRequest, Forbidden, NotFound or TooLarge."""
        rel = parse_path(raw, max_bytes=self.settings.max_path_bytes)
        node = self.root.stat(rel)
        if node.kind != "file":
            raise BadRequest(f"{raw or '.'} is a folder: use /archive/ or /browse/",
                             path=node.shown or ".")
        return node

    def listing(self, raw: str) -> tuple[Node, list[Node]]:
        """Given a requested folder path, return it and its entries (folders first, then by name)."""
        node = self.root.stat(parse_path(raw, max_bytes=self.settings.max_path_bytes))
        if node.kind != "dir":
            raise BadRequest(f"{raw} is a file, not a folder", path=node.shown)
        children = self.root.children(node)
        return node, sorted(children, key=lambda n: (n.kind != "dir", n.path[-1].lower()))

    def archive(self, paths: list[str], fmt: str, *, compression: str | None = None,
                level: str | None = None, name: str | None = None,
                names: str | None = None, checksums: str | None = None,
                encryption: str | None = None, password: str | None = None) -> plan.ArchivePlan:
        """Given raw request fields, return the plan; raise BadRequest, Forbidden, NotFound or TooLarge.

        A password (never from a URL: the caller sees to that) encrypts every
        file with AES-256 and implies encryption=aes256.
        """
        s = self.settings
        if len(paths) > s.max_paths:
            raise TooLarge(f"more than {s.max_paths} paths in one selection (--max-paths)")
        sealing = self.sealing(password)
        crypt = encryption or ("aes256" if sealing is not None else None)
        options = parse_options(fmt, compression, level, s.level, names, checksums, crypt)
        selection = make_selection([parse_path(p, max_bytes=s.max_path_bytes) for p in paths])
        budget = Budget(s.max_files, s.max_bytes, s.max_depth)
        nodes = list(self._walk(selection.paths, budget))
        filename = download_name(selection, options.format, name)
        return plan.build(selection, nodes, options, filename, sealing, self.packs.packing(options))

    def warm(self, archive: plan.ArchivePlan, encoder: Encoder | None = None) -> bool:
        """Given an unsized deflated ZIP's plan, write it to nowhere so its entries' lengths are kept.

        ``encoder``: the one its bodies are made with (a manifest's), else the root's.

        Return whether anything was written: a sized plan, one of another
        format, or one never sized (checksums=, encryption) has nothing to
        learn. Raises SourceChanged as a body would.
        """
        never = archive.options.checksums != "none" or archive.sealing is not None
        if archive.sized or never or not archive.format.deflate_per_entry:
            return False
        for _ in (encoder or self.encoder).body(archive):
            pass
        return True

    def sealing(self, password: str | None) -> plan.Sealing | None:
        """Given a password (or None), return what encrypts with it; raise BadRequest.

        The server's secret keys the salts (the same bytes on every server that
        shares it) and the ETag's trace of the password: without one, a password
        is refused rather than kept under a key of this process alone.
        """
        if password is None:
            return None
        if self.settings.secret is None:
            raise BadRequest("encrypted ZIPs need a server started with --secret "
                             "(it keys the encryption and the password's record)")
        data = password.encode("utf-8")
        if len(data) > MAX_PASSWORD:
            raise BadRequest(f"password is longer than {MAX_PASSWORD} bytes")
        return plan.Sealing(data, self.settings.secret.encode("utf-8"))

    def manifest(self, manifest: Manifest) -> ManifestPlan:
        """Given a validated manifest, stat its sources and return its plan; raise as plan_manifest."""
        s = self.settings
        return plan_manifest(manifest, self.mixed, Budget(s.max_files, s.max_bytes, s.max_depth),
                             s.level, self.sealing(manifest.password), self.packs.packing)

    def _walk(self, paths: tuple[tuple[str, ...], ...], budget: Budget) -> Iterator[Node]:
        tops = [self.root.stat(p) for p in paths]  # every path is checked before any walk
        for top in tops:
            yield from self.root.walk(top, budget)
