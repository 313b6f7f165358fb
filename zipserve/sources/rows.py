"""Rows of a SQLite key-value table for many keys at once: the stores beside the CRC cache share it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

BATCH = 500  # keys a SELECT asks for at once (SQLite's default cap is 999 parameters)


def rows_for(db: sqlite3.Connection, select: str, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Given a connection, "SELECT k, value FROM table" and keys, yield their rows, BATCH keys a query."""
    for i in range(0, len(keys), BATCH):
        batch = keys[i: i + BATCH]
        yield from db.execute(f"{select} WHERE k IN ({','.join('?' * len(batch))})", batch)
