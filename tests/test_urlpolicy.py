"""Tables for zipserve.core.urlpolicy: one spelling per URL, the allowlist, addresses, redirects."""

from __future__ import annotations

import ipaddress

import pytest

from zipserve.core.urlpolicy import UrlPolicy, parse_url, public, resolve_location
from zipserve.errors import BadRequest, ConfigError, Forbidden

POLICY = UrlPolicy.from_prefixes([
    "https://a.example/files/",
    "https://b.example/exact",
    "http://allowed.example",
    "http://127.0.0.1:8080/",
    "http://[::1]:9000/ok/",
])

# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "normalised", "origin"),
    [
        ("HTTPS://A.Example/files/x", "https://a.example/files/x", "https://a.example:443"),
        ("https://a.example:443/files/x", "https://a.example/files/x", "https://a.example:443"),
        ("https://a.example:/files/x", "https://a.example/files/x", "https://a.example:443"),
        ("http://a.example:8080/x", "http://a.example:8080/x", "http://a.example:8080"),
        ("http://a.example:080/x", "http://a.example/x", "http://a.example:80"),
        ("https://a.example", "https://a.example/", "https://a.example:443"),
        ("https://a.example?q=1", "https://a.example/?q=1", "https://a.example:443"),
        ("https://a.example/a/./b/../c", "https://a.example/a/c", "https://a.example:443"),
        ("https://a.example/a/b/..", "https://a.example/a/", "https://a.example:443"),
        ("https://a.example/../../x", "https://a.example/x", "https://a.example:443"),
        ("https://a.example/%7euser/%2E%2E/x", "https://a.example/x", "https://a.example:443"),
        ("https://a.example/a%2fb%2a", None, None),  # %2F refused, see below
        ("https://a.example/%c3%a9", "https://a.example/%C3%A9", "https://a.example:443"),
        ("https://a.example/\u00e9 x", None, None),  # a space is refused
        ("https://a.example/\u00e9", "https://a.example/%C3%A9", "https://a.example:443"),
        ("https://a.example/x?a=%7e&b=%2f", "https://a.example/x?a=~&b=%2F", "https://a.example:443"),
        ("http://[::FFFF:127.0.0.1]:8080/", "http://[::ffff:7f00:1]:8080/", "http://[::ffff:7f00:1]:8080"),
        ("http://[0:0::1]/", "http://[::1]/", "http://[::1]:80"),
        ("http://10.0.0.1/", "http://10.0.0.1/", "http://10.0.0.1:80"),
    ],
)
def test_urls_have_one_spelling(raw: str, normalised: str | None, origin: str | None) -> None:
    if normalised is None:
        with pytest.raises(BadRequest):
            parse_url(raw)
        return
    url = parse_url(raw)
    assert str(url) == normalised
    assert url.origin == origin


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("http://allowed.example@evil.example/", "user information"),
        ("http://user:pw@allowed.example/", "user information"),
        ("http://allowed.example%40evil.example/", "malformed host"),
        ("http://allowed.example\\@evil.example/", "backslash"),
        ("http:\\\\evil.example/", "backslash"),
        ("https://a.example/files\\..\\x", "backslash"),
        ("https://a.example/x#frag", "fragment"),
        ("https://a.example/\tx", "control"),
        ("https://a.example/x\r\nHost: evil", "control"),
        ("https://a.example/x\x00", "control"),
        ("ftp://a.example/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://a.example/", "only http and https"),
        ("javascript:alert(1)", "not an absolute"),
        ("http:/a.example/x", "not an absolute"),
        ("http:a.example/x", "not an absolute"),
        ("//a.example/x", "not an absolute"),
        ("http:///x", "no host"),
        ("http://2130706433/", "dotted quad"),
        ("http://0x7f000001/", "dotted quad"),
        ("http://0x7f.1/", "dotted quad"),
        ("http://127.1/", "dotted quad"),
        ("http://0177.0.0.1/", "dotted quad"),
        ("http://127.000.000.001/", "dotted quad"),
        ("http://1.2.3.4.5/", "dotted quad"),
        ("http://256.0.0.1/", "dotted quad"),
        ("http://a.example.0x1/", "dotted quad"),
        ("http://a.example./", "malformed host name"),
        ("http://a..example/", "malformed host name"),
        ("http://-a.example/", "malformed host name"),
        ("http://%31%32%37.0.0.1/", "dotted quad"),
        ("http://%61.example/", "malformed host name"),
        ("http://b\u00fccher.example/", "ASCII"),
        ("http://[::1%25eth0]/", "no zone"),
        ("http://[v1.x]/", "IPvFuture"),
        ("http://[::1/", "unclosed"),
        ("http://[::1]x/", "malformed host"),
        ("http://[127.0.0.1]/", "malformed IPv6"),
        ("http://a.example:0/", "malformed port"),
        ("http://a.example:65536/", "malformed port"),
        ("http://a.example:8o/", "malformed port"),
        ("http://a.example:1:2/", "malformed port"),
        ("https://a.example/files//x", "empty segment"),
        ("https://a.example/files/..%2Fsecret", "%2F"),
        ("https://a.example/files/..%5Csecret", "%5C"),
        ("https://a.example/files/x%00", "%00"),
        ("https://a.example/files/..;/secret", "'..;'"),
        ("https://a.example/files/.;x/secret", "'..;'"),
        ("https://a.example/files/%zz", "starts no escape"),
        ("https://a.example/files/%4", "starts no escape"),
        ("https://a.example/" + "x" * 9000, "longer than"),
    ],
)
def test_ambiguous_urls_are_refused(raw: str, why: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_url(raw)
    assert why in caught.value.message
    assert caught.value.path is not None and len(caught.value.path) <= 203
    assert caught.value.path.isprintable()


def test_the_error_leaves_the_query_out_because_it_may_hold_a_key() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_url("https://a.example/x#f?X-Amz-Signature=secret")
    assert caught.value.path == "https://a.example/x"
    with pytest.raises(Forbidden) as refused:
        POLICY.check("https://elsewhere.example/x?X-Amz-Signature=secret")
    assert "secret" not in str(refused.value.body())


# ---------------------------------------------------------------- the allowlist


@pytest.mark.parametrize(
    "raw",
    [
        "https://a.example/files/x.pdf",
        "https://a.example/files/",
        "https://A.EXAMPLE:443/files/sub/x.pdf?X-Amz-Signature=abc",
        "https://a.example/files/sub/../x.pdf",
        "https://a.example/files/%78.pdf",
        "https://b.example/exact",
        "https://b.example/exact/below",
        "http://allowed.example/",
        "http://allowed.example/anything/at/all",
        "http://127.0.0.1:8080/x",
        "http://[::1]:9000/ok/x",
    ],
)
def test_urls_under_a_prefix_are_allowed(raw: str) -> None:
    assert POLICY.check(raw) == parse_url(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "https://a.example/files-other/x",  # not at a path boundary
        "https://a.example/file",
        "https://a.example/files",  # the prefix ends in '/': the folder itself is not under it
        "https://a.example/FILES/x",  # paths are case-sensitive
        "https://a.example/files/../secret",  # dot segments resolved before matching
        "https://a.example/files/%2e%2e/secret",
        "http://a.example/files/x",  # another scheme
        "https://a.example:8443/files/x",  # another port
        "https://b.example/exactly",
        "https://b.example/",
        "http://allowed.example.evil.com/",
        "http://evil.com/allowed.example",
        "http://evil-allowed.example/",
        "http://sub.allowed.example/",
        "https://allowed.example/",  # the prefix is http only
        "http://127.0.0.1:8081/x",
        "http://127.0.0.1/x",
        "http://127.0.0.2:8080/x",
        "http://localhost:8080/x",
        "http://[::1]:9000/other",
        "http://[::ffff:127.0.0.1]:8080/x",
        "http://[::1]/",
    ],
)
def test_urls_outside_every_prefix_are_forbidden(raw: str) -> None:
    with pytest.raises(Forbidden):
        POLICY.check(raw)


