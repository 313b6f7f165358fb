"""Signed, expiring links (pure; the clock is passed in).

The signature is HMAC-SHA256 over the method class, the path, the query
without ``sig`` in canonical order and the expiry, each field percent-encoded
and separated by newlines, so no change can move characters between fields
(the models: S3 SigV4's canonical request, nginx ``secure_link``). Keys are
sorted; repeated keys keep their order, so ``path`` values added, removed,
reordered or duplicated all change the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from urllib.parse import quote, urlencode

from zipserve.errors import Unauthorized

Query = Sequence[tuple[str, str]]

VERSION = "zipserve-link-1"
_EXPIRES = re.compile(r"^[1-9][0-9]{0,11}$")  # ASCII digits only: no '+', '_', or other scripts
_SIG = re.compile(r"^[A-Za-z0-9_-]{43}$")
SKEW = 60  # seconds a clock may be ahead of the signer's


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical(method: str, path: str, query: Query, expires: int) -> bytes:
    """Given a request's parts, return the exact bytes that are signed."""
    pairs = sorted(((k, v) for k, v in query if k != "sig"), key=lambda kv: kv[0])
    q = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in pairs)
    return "\n".join([VERSION, method_class(method), _enc(path), q, str(expires)]).encode()


def method_class(method: str) -> str:
    """Given an HTTP method, return what a signature for it covers: HEAD is signed as GET."""
    return "GET" if method in ("GET", "HEAD") else method


def signature(secret: str, method: str, path: str, query: Query, expires: int) -> str:
    """Given the secret and a request's parts, return the base64url HMAC-SHA256."""
    mac = hmac.new(secret.encode(), canonical(method, path, query, expires), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def sign_url(secret: str, path: str, query: Query = (), *, expires: int, method: str = "GET",
             base_url: str = "") -> str:
    """Given the secret, a path (not percent-encoded), its query and an expiry, return the signed URL.

    For applications that import zipserve: ``sign_url(secret, "/archive/photos.zip",
    expires=int(time.time()) + 3600)``.
    """
    full = [*query, ("expires", str(expires))]
    full.append(("sig", signature(secret, method, path, full, expires)))
    return base_url.rstrip("/") + quote(path, safe="/") + "?" + urlencode(full, quote_via=quote)


def verify(secret: str, method: str, path: str, query: Query, *, now: float,
           max_lifetime: int) -> int:
    """Given a request's parts and the time, return its expiry; raise Unauthorized.

    Refuses a missing, malformed or wrong signature; an expiry that is not
    plain ASCII digits, zero, past, or further ahead than max_lifetime.
    """
    sigs = [v for k, v in query if k == "sig"]
    expiries = [v for k, v in query if k == "expires"]
    if not sigs:
        raise Unauthorized("this URL needs a token or a signed link")
    if len(sigs) != 1 or len(expiries) != 1 or not _SIG.match(sigs[0]):
        raise Unauthorized("malformed signed link")
    if not _EXPIRES.match(expiries[0]):
        raise Unauthorized("malformed expiry in signed link")
    expires = int(expiries[0])
    if expires <= now:
        raise Unauthorized("this signed link has expired")
    if expires > now + max_lifetime + SKEW:
        raise Unauthorized("this signed link's expiry is further ahead than allowed")
    expected = signature(secret, method, path, query, expires)
    if not hmac.compare_digest(expected.encode(), sigs[0].encode()):
        raise Unauthorized("invalid signature")
    return expires


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^([0-9]{1,9})([smhdw]?)$")


def parse_duration(text: str) -> int:
    """Given '90', '15m', '1h', '7d' or '1w', return seconds; raise ValueError."""
    m = _DURATION.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 1h, 7d)")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]
