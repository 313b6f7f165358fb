"""CRC-32 of files without re-reading them: a persistent cache, and the computation.

Keyed by what each source names a file's identity (Source.crc_key), which
changes whenever the content may have: on disk, device, inode, size, mtime and
ctime (any write, rename over, chmod or touch moves one). SQLite in WAL mode
lets every worker process of one machine share it; a source's shared store
(SharesCrcs) lets every machine of a fleet share it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from isal import isal_zlib

from zipserve.core.node import Node
from zipserve.sources.base import CrcStore, KnowsCrcs, Source

log = logging.getLogger("zipserve.crc")

crc32 = isal_zlib.crc32  # ISA-L's CRC-32: several times zlib's speed
# Files read to learn their CRC are logged from this size up: encode.BIG, below which
# a local file is never sent unread, so its CRC is not cached (encode.Encoder.learn_from).
QUIET_BELOW = 64 * 1024


class CrcCache:
    """A persistent map from a file's identity to its CRC-32; path None keeps it in memory only.

    ``key_of`` names a file's identity; each source has its own (see Source.crc_key).
    """

    def __init__(self, path: Path | None, key_of: Callable[[Node], str],
                 shared: CrcStore | None = None) -> None:
        self.key_of, self.shared = key_of, shared
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
        """Given a file node, return the CRC this machine holds for it, or None (asks no other)."""
        return self._local(self.key_of(node))

    def fetch(self, node: Node) -> int | None:
        """Given a file node, return its CRC from this machine, else from the shared store, or None.

        The shared store costs a request: worth it for a file that would be read
        only to learn its CRC, not for one whose bytes are read anyway.
        """
        k = self.key_of(node)
        value = self._local(k)
        if value is None and self.shared is not None:
            value = self.shared.get(k)
            if value is not None:
                self._store(k, value)
        return value

    def _local(self, k: str) -> int | None:
        """Given a key, return the CRC this machine holds for it (memory, then SQLite), or None."""
        with self._lock:
            if k in self._memory:
                return self._memory[k]
            row = None
            if self._db is not None:
                row = self._db.execute("SELECT crc FROM crc2 WHERE k=?", (k,)).fetchone()
        if row is None:
            return None
        self._remember(k, int(row[0]))
        return int(row[0])

    def warm(self, nodes: Iterable[Node]) -> None:
        """Given the files of a stored ZIP, in order, fetch at once the CRCs only the shared store has.

        The store is asked for the whole archive's CRCs as one object first, then
        file by file for what is still missing; once every CRC is known, they are
        shared as one object, so the next cold server asks the store only once.
        """
        if self.shared is None:
            return
        keys = list(dict.fromkeys(self.key_of(n) for n in nodes if n.size))
        known = {k: v for k in keys if (v := self._local(k)) is not None}
        missing = [k for k in keys if k not in known]
        if missing:
            found = self.shared.get_archive(keys)
            found.update(self.shared.get_many([k for k in missing if k not in found]))
            for k in missing:
                if k in found:
                    self._store(k, found[k])
                    known[k] = found[k]
        if keys and len(known) == len(keys):
            self.shared.put_archive(keys, [known[k] for k in keys])

    def put(self, node: Node, value: int) -> None:
        """Given a file node and its CRC, store it."""
        k = self.key_of(node)
        if self._memory.get(k) == value:  # one dict read is atomic: no lock needed
            return  # known already: every download of a warm file would rewrite it
        self._store(k, value)
        if self.shared is not None:
            self.shared.put(k, value)

    def _store(self, k: str, value: int) -> None:
        """Given a key and its CRC, keep it in memory and in SQLite (not in the shared store)."""
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
        if self.shared is not None:
            self.shared.forget(k)

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
    """CRC-32 of planned files: from the cache, the source's own checksum, else one read (logged)."""

    def __init__(self, root: Source, cache: CrcCache, chunk: int) -> None:
        self.root, self.cache, self.chunk = root, cache, chunk
        self.knows = root if isinstance(root, KnowsCrcs) else None  # a store's own checksums
        self.computed = 0  # files read only to learn their CRC, for logs and tests

    def of(self, node: Node) -> int:
        """Given a file node, return its CRC-32; raise SourceChanged if it cannot be read."""
        if node.size == 0:
            return 0
        cached = self.cache.fetch(node)
        if cached is not None:
            return cached
        known = self.knows.known_crc(node) if self.knows is not None else None
        if known is not None:
            self.cache.put(node, known)
            return known
        value = 0
        for data in self.root.read(node, 0, node.size, self.chunk):
            value = crc32(data, value)
        self.computed += 1
        # A small file is cheap to read and, on a local disk, not cached by downloads
        # (see encode.Encoder.learn_from): a resume of a tree of them would log each.
        log.log(logging.INFO if node.size >= QUIET_BELOW else logging.DEBUG,
                "CRC cache miss: read %s (%d bytes) to compute its CRC", node.shown, node.size)
        self.cache.put(node, value)
        return value
