"""Tables for zipserve.core.manifest_link: tokens, content addresses, link paths, signed links."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from zipserve.core import signing
from zipserve.core.manifest import Manifest, parse_manifest
from zipserve.core.manifest_link import (
    INLINE_MAX_PATH,
    LINK_PREFIX,
    MAX_TOKEN,
    LinkTarget,
    canonical_bytes,
    content_hash,
    from_stored,
    from_token,
    link_url,
    make_link,
    parse_link,
    resolve,
    to_token,
)
from zipserve.errors import BadGateway, BadRequest, NotFound, TooLarge, Unauthorized

CAP = 10_000
SECRET = "s3cret"
NOW = 1_800_000_000

SMALL: dict[str, Any] = {
    "name": "March invoices", "format": "zip", "missing": "skip",
    "entries": [
        {"source": "s3://bucket/u/81/a8f3e1", "name": "Invoices/2024-03 ACME.pdf", "size": 48213,
         "crc32": "1c291ca3", "mtime": "2024-03-31T09:00:00Z"},
        {"source": "https://files.example/x.bin?sig=1", "name": "caf\u00e9/\u65e5\u672c.bin"},
        {"name": "Empty/"},
    ],
}


def manifest(data: dict[str, Any] = SMALL) -> Manifest:
    return parse_manifest(data, max_entries=CAP)


def big(n: int = 200) -> Manifest:
    """Return a manifest whose token cannot fit a URL: names that do not compress."""
    names = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    return manifest({"entries": [{"source": f"s3://bucket/{h}", "name": f"{h}.pdf"} for h in names]})


def token_of(raw: bytes, *, wrap: bool = False) -> str:
    packed = zlib.compress(raw, 9) if wrap else zlib.compress(raw, 9)[2:-4]
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode()


class DictStore:
    """A manifest store in a dict: the real get/put contract, no disk."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, digest: str) -> bytes | None:
        return self.data.get(digest)

    def put(self, digest: str, data: bytes, *, expires: int | None = None) -> None:
        self.data[digest] = data  # never expires: these tests are about addresses


# ---------------------------------------------------------------- tokens and addresses


def test_a_token_decodes_to_the_same_manifest() -> None:
    m = manifest()
    token = to_token(m)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert from_token(token, max_entries=CAP) == m


def test_canonical_json_is_sorted_and_compact() -> None:
    m = manifest({"entries": [{"name": "b", "source": "./a", "size": 1}], "format": "tar"})
    assert canonical_bytes(m) == (b'{"compression":"auto","entries":[{"name":"b","size":1,"source":"a"}],'
                                  b'"format":"tar","missing":"fail"}')
    assert content_hash(m) == hashlib.sha256(canonical_bytes(m)).hexdigest()


def test_two_spellings_of_one_manifest_share_token_and_address() -> None:
    other = json.loads(json.dumps(SMALL))
    other["format"] = "ZIP"
    other["entries"][0]["crc32"] = "1C291CA3"
    other["entries"][0]["mtime"] = 1711875600
    other["entries"][1]["source"] = "HTTPS://files.example:443/./x.bin?sig=1"
    assert to_token(manifest(other)) == to_token(manifest())
    assert content_hash(manifest(other)) == content_hash(manifest())


def test_any_change_changes_the_address() -> None:
    changed = json.loads(json.dumps(SMALL))
    changed["entries"][0]["name"] = "Invoices/2024-03 ACME2.pdf"
    assert content_hash(manifest(changed)) != content_hash(manifest())


BOMB = token_of(b'{"entries":[' + b" " * (2 << 20) + b"]}")
VALID = to_token(manifest())


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "not base64url"),
        ("abc+/", "not base64url"),
        ("abc=", "not base64url"),
        ("abc.def", "not base64url"),
        ("abc\u00e9", "not base64url"),
        ("A" * (MAX_TOKEN + 1), "longer than"),
        ("A", "not valid"),  # one base64 character is no byte
        ("____", "not valid"),  # no deflate stream
        (VALID[:-6], "not valid"),  # truncated: the stream never ends
        (token_of(b'{"entries":[]}') + "AAAA", "not valid"),  # bytes after the stream end
        (token_of(json.dumps(SMALL).encode(), wrap=True), "not valid"),  # zlib header: not raw
        (BOMB, "inflates past"),
        (token_of(b"\xff\xfe{}"), "not UTF-8"),
        (token_of('{"entries":[]}'.encode("utf-16")), "not UTF-8"),
        (token_of(b"[1, 2]"), "JSON object"),
        (token_of(b'{"entries": [{"source": "a", "name": "a", "name": "../x"}]}'), "twice"),
        (token_of(b'{"entries": [{"source": "a", "name": "../x"}]}'), "'..'"),
        (token_of(b'{"entries": [{"source": "../../etc/passwd", "name": "x"}]}'), "'..'"),
        (token_of(b'{"entries": [{"source": "a", "name": "a"}], "extra": 1}'), "unknown key"),
    ],
)
def test_malformed_tokens_are_refused(token: str, why: str) -> None:
    with pytest.raises(BadRequest) as caught:
        from_token(token, max_entries=CAP)
    assert why in caught.value.message


