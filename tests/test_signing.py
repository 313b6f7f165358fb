"""Signed links: every tampering refused, with the clock passed in."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from zipserve.core.signing import parse_duration, sign_url, verify
from zipserve.errors import Unauthorized

SECRET = "s3cret"
NOW = 1_800_000_000
WEEK = 7 * 86400


def parts(url: str) -> tuple[str, list[tuple[str, str]]]:
    from urllib.parse import unquote

    split = urlsplit(url)
    return unquote(split.path), parse_qsl(split.query, keep_blank_values=True)


def signed(path: str = "/archive", query: list[tuple[str, str]] | None = None,
           expires: int = NOW + 3600) -> tuple[str, list[tuple[str, str]]]:
    q = query if query is not None else [("path", "docs"), ("path", "photos"),
                                         ("format", "zip")]
    return parts(sign_url(SECRET, path, q, expires=expires))


def check(path: str, query: list[tuple[str, str]], method: str = "GET",
          now: float = NOW, secret: str = SECRET) -> int:
    return verify(secret, method, path, query, now=now, max_lifetime=WEEK)


def test_a_signed_link_verifies_for_get_and_head():
    path, query = signed()
    assert check(path, query) == NOW + 3600
    assert check(path, query, method="HEAD") == NOW + 3600


def test_non_ascii_paths_round_trip():
    path, query = signed("/archive/café über/ünï.zip", [])
    assert path == "/archive/café über/ünï.zip"
    assert check(path, query) == NOW + 3600


def _swap_expiry(q: list[tuple[str, str]], value: str) -> list[tuple[str, str]]:
    return [(k, value if k == "expires" else v) for k, v in q]


TAMPERINGS = {
    "path added": lambda p, q: (p, [("path", "secret"), *q]),
    "path removed": lambda p, q: (p, [kv for kv in q if kv != ("path", "photos")]),
    "paths reordered": lambda p, q: (p, [q[1], q[0], *q[2:]]),
    "path duplicated": lambda p, q: (p, [q[0], *q]),
    "other format": lambda p, q: (p, [("format", "tar") if k == "format" else (k, v)
                                      for k, v in q]),
    "later expiry": lambda p, q: (p, _swap_expiry(q, str(NOW + 7200))),
    "expiry with plus sign": lambda p, q: (p, _swap_expiry(q, "+" + str(NOW + 3600))),
    "expiry with underscore": lambda p, q: (p, _swap_expiry(q, "18_00003600")),
    "expiry in Arabic-Indic digits": lambda p, q: (
        p, _swap_expiry(q, str(NOW + 3600).translate(str.maketrans("0123456789",
                                                                   "٠١٢٣٤٥٦٧٨٩")))),
    "expiry with leading zero": lambda p, q: (p, _swap_expiry(q, "0" + str(NOW + 3600))),
    "digits moved between fields": lambda p, q: (p, [("path", "docs1"), *q[1:]]),
    "signature moved to another path": lambda p, q: ("/archive/other.zip", q),
    "parameter added": lambda p, q: (p, [*q, ("name", "x")]),
    "duplicated signature": lambda p, q: (p, [*q, q[-1]]),
    "signature removed": lambda p, q: (p, q[:-1]),
    "signature truncated": lambda p, q: (p, [*q[:-1], ("sig", q[-1][1][:-1])]),
    "expiry removed": lambda p, q: (p, [kv for kv in q if kv[0] != "expires"]),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampered_link_is_refused(name):
    path, query = signed()
    tampered_path, tampered_query = TAMPERINGS[name](path, query)
    with pytest.raises(Unauthorized):
        check(tampered_path, tampered_query)


def test_signature_for_get_is_refused_for_post():
    path, query = signed()
    with pytest.raises(Unauthorized):
        check(path, query, method="POST")


def test_other_secret_is_refused():
    path, query = signed()
    with pytest.raises(Unauthorized):
        check(path, query, secret="other")


def test_expired_link_says_so():
    path, query = signed(expires=NOW - 1)
    with pytest.raises(Unauthorized, match="expired"):
        check(path, query)


def test_expiry_at_now_is_expired():
    path, query = signed(expires=NOW)
    with pytest.raises(Unauthorized, match="expired"):
        check(path, query)


def test_zero_expiry_is_refused():
    path, query = signed(expires=0)
    with pytest.raises(Unauthorized):
        check(path, query)


def test_expiry_beyond_max_lifetime_is_refused():
    path, query = signed(expires=NOW + WEEK + 3600)
    with pytest.raises(Unauthorized, match="further ahead"):
        check(path, query)


def test_same_secret_verifies_anywhere():
    """Stateless: a link made by one process verifies in another holding the secret."""
    path, query = signed()
    assert verify(SECRET, "GET", path, list(query), now=NOW + 10, max_lifetime=WEEK)


@pytest.mark.parametrize("text,seconds", [("90", 90), ("15m", 900), ("1h", 3600),
                                          ("7d", 7 * 86400), ("1w", 7 * 86400)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-1h", "1.5h", "1y", "+5m", "１h", "1_0m"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)
