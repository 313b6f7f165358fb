"""Requests -> plans: every check made before the first byte of a body.

Holds the parts one server process shares (root, CRC cache, compression
workers, encoder) and turns validated request fields into an ArchivePlan or a
file Node. Knows nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator

from zipserve import sources
from zipserve.core import plan
from zipserve.core.limits import Budget
from zipserve.core.node import Node
from zipserve.core.selection import (
    download_name,
    make_selection,
    parse_options,
    parse_path,
)
from zipserve.encode import compress
from zipserve.encode.encoder import Encoder
from zipserve.errors import BadRequest, TooLarge
from zipserve.settings import Settings
from zipserve.sources.base import SharesCrcs
from zipserve.sources.crc import CrcCache, Crcs


class Service:
    """One process's shared parts and the request -> plan decisions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Whichever source the root names: nothing below cares.
        self.root = sources.open_source(settings.root, settings.source_options)
        shared = self.root.crc_store if isinstance(self.root, SharesCrcs) else None
        self.cache = CrcCache(settings.crc_cache, key_of=self.root.crc_key, shared=shared)
        self.crcs = Crcs(self.root, self.cache, settings.chunk_size)
        self.pool = compress.Pool(settings.compress_workers)
        self.encoder = Encoder(self.root, self.crcs, self.pool, settings.chunk_size)

    def close(self) -> None:
        self.pool.close()
        self.cache.close()
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
                names: str | None = None, checksums: str | None = None) -> plan.ArchivePlan:
        """Given raw request fields, return the plan; raise BadRequest, Forbidden, NotFound or TooLarge."""
        s = self.settings
        if len(paths) > s.max_paths:
            raise TooLarge(f"more than {s.max_paths} paths in one selection (--max-paths)")
        options = parse_options(fmt, compression, level, s.level, names, checksums)
        selection = make_selection([parse_path(p, max_bytes=s.max_path_bytes) for p in paths])
        budget = Budget(s.max_files, s.max_bytes, s.max_depth)
        nodes = list(self._walk(selection.paths, budget))
        filename = download_name(selection, options.format, name)
        return plan.build(selection, nodes, options, filename)

    def _walk(self, paths: tuple[tuple[str, ...], ...], budget: Budget) -> Iterator[Node]:
        tops = [self.root.stat(p) for p in paths]  # every path is checked before any walk
        for top in tops:
            yield from self.root.walk(top, budget)