def test_the_bomb_is_small_on_the_wire() -> None:
    assert len(BOMB) < 4 * 1024  # refused by its inflated size, not by its length


def test_a_token_over_the_entry_cap_is_too_large() -> None:
    with pytest.raises(TooLarge):
        from_token(to_token(big(20)), max_entries=19)


@pytest.mark.parametrize("position", range(0, len(VALID), 3))
def test_a_tampered_token_is_refused_or_reads_as_a_valid_manifest(position: int) -> None:
    # Raw deflate carries no checksum, and bits after its last block are ignored: the signature
    # is what refuses a tampered link (below); decoding must never fail but with BadRequest.
    replacement = "A" if VALID[position] != "A" else "B"
    tampered = VALID[:position] + replacement + VALID[position + 1:]
    try:
        decoded = from_token(tampered, max_entries=CAP)
    except BadRequest:
        return
    assert isinstance(decoded, Manifest)


# ---------------------------------------------------------------- links


def test_a_small_manifest_travels_in_its_link() -> None:
    m = manifest()
    link = make_link(m)
    assert link.stored is None
    assert link.path == f"{LINK_PREFIX}{to_token(m)}/March invoices.zip"
    assert link.digest == content_hash(m)


def test_a_large_manifest_is_stored_under_its_address() -> None:
    m = big()
    link = make_link(m)
    assert link.stored == canonical_bytes(m)
    assert link.digest == hashlib.sha256(link.stored).hexdigest()
    assert link.path == f"{LINK_PREFIX}sha256/{link.digest}/archive.zip"


def test_the_threshold_counts_the_encoded_path() -> None:
    m = manifest()
    inline = make_link(m).path
    encoded = len(inline.replace(" ", "%20").replace("\u00e9", "%C3%A9"))
    assert make_link(m, inline_max=encoded).stored is None
    assert make_link(m, inline_max=encoded - 1).stored is not None
    assert len(make_link(big(), inline_max=10**6).path) > INLINE_MAX_PATH


@pytest.mark.parametrize(
    ("rest", "target"),
    [
        ("abc/x.zip", LinkTarget("x.zip", token="abc")),
        ("sha256/abc/x.zip", None),
        ("sha256/" + "a" * 64 + "/x.zip", LinkTarget("x.zip", digest="a" * 64)),
        ("sha256/" + "A" * 64 + "/x.zip", None),
        ("sha256/" + "a" * 63 + "/x.zip", None),
        ("sha256/" + "a" * 64 + "/", None),
        ("sha512/" + "a" * 64 + "/x.zip", None),
        ("abc", None),
        ("abc/", None),
        ("/x.zip", None),
        ("abc/d/x.zip", None),
        ("", None),
    ],
)
def test_link_paths(rest: str, target: LinkTarget | None) -> None:
    if target is None:
        with pytest.raises(NotFound):
            parse_link(rest)
    else:
        assert parse_link(rest) == target


def served(url: str) -> tuple[str, list[tuple[str, str]]]:
    """Given a URL, return the decoded path and query a server sees."""
    split = urlsplit(url)
    return unquote(split.path), parse_qsl(split.query, keep_blank_values=True)


@pytest.mark.parametrize("m", [manifest(), big()], ids=["inline", "stored"])
def test_a_signed_link_round_trips_through_a_server(m: Manifest) -> None:
    store = DictStore()
    link = make_link(m)
    if link.stored is not None:
        store.put(link.digest, link.stored)
    url = link_url(link, secret=SECRET, expires=NOW + 3600, base_url="https://dl.example/")
    assert url.startswith("https://dl.example/manifest/") and len(url) < 2000
    path, query = served(url)
    assert signing.verify(SECRET, "GET", path, query, now=NOW, max_lifetime=86400) == NOW + 3600
    assert resolve(parse_link(path[len(LINK_PREFIX):]), store, max_entries=CAP) == m


def test_an_unsigned_link_for_an_open_server() -> None:
    link = make_link(manifest())
    url = link_url(link, secret=None, expires=None, query=[("etag", '"zs2-ab"')])
    assert url.startswith("/manifest/") and url.endswith("/March%20invoices.zip?etag=%22zs2-ab%22")
    with pytest.raises(ValueError):
        link_url(link, secret=SECRET, expires=None)


