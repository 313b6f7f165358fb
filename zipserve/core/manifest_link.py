"""A manifest as a GET link any server sharing the secret can serve (pure; the store is passed in).

A small manifest travels in the link itself, as a token: its canonical JSON,
raw deflate, base64url without padding. A larger one is kept in a manifest
store under the SHA-256 of its canonical JSON, and the link names that
address. The two paths::

    /manifest/{token}/{filename}
    /manifest/sha256/{64 hex digits}/{filename}
    /manifest/sealed/{64 hex digits}/{filename}

A manifest with a password (encryption=aes256) never travels in a link, not
even as an address a guess could be checked against: it is kept as a sealed
record (core/links.py: named by an HMAC of its JSON under the server secret,
stored encrypted under a key derived from it), and only servers holding the
secret can name or read it.

The last segment is the download name (``March invoices.zip``), so
``wget`` and ``curl -O`` save under the right name without reading
Content-Disposition; it must be the manifest's own, so one manifest has one
URL. A token never holds '/', so the segment count tells the forms apart.

The address is taken over the canonical JSON, not over the token: deflate
output differs between zlib builds, while every server writes the same JSON.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from zipserve.core import links, signing
from zipserve.core.manifest import Manifest, download_name, load_manifest, to_json
from zipserve.core.names import shown
from zipserve.errors import BadGateway, BadRequest, NotFound

LINK_PREFIX = "/manifest/"
STORED = "sha256"
SEALED = "sealed"
# Inline while the whole percent-encoded path stays within 1,800 characters: with the
# signature's query (~70), a pinned ?etag= (~50) and a host, the URL stays under 2,000
# characters, the length every browser, proxy, CDN, mail and chat client still carries
# (RFC 9110 §4.1 asks for 8,000, but many stop near 2,048). Longer manifests are stored.
INLINE_MAX_PATH = 1800
MAX_TOKEN = 8192  # refused unread beyond: no server makes tokens that long
MAX_TOKEN_JSON = 1 << 20  # a deflate bomb stops inflating here
MAX_STORED_JSON = 64 << 20
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ManifestStore(Protocol):
    """Where manifests too long for a URL are kept, by the hex SHA-256 of their canonical JSON.

    zipserve.records is the I/O side. A key is 64 lowercase hex digits (anything
    else raises ValueError); `expires` is in POSIX seconds (None: never), and an
    expired record reads as None. Putting one key twice is fine: it is a
    content address, and the record keeps the later expiry.
    """

    def get(self, digest: str) -> bytes | None: ...

    def put(self, digest: str, data: bytes, *, expires: int | None = None) -> None: ...


def canonical_bytes(manifest: Manifest) -> bytes:
    """Given a Manifest, return its canonical JSON: sorted keys, no spaces, UTF-8."""
    return json.dumps(to_json(manifest), separators=(",", ":"), ensure_ascii=False,
                      sort_keys=True).encode("utf-8")


def content_hash(manifest: Manifest) -> str:
    """Given a Manifest, return the hex SHA-256 of its canonical JSON: its address in a store."""
    return hashlib.sha256(canonical_bytes(manifest)).hexdigest()


def to_token(manifest: Manifest) -> str:
    """Given a Manifest, return its token: canonical JSON, raw deflate, base64url without padding."""
    packed = zlib.compress(canonical_bytes(manifest), 9)[2:-4]  # raw deflate: no header, no Adler-32
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def from_token(token: str, *, max_entries: int) -> Manifest:
    """Given a token and the entry cap, return its Manifest; raise BadRequest or TooLarge.

    Refuses characters outside base64url, tokens over MAX_TOKEN, deflate that
    is broken, unfinished, followed by anything, or inflates past MAX_TOKEN_JSON.
    """
    if len(token) > MAX_TOKEN:
        raise BadRequest(f"manifest token is longer than {MAX_TOKEN} characters")
    if not _TOKEN.match(token):
        raise BadRequest("manifest token is not base64url")
    try:
        packed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        inflater = zlib.decompressobj(-15)
        raw = inflater.decompress(packed, MAX_TOKEN_JSON)
    except (binascii.Error, zlib.error):
        raise BadRequest("manifest token is not valid") from None
    if inflater.unconsumed_tail:
        raise BadRequest(f"manifest token inflates past {MAX_TOKEN_JSON} bytes")
    if not inflater.eof or inflater.unused_data:
        raise BadRequest("manifest token is not valid")
    manifest = _decode(raw, max_entries, "manifest token")
    if manifest.password is not None:
        raise BadRequest("a password never travels in a link; POST the manifest to get one")
    return manifest


def from_stored(digest: str, data: bytes, *, max_entries: int) -> Manifest:
    """Given an address and what the store holds there, return the Manifest; raise BadGateway on a mismatch.

    The store is shared and may be written by others: what it returns must hash to its address.
    """
    if len(data) > MAX_STORED_JSON or hashlib.sha256(data).hexdigest() != digest:
        raise BadGateway("the manifest store returned data that does not match its address")
    return _decode(data, max_entries, "stored manifest")


def from_sealed(key: str, store: ManifestStore | None, *, max_entries: int,
                secret: bytes | None) -> Manifest:
    """Given a sealed record's key, the store and the secret, return its Manifest; raise as resolve."""
    stored = store.get(key) if store is not None else None
    if stored is None or secret is None:
        raise NotFound("this link's manifest is unknown or has expired")
    if len(stored) > MAX_STORED_JSON:
        raise BadGateway("the record store returned more than a manifest")
    return _decode(links.open_record(secret, key, stored), max_entries, "sealed manifest")


