"""CRC-32 of files without re-reading them: a persistent cache, and the computation.

Keyed by (device, inode, size, mtime_ns, ctime_ns): any write, rename over,
chmod or touch changes one of them. SQLite in WAL mode lets every worker
process of one machine share it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from isal import isal_zlib

from .fs import Root
from .node import Node

log = logging.getLogger("zipserve.crc")

crc32 = isal_zlib.crc32  # ISA-L's CRC-32: several times zlib's speed


def key(node: Node) -> str:
    """Given a local file node, return its cache key: any write, rename over, chmod or touch changes it."""
    return f"local|{node.dev}|{node.ino}|{node.size}|{node.mtime_ns}|{node.ctime_ns}"


class CrcCache:
    """A persistent map from a file's identity to its CRC-32; path None keeps it in memory only.

    ``key_of`` names a file's identity; each source has its own (see Source.crc_key).
    """

    def __init__(self, path: Path | None, key_of: Callable[[Node], str] = key) -> None:
        self.key_of = key_of
        self._lock = threading.Lock()
        self._memory: dict[str, int] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                 timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS crc2 (k TEXT PRIMARY KEY, crc INTEGER)"
                       " WITHOUT ROWID")
            self._db = db

    def get(self, node: Node) -> int | None:
        """Given a file node, return its cached CRC, or None."""
        k = self.key_of(node)
        with self._lock:
            if k in self._memory:
                return self._memory[k]
            if self._db is None:
                return None
            row = self._db.execute("SELECT crc FROM crc2 WHERE k=?", (k,)).fetchone()
        if row is not None:
            self._remember(k, int(row[0]))
        return None if row is None else int(row[0])

    def put(self, node: Node, value: int) -> None:
        """Given a file node and its CRC, store it."""
        k = self.key_of(node)
        self._remember(k, value)
        if self._db is not None:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO crc2 VALUES (?,?)", (k, value))

    def forget(self, node: Node) -> None:
        """Given a file node whose cached CRC proved wrong, drop it."""
        k = self.key_of(node)
        with self._lock:
            self._memory.pop(k, None)
            if self._db is not None:
                self._db.execute("DELETE FROM crc2 WHERE k=?", (k,))

    def _remember(self, k: str, value: int) -> None:
        # A small in-process layer in front of SQLite; bounded so memory stays flat.
        with self._lock:
            if len(self._memory) >= 100_000:
                self._memory.clear()
            self._memory[k] = value

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


class Crcs:
    """CRC-32 of planned files: from the cache, else computed by one read (and logged)."""

    def __init__(self, root: Root, cache: CrcCache, chunk: int) -> None:
        self.root, self.cache, self.chunk = root, cache, chunk
        self.computed = 0  # files read only to learn their CRC, for logs and tests

    def of(self, node: Node) -> int:
        """Given a file node, return its CRC-32; raise SourceChanged if it cannot be read."""
        if node.size == 0:
            return 0
        cached = self.cache.get(node)
        if cached is not None:
            return cached
        value = 0
        for data in self.root.read(node, 0, node.size, self.chunk):
            value = crc32(data, value)
        self.computed += 1
        log.info("CRC cache miss: read %s (%d bytes) to compute its CRC", node.shown, node.size)
        self.cache.put(node, value)
        return value