def _swap_token(path: str) -> str:
    token, name = path[len(LINK_PREFIX):].split("/")
    other = to_token(manifest({**SMALL, "missing": "fail"}))
    assert other != token
    return f"{LINK_PREFIX}{other}/{name}"


TAMPERINGS = {
    "token swapped": _swap_token,
    "token character changed": lambda p: p.replace(LINK_PREFIX + p[len(LINK_PREFIX)],
                                                   LINK_PREFIX + chr(ord(p[len(LINK_PREFIX)]) ^ 1)),
    "file name changed": lambda p: p.replace("March invoices.zip", "March invoices.tar"),
    "stored form": lambda p: f"{LINK_PREFIX}sha256/{content_hash(manifest())}/March invoices.zip",
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_signed_link_is_refused(tamper: Any) -> None:
    path, query = served(link_url(make_link(manifest()), secret=SECRET, expires=NOW + 3600))
    tampered = tamper(path)
    assert tampered != path
    with pytest.raises(Unauthorized):
        signing.verify(SECRET, "GET", tampered, query, now=NOW, max_lifetime=86400)


def test_an_expired_link_is_refused() -> None:
    path, query = served(link_url(make_link(manifest()), secret=SECRET, expires=NOW + 60))
    with pytest.raises(Unauthorized):
        signing.verify(SECRET, "GET", path, query, now=NOW + 61, max_lifetime=86400)


# ---------------------------------------------------------------- resolving


def test_a_file_name_that_is_not_the_manifests_is_refused() -> None:
    token = to_token(manifest())
    with pytest.raises(BadRequest):
        resolve(LinkTarget("other.zip", token=token), None, max_entries=CAP)
    with pytest.raises(BadRequest):
        resolve(LinkTarget("March invoices.tar", token=token), None, max_entries=CAP)


def test_a_stored_link_whose_manifest_is_gone_is_not_found() -> None:
    link = make_link(big())
    target = parse_link(link.path[len(LINK_PREFIX):])
    with pytest.raises(NotFound):
        resolve(target, DictStore(), max_entries=CAP)
    with pytest.raises(NotFound):
        resolve(target, None, max_entries=CAP)


@pytest.mark.parametrize(
    "corrupt", [lambda b: b + b" ", lambda b: b.replace(b"bucket", b"bucke7"), lambda b: b""])
def test_a_store_that_returns_other_bytes_is_a_bad_gateway(corrupt: Any) -> None:
    link = make_link(big())
    assert link.stored is not None
    store = DictStore()
    store.put(link.digest, corrupt(link.stored))
    with pytest.raises(BadGateway):
        resolve(parse_link(link.path[len(LINK_PREFIX):]), store, max_entries=CAP)


def test_stored_bytes_are_validated_like_a_posted_manifest() -> None:
    data = b'{"entries":[{"name":"../x","source":"a"}]}'
    with pytest.raises(BadRequest):
        from_stored(hashlib.sha256(data).hexdigest(), data, max_entries=CAP)


# ---------------------------------------------------------------- sealed: a manifest with a password


SEALED_SMALL = {**SMALL, "password": "correct horse"}


def test_a_manifest_with_a_password_is_sealed_never_inline() -> None:
    m = manifest(SEALED_SMALL)
    assert m.encryption == "aes256" and "correct horse" not in repr(m)
    link = make_link(m, secret=SECRET.encode())
    assert link.path.startswith(f"{LINK_PREFIX}sealed/") and link.stored is not None
    # The key is no plain hash a guessed password could be checked against, and the store
    # keeps the manifest encrypted: neither holds the password.
    assert link.digest != hashlib.sha256(canonical_bytes(m)).hexdigest()
    assert "correct horse" not in link.path and b"correct horse" not in link.stored
    store = DictStore()
    store.put(link.digest, link.stored)
    got = resolve(parse_link(link.path[len(LINK_PREFIX):]), store, max_entries=CAP,
                  secret=SECRET.encode())
    assert got == m and got.password == "correct horse"


def test_a_password_needs_a_secret() -> None:
    with pytest.raises(BadRequest, match="secret"):
        make_link(manifest(SEALED_SMALL))


@pytest.mark.parametrize("secret", [b"another secret", None])
def test_a_sealed_record_needs_the_same_secret(secret: bytes | None) -> None:
    link = make_link(manifest(SEALED_SMALL), secret=SECRET.encode())
    store = DictStore()
    store.put(link.digest, link.stored)
    with pytest.raises((BadRequest, NotFound)):
        resolve(parse_link(link.path[len(LINK_PREFIX):]), store, max_entries=CAP, secret=secret)


def test_a_token_holding_a_password_is_refused() -> None:
    raw = json.dumps({"entries": SMALL["entries"], "password": "p"}).encode()
    with pytest.raises(BadRequest, match="password never travels"):
        from_token(token_of(raw), max_entries=CAP)