@pytest.mark.parametrize(
    "raw", ["http://2130706433:8080/x", "http://0x7f.1:8080/x", "http://127.1:8080/x",
            "http://allowed.example@127.0.0.1:8080/x", "http://allowed.example#@evil/"])
def test_other_spellings_of_an_allowed_host_are_refused_before_matching(raw: str) -> None:
    with pytest.raises(BadRequest):
        POLICY.check(raw)


def test_an_empty_allowlist_allows_nothing() -> None:
    with pytest.raises(Forbidden):
        UrlPolicy.from_prefixes([]).check("https://a.example/x")


@pytest.mark.parametrize(
    "raw", ["https://a.example/x?q=1", "ftp://a.example/", "http://u@a.example/",
            "http://2130706433/", "a.example/files", "https://a.example/x#f"])
def test_prefixes_that_cannot_work_are_refused_at_startup(raw: str) -> None:
    with pytest.raises(ConfigError):
        UrlPolicy.from_prefixes([raw])


# ---------------------------------------------------------------- resolved addresses


@pytest.mark.parametrize(
    ("address", "is_public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("::ffff:93.184.216.34", True),
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # shared address space (RFC 6598)
        ("169.254.169.254", False),  # cloud metadata
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.1.1", False),
        ("239.1.1.1", False),
        ("198.18.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd00:ec2::254", False),  # cloud metadata over IPv6
        ("ff0e::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::127.0.0.1", False),  # IPv4-compatible
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:5db8:d822::", True),  # 6to4 of 93.184.216.34
    ],
)
def test_public_addresses(address: str, is_public: bool) -> None:
    assert public(ipaddress.ip_address(address)) is is_public


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.1"], ["127.0.0.2"], ["169.254.169.254"], ["::1"], ["::ffff:127.0.0.1"],
     ["10.0.0.1"], ["93.184.216.34", "10.0.0.1"], []],
)
def test_a_name_resolving_to_a_non_public_address_is_forbidden(addresses: list[str]) -> None:
    url = POLICY.check("https://a.example/files/x")
    with pytest.raises(Forbidden) as caught:
        POLICY.check_addresses(url, addresses)
    assert "127.0.0" not in caught.value.message and "10.0" not in caught.value.message


