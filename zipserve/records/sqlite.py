"""Records in one SQLite file (WAL), shared by the worker processes of one machine.

Expired rows read as absent at once and are deleted now and then: when a
process opens the file and then at most once every PURGE_EVERY seconds, on a
put. Path None keeps the records in this process's memory only (tests, and
embedders that want no file): links that name them then work on this process
alone.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from zipserve.records.base import check_key, check_record, expired

PURGE_EVERY = 3600  # seconds between two purges of expired rows by one process
# A key put again keeps the later expiry (None: never), unless what it held had expired.
_UPSERT = """INSERT INTO records VALUES (:k, :data, :expires) ON CONFLICT(k) DO UPDATE SET
  data = excluded.data,
  expires = CASE
    WHEN records.expires IS NOT NULL AND records.expires <= :now THEN excluded.expires
    WHEN records.expires IS NULL OR excluded.expires IS NULL THEN NULL
    ELSE max(records.expires, excluded.expires) END"""


class SqliteRecords:
    """Records in a SQLite file (or in memory), safe across threads and processes."""

    def __init__(self, path: Path | None, *, clock: Callable[[], float] = time.time) -> None:
        self.path, self.clock = path, clock
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if path is None else str(path),
                                   check_same_thread=False, isolation_level=None, timeout=10)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS records (k TEXT PRIMARY KEY,"
                         " data BLOB NOT NULL, expires INTEGER) WITHOUT ROWID")
        self._purged = 0.0
        self.purge()

    def get(self, digest: str) -> bytes | None:
        """Given a key, return its record's bytes (None: absent or expired); raise ValueError if bad."""
        check_key(digest)
        with self._lock:
            row = self._db.execute("SELECT data, expires FROM records WHERE k=?",
                                   (digest,)).fetchone()
        if row is None or expired(row[1], self.clock()):
            return None
        return bytes(row[0])

    def put(self, digest: str, data: bytes, *, expires: int | None = None) -> None:
        """Given a key, its bytes and their expiry, keep them; a key put again keeps the later expiry.

        Raises ValueError for a bad key, a record over MAX_RECORD or an expiry that is not an int.
        """
        check_key(digest)
        check_record(data, expires)
        now = self.clock()
        with self._lock:  # one statement: another process's put cannot come between
            self._db.execute(_UPSERT, {"k": digest, "data": data, "expires": expires, "now": now})
        if now - self._purged >= PURGE_EVERY:
            self.purge()

    def purge(self) -> int:
        """Delete the expired rows; return how many were deleted."""
        now = self.clock()
        with self._lock:
            self._purged = now
            return self._db.execute("DELETE FROM records WHERE expires <= ?", (int(now),)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
