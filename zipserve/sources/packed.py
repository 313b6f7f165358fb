"""Compressed lengths of files, as deflated ZIPs wrote them: the CRC cache's second companion store.

A deflated ZIP is sized once every deflated entry's compressed length is
known before the first byte (see core/formats/zippacked.py). Deflate here is
deterministic, so one stream (or a warm-up that sends nothing) teaches them:
each is kept under the file's identity key (the CRC cache's, which changes
with any write) joined to a profile naming everything else the bytes depend
on (level, engine and version, block and read sizes; see encode/packing.py).
A file changed since has a new key, hence no length: its archive streams
unsized, never with a wrong size. SQLite in WAL mode lets every worker process
of one machine share it; by default it lives beside the CRC cache.
"""

from __future__ import annotations

import sqlite3
import threading
from array import array
from collections.abc import Iterable
from pathlib import Path

from zipserve.sources.rows import rows_for

_MEMORY = 100_000  # lengths kept in process before the layer is emptied
# Lengths written to SQLite in one transaction: one per entry cost ~80 us each, which a
# tree of small files would pay on the thread that sends them.
_PENDING = 512


def beside(crc_cache: Path) -> Path:
    """Given the CRC cache's path, return the packed-size store's: the same folder."""
    return crc_cache.with_name("packed.sqlite3")


class PackedStore:
    """A persistent map from a key (identity and profile) to an int; path None keeps it in memory."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._memory: dict[str, int] = {}
        self._pending: dict[str, int] = {}  # put, not yet in SQLite
        self._blocks: dict[str, bytes] = {}  # in process only without SQLite
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS packed (k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID")
            # A large entry's output block by block (length and CRC-32, uint32 each), for resumes inside it.
            db.execute("CREATE TABLE IF NOT EXISTS blocks2 (k TEXT PRIMARY KEY, sizes BLOB) WITHOUT ROWID")
            self._db = db

    def get_many(self, keys: Iterable[str]) -> dict[str, int]:
        """Given keys, return the values held for them (missing keys are left out)."""
        found: dict[str, int] = {}
        missing: list[str] = []
        with self._lock:
            for k in dict.fromkeys(keys):
                if k in self._memory or k in self._pending:
                    found[k] = self._memory.get(k, self._pending.get(k, 0))
                else:
                    missing.append(k)
            if self._db is not None:
                rows = rows_for(self._db, "SELECT k, n FROM packed", missing)
                found.update((k, int(n)) for k, n in rows)
            self._remember({k: found[k] for k in missing if k in found})
        return found

    def put(self, key: str, value: int) -> None:
        """Given a key and its value, store it (in SQLite with the next batch, or at flush)."""
        if self._memory.get(key) == value:  # one dict read is atomic: no lock needed
            return  # known already: every download of a warm file would rewrite it
        with self._lock:
            self._remember({key: value})
            if self._db is not None:
                self._pending[key] = value
                if len(self._pending) >= _PENDING:
                    self._write()

    def flush(self) -> None:
        """Write every value put so far to SQLite, where other processes see it."""
        with self._lock:
            self._write()

    def _write(self) -> None:
        # One transaction for the batch. Lock held.
        if self._db is None or not self._pending:
            return
        rows, self._pending = list(self._pending.items()), {}
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO packed VALUES (?,?)", rows)

    def put_blocks(self, key: str, blocks: list[tuple[int, int]]) -> None:
        """Given a key and its blocks' (length, CRC-32), store them (at once: one row per large entry)."""
        data = array("I", [n for block in blocks for n in block]).tobytes()
        with self._lock:
            if self._db is None:
                self._blocks[key] = data
            else:
                self._db.execute("INSERT OR REPLACE INTO blocks2 VALUES (?,?)", (key, data))

    def blocks(self, key: str) -> list[tuple[int, int]] | None:
        """Given a key, return its blocks' (length, CRC-32), or None."""
        with self._lock:
            data = self._blocks.get(key)
            if data is None and self._db is not None:
                row = self._db.execute("SELECT sizes FROM blocks2 WHERE k=?", (key,)).fetchone()
                data = bytes(row[0]) if row is not None else None
        if data is None:
            return None
        flat = array("I", data).tolist()
        return list(zip(flat[::2], flat[1::2], strict=True))

    def forget(self, key: str) -> None:
        """Given a key whose value proved wrong, drop it and its blocks."""
        with self._lock:
            self._memory.pop(key, None)
            self._pending.pop(key, None)
            self._blocks.pop(key, None)
            if self._db is not None:
                self._db.execute("DELETE FROM packed WHERE k=?", (key,))
                self._db.execute("DELETE FROM blocks2 WHERE k=?", (key,))

    def _remember(self, found: dict[str, int]) -> None:
        # A small in-process layer in front of SQLite; bounded so memory stays flat. Lock held.
        if len(self._memory) + len(found) > _MEMORY:
            self._memory.clear()
        self._memory.update(found)

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
