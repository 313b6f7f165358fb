"""SHA-256 of files without re-reading them: the CRC cache's companion store, and the computation.

A SHA256SUMS inside a sized archive must be known before the first byte is
sent (its bytes sit in the Content-Length and in any Range), so the digests
come from here, keyed by the very file identity keys the CRC cache uses (a
source's key for a node: any write, rename over, chmod or touch changes it).
This module takes those keys as strings and imports nothing from the CRC
cache. SQLite in WAL mode lets every worker process of one machine share it;
by default it lives beside the CRC cache (``beside``).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from zipserve.sources.rows import rows_for

log = logging.getLogger("zipserve.sha256")

DIGEST_SIZE = 32
_MEMORY = 100_000  # digests kept in process before the layer is emptied


def beside(crc_cache: Path) -> Path:
    """Given the CRC cache's path, return the hash store's: the same folder."""
    return crc_cache.with_name("sha256.sqlite3")


class HashStore:
    """A persistent map from a file's identity key to its SHA-256 digest; path None keeps it in memory."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._memory: dict[str, bytes] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS sha256 (k TEXT PRIMARY KEY, digest BLOB) WITHOUT ROWID")
            self._db = db

    def get(self, key: str) -> bytes | None:
        """Given a file's identity key, return its digest, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Given identity keys, return the digests held for them (missing keys are left out)."""
        found: dict[str, bytes] = {}
        missing: list[str] = []
        with self._lock:
            for k in dict.fromkeys(keys):
                if k in self._memory:
                    found[k] = self._memory[k]
                else:
                    missing.append(k)
            if self._db is not None:
                rows = rows_for(self._db, "SELECT k, digest FROM sha256", missing)
                found.update((k, bytes(d)) for k, d in rows)
            self._remember({k: found[k] for k in missing if k in found})
        return found

    def put(self, key: str, digest: bytes) -> None:
        """Given a file's identity key and its digest, store it; raise ValueError for a wrong-sized digest."""
        if len(digest) != DIGEST_SIZE:
            raise ValueError(f"a SHA-256 digest is {DIGEST_SIZE} bytes, not {len(digest)}")
        if self._memory.get(key) == digest:  # one dict read is atomic: no lock needed
            return  # known already: every download of a warm file would rewrite it
        with self._lock:
            self._remember({key: digest})
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO sha256 VALUES (?,?)", (key, digest))

    def forget(self, key: str) -> None:
        """Given a key whose digest proved wrong, drop it."""
        with self._lock:
            self._memory.pop(key, None)
            if self._db is not None:
                self._db.execute("DELETE FROM sha256 WHERE k=?", (key,))

    def _remember(self, found: dict[str, bytes]) -> None:
        # A small in-process layer in front of SQLite; bounded so memory stays flat. Lock held.
        if len(self._memory) + len(found) > _MEMORY:
            self._memory.clear()
        self._memory.update(found)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


class StreamHash:
    """A file's SHA-256 computed from the chunks an archive streams anyway, stored when whole."""

    def __init__(self, store: HashStore, key: str) -> None:
        self.store, self.key = store, key
        self._hash = hashlib.sha256()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Given the file's next chunk, in order, hash it."""
        self._hash.update(data)

    def finish(self) -> bytes:
        """Return the file's digest and store it; call only after every byte went through ``update``."""
        digest = self._hash.digest()
        self.store.put(self.key, digest)
        return digest


class Sha256s:
    """SHA-256 of planned files: from the store, else from one read of the file (logged)."""

    def __init__(self, store: HashStore) -> None:
        self.store = store
        self.computed = 0  # files read only to learn their digest, for logs and tests

    def of(self, key: str, read: Callable[[], Iterable[bytes]], shown: str = "") -> bytes:
        """Given a file's identity key and a callable that reads it whole, return its digest.

        ``read`` runs only when the store has no digest; what it raises
        (SourceChanged, OSError) goes to the caller.
        """
        known = self.store.get(key)
        if known is not None:
            return known
        digest = hashlib.sha256()
        for data in read():
            digest.update(data)
        self.computed += 1
        log.info("hash store miss: read %s to compute its SHA-256", shown or key)
        self.store.put(key, digest.digest())
        return digest.digest()
