"""A selection packed into one URL-safe token, so a POSTed selection becomes a GET URL (pure)."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from zipserve.errors import BadRequest

MAX_TOKEN = 64 * 1024
MAX_JSON = 1 << 20


def pack(fields: dict[str, Any]) -> str:
    """Given the selection's fields, return a compact base64url token (deflated JSON)."""
    raw = json.dumps(fields, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    packed = zlib.compress(raw.encode("utf-8"), 9)[2:-4]  # raw deflate: no zlib header/trailer
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def unpack(token: str) -> dict[str, Any]:
    """Given a token from pack(), return its fields; raise BadRequest for anything else."""
    if len(token) > MAX_TOKEN:
        raise BadRequest("selection token is too long")
    try:
        packed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        inflater = zlib.decompressobj(-15)
        raw = inflater.decompress(packed, MAX_JSON)
        if inflater.unconsumed_tail:
            raise BadRequest("selection token is too large")
        fields = json.loads(raw.decode("utf-8"))
    except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError):
        raise BadRequest("selection token is not valid") from None
    if not isinstance(fields, dict):
        raise BadRequest("selection token is not valid")
    return fields
