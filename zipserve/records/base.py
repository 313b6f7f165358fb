"""What every record store offers, and the rules all of them share: keys, sizes, expiry."""

from __future__ import annotations

import re
from typing import Protocol

MAX_RECORD = 64 << 20  # bytes one record may hold: a stored manifest's cap
_KEY = re.compile(r"[0-9a-f]{64}")


class Records(Protocol):
    """Records behind links by a 64-hex-digit key (a content address), shared by every server using them."""

    def get(self, digest: str) -> bytes | None:
        """Given a key, return the record's bytes, or None when it is absent or expired."""
        ...

    def put(self, digest: str, data: bytes, *, expires: int | None = None) -> None:
        """Given a key, its bytes and when they expire (POSIX seconds; None: never), keep them."""
        ...

    def close(self) -> None: ...


def check_key(digest: object) -> str:
    """Given a key, return it; raise ValueError unless it is 64 lowercase hex digits."""
    if not isinstance(digest, str) or not _KEY.fullmatch(digest):
        raise ValueError(f"a record key is 64 lowercase hex digits, not {digest!r:.80}")
    return digest


def check_record(data: object, expires: object) -> None:
    """Given a put's data and expiry, raise ValueError unless they are bytes to MAX_RECORD and int seconds."""
    if not isinstance(data, bytes):
        raise ValueError(f"a record holds bytes, not {type(data).__name__}")
    if len(data) > MAX_RECORD:
        raise ValueError(f"a record holds at most {MAX_RECORD} bytes, not {len(data)}")
    if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool)):
        raise ValueError(f"a record's expiry is whole POSIX seconds or None, not {expires!r}")


def later(a: int | None, b: int | None) -> int | None:
    """Given two expiries (None: never), return the later: a record put twice serves its longest link."""
    return None if a is None or b is None else max(a, b)


def expired(expires: int | None, now: float) -> bool:
    """Given a record's expiry and the time, return whether it reads as absent."""
    return expires is not None and expires <= now
