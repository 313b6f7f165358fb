"""A selection packed into one URL-safe token, so a POSTed selection becomes a GET URL (pure).

A selection holding a password never goes in a URL: it is kept as a record,
and the URL names the record by a key that is an HMAC of the record's bytes
under the server secret (a plain hash would let anyone who guesses the
selection try passwords against the key offline). The record is stored
encrypted (AES-256-GCM under a key derived from the secret, its nonce taken
from the record's key, so only the same record ever reuses one): a copy of
the record store alone holds no password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import zlib
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zipserve.errors import BadRequest

MAX_TOKEN = 64 * 1024
MAX_JSON = 1 << 20
RECORD_KEY = re.compile(r"^[0-9a-f]{64}$")


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


def record_bytes(fields: dict[str, Any]) -> bytes:
    """Given a selection's fields (with its password), return the record that holds them: canonical JSON."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode("utf-8")


def record_key(secret: bytes, record: bytes) -> str:
    """Given the server secret and a record, return its key: 64 hex digits of HMAC-SHA256."""
    return hmac.digest(secret, b"zipserve selection record\0" + record, "sha256").hex()


def seal_record(secret: bytes, record: bytes) -> tuple[str, bytes]:
    """Given the server secret and a record, return its key and what the store keeps: nonce and ciphertext."""
    key = record_key(secret, record)
    nonce = bytes.fromhex(key)[:12]
    return key, nonce + AESGCM(_record_cipher_key(secret)).encrypt(nonce, record, key.encode())


def open_record(secret: bytes, key: str, stored: bytes) -> bytes:
    """Given the secret, a record's key and what the store keeps, return the record; raise BadRequest."""
    try:
        return AESGCM(_record_cipher_key(secret)).decrypt(stored[:12], stored[12:], key.encode())
    except (InvalidTag, ValueError):
        raise BadRequest("this link's record is not valid") from None


def _record_cipher_key(secret: bytes) -> bytes:
    return hmac.digest(secret, b"zipserve record encryption\0", "sha256")


def parse_record(record: bytes) -> dict[str, Any]:
    """Given a record's bytes, return its fields; raise BadRequest if it holds no JSON object."""
    try:
        fields = json.loads(record.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("this link's record is not valid") from None
    if not isinstance(fields, dict):
        raise BadRequest("this link's record is not valid")
    return fields