def test_a_name_resolving_to_public_addresses_is_allowed() -> None:
    url = POLICY.check("https://a.example/files/x")
    ips = POLICY.check_addresses(url, ["93.184.216.34", ipaddress.ip_address("2606:4700::1111")])
    assert [str(ip) for ip in ips] == ["93.184.216.34", "2606:4700::1111"]


def test_an_address_named_literally_by_its_prefix_may_be_non_public() -> None:
    url = POLICY.check("http://127.0.0.1:8080/x")
    assert POLICY.check_addresses(url, ["127.0.0.1"])
    with pytest.raises(Forbidden):
        POLICY.check_addresses(url, ["127.0.0.2"])
    assert POLICY.check("http://[::1]:9000/ok/x").ip == ipaddress.ip_address("::1")


def test_a_literal_non_public_host_is_refused_without_dns_unless_named() -> None:
    policy = UrlPolicy.from_prefixes(["http://10.0.0.5/"])
    assert policy.check("http://10.0.0.5/x").host == "10.0.0.5"
    wide = UrlPolicy.from_prefixes(["http://localhost:8080/"])
    with pytest.raises(Forbidden):
        wide.check_addresses(wide.check("http://localhost:8080/x"), ["127.0.0.1"])


def test_check_addresses_refuses_a_url_outside_the_allowlist() -> None:
    with pytest.raises(Forbidden):
        POLICY.check_addresses(parse_url("https://evil.example/"), ["93.184.216.34"])


# ---------------------------------------------------------------- redirects


BASE = parse_url("https://a.example/files/sub/x.pdf?sig=1")


@pytest.mark.parametrize(
    ("location", "target"),
    [
        ("https://a.example/files/y.pdf", "https://a.example/files/y.pdf"),
        ("/files/y.pdf", "https://a.example/files/y.pdf"),
        ("y.pdf", "https://a.example/files/sub/y.pdf"),
        ("../y.pdf", "https://a.example/files/y.pdf"),
        ("./z/../y.pdf", "https://a.example/files/sub/y.pdf"),
        ("?sig=2", "https://a.example/files/sub/x.pdf?sig=2"),
        ("//a.example/files/y.pdf", "https://a.example/files/y.pdf"),
        ("y.pdf#part", "https://a.example/files/sub/y.pdf"),
        ("", "https://a.example/files/sub/x.pdf?sig=1"),
    ],
)
def test_redirect_locations_resolve_against_the_url_fetched(location: str, target: str) -> None:
    assert str(resolve_location(BASE, location)) == target
    assert str(POLICY.check_redirect(BASE, location)) == target


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.2:8080/x",
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]:8080/x",
        "http://169.254.169.254/latest/meta-data/",
        "//evil.example/files/x",
        "https://a.example.evil.com/files/x",
        "../../secret",
        "/secret",
        "/files-other/x",
    ],
)
def test_redirects_outside_the_allowlist_are_forbidden(location: str) -> None:
    with pytest.raises(Forbidden):
        POLICY.check_redirect(BASE, location)


@pytest.mark.parametrize(
    "location",
    ["http://2130706433/", "http://0x7f.1/", "http:evil", "https://a.example@evil/",
     "\\\\evil.example\\x", "/files/x\r\nSet-Cookie: a=b", "gopher://a.example/"],
)
def test_malformed_redirects_are_refused(location: str) -> None:
    with pytest.raises(BadRequest):
        POLICY.check_redirect(BASE, location)