def _decode(raw: bytes, max_entries: int, what: str) -> Manifest:
    try:
        text = raw.decode("utf-8")  # json.loads would also guess UTF-16 and UTF-32
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not UTF-8 JSON") from None
    return load_manifest(text, max_entries=max_entries)


@dataclass(frozen=True)
class ManifestLink:
    """A manifest's link path, and the bytes to store first when the path names an address."""

    path: str  # not percent-encoded; starts with LINK_PREFIX
    digest: str  # hex SHA-256 of the canonical JSON
    stored: bytes | None  # what to put in the store under digest (sealed: encrypted), None when inline


def make_link(manifest: Manifest, *, inline_max: int = INLINE_MAX_PATH,
              secret: bytes | None = None) -> ManifestLink:
    """Given a Manifest, return its link: inline while the encoded path fits inline_max, else stored.

    A manifest with a password is always stored, sealed under the secret; raises BadRequest without one.
    """
    data = canonical_bytes(manifest)
    filename = download_name(manifest)
    if manifest.password is not None:
        if secret is None:
            raise BadRequest("a password needs the server to have a secret (--secret)")
        key, sealed = links.seal_record(secret, data)
        return ManifestLink(path=f"{LINK_PREFIX}{SEALED}/{key}/{filename}", digest=key, stored=sealed)
    digest = hashlib.sha256(data).hexdigest()
    inline = f"{LINK_PREFIX}{to_token(manifest)}/{filename}"
    if len(quote(inline, safe="/")) <= inline_max:
        return ManifestLink(path=inline, digest=digest, stored=None)
    return ManifestLink(path=f"{LINK_PREFIX}{STORED}/{digest}/{filename}", digest=digest, stored=data)


def link_url(link: ManifestLink, *, secret: str | None, expires: int | None,
             query: Sequence[tuple[str, str]] = (), base_url: str = "") -> str:
    """Given a link, return its URL: signed to expire when a secret is set, else plain.

    Store link.stored first when it is not None. Raises ValueError when a
    secret is given without an expiry.
    """
    if secret is None:
        suffix = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
        return base_url.rstrip("/") + quote(link.path, safe="/") + ("?" + suffix if suffix else "")
    if expires is None:
        raise ValueError("a signed manifest link needs an expiry")
    return signing.sign_url(secret, link.path, list(query), expires=expires, base_url=base_url)


@dataclass(frozen=True)
class LinkTarget:
    """What a manifest link path names: a token or a stored address, and the file name it ends in."""

    filename: str
    token: str | None = None
    digest: str | None = None
    sealed: str | None = None  # the key of a sealed record (a manifest with a password)


def parse_link(rest: str) -> LinkTarget:
    """Given the decoded path after LINK_PREFIX, return what it names; raise NotFound.

    "{token}/{filename}" or "sha256/{hex}/{filename}"; anything else names no manifest.
    """
    parts = rest.split("/")
    if len(parts) == 2 and parts[0] and parts[1]:
        return LinkTarget(filename=parts[1], token=parts[0])
    if len(parts) == 3 and parts[0] == STORED and _DIGEST.match(parts[1]) and parts[2]:
        return LinkTarget(filename=parts[2], digest=parts[1])
    if len(parts) == 3 and parts[0] == SEALED and _DIGEST.match(parts[1]) and parts[2]:
        return LinkTarget(filename=parts[2], sealed=parts[1])
    raise NotFound("no manifest link has this form: use /manifest/{token}/{file name} "
                   "or /manifest/sha256/{hex}/{file name}")


def resolve(target: LinkTarget, store: ManifestStore | None, *, max_entries: int,
            secret: bytes | None = None) -> Manifest:
    """Given a parsed link and the store (and the secret, for sealed ones), return its Manifest.

    The file name must be the manifest's own download name. Raises BadRequest,
    NotFound or BadGateway.
    """
    if target.token is not None:
        manifest = from_token(target.token, max_entries=max_entries)
    elif target.sealed is not None:
        manifest = from_sealed(target.sealed, store, max_entries=max_entries, secret=secret)
    else:
        assert target.digest is not None
        data = store.get(target.digest) if store is not None else None
        if data is None:
            raise NotFound("this link's manifest is not in the manifest store")
        manifest = from_stored(target.digest, data, max_entries=max_entries)
    expected = download_name(manifest)
    if target.filename != expected:
        raise BadRequest("the link's file name is not its manifest's; the link was altered",
                         path=shown(target.filename))
    return manifest
