"""Which http(s) URLs zipserve may fetch: the `--allow-url PREFIX` allowlist (pure; no DNS).

A URL is first brought to one spelling (RFC 3986 §6.2.2 and §6.2.3: scheme and
host lowercased, default port explicit, percent-encoding normalised, dot
segments removed) and refused outright where two parsers could read it two
ways: userinfo, backslashes, fragments, empty path segments, encoded slashes,
``..;`` segments, numeric hosts other than a dotted quad or a bracketed IPv6.
The normalised URL is allowed only if it starts with an allowlisted prefix at
a path boundary, and the fetcher sends exactly that URL. Resolved addresses
are checked separately (the caller resolves, then connects to the checked
address), and so is every redirect target.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from zipserve.errors import BadRequest, ConfigError, Forbidden

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL = 8192  # RFC 9110 §4.1: at least 8000 octets should work everywhere
MAX_REDIRECTS = 5

# RFC 3986 Appendix B, with "://" required: only hierarchical http(s) URLs are fetched.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")  # controls, space, backslash (WHATWG reads '\' as '/')
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"^{_OCTET}(?:\.{_OCTET}){{3}}$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCHAR = _UNRESERVED | frozenset("!$&'()*+,;=:@")  # RFC 3986 §3.3
_HEX = frozenset("0123456789ABCDEFabcdef")
# Encoded '/', '\' and NUL would let an origin that decodes them see another path.
_PATH_FORBIDDEN = frozenset({"%2F", "%5C", "%00"})
# Embeds IPv4 (RFC 6052 NAT64, RFC 4291 §2.5.5.1 IPv4-compatible): judged by the IPv4 inside.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


@dataclass(frozen=True)
class Url:
    """An http(s) URL in its one normalised spelling."""

    scheme: str  # "http" or "https"
    host: str  # lowercase DNS name, dotted quad, or compressed IPv6 without brackets
    port: int
    path: str  # starts with "/", no dot segments, percent-encoding normalised
    query: str  # normalised, without "?"; "" when there is none

    @property
    def ip(self) -> IPAddress | None:
        """Return the host as an address when it is written as one."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def netloc(self) -> str:
        """Return host[:port] as sent in Host, the port left out when it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """Return scheme://host:port with the port always explicit (the form prefixes match on)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        """Return the URL to fetch: normalised, default port left out."""
        query = "?" + self.query if self.query else ""
        return f"{self.scheme}://{self.netloc}{self.path}{query}"


def shown_url(raw: str) -> str:
    """Given a raw URL, return a bounded, printable form without its query (it may hold a key)."""
    head = raw.split("?", 1)[0].split("#", 1)[0]
    text = head.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= 200 else text[:200] + "..."


def parse_url(raw: str) -> Url:
    """Given a URL, return its normalised Url; raise BadRequest for anything ambiguous or not http(s)."""
    if len(raw) > MAX_URL:
        raise BadRequest(f"URL is longer than {MAX_URL} characters", path=shown_url(raw))
    if _UNSAFE.search(raw):
        raise BadRequest("URL contains a space, control character or backslash", path=shown_url(raw))
    m = _URL.match(raw)
    if m is None:
        raise BadRequest("not an absolute http(s) URL", path=shown_url(raw))
    scheme, authority, path, query, fragment = m.groups()
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BadRequest("only http and https URLs can be fetched", path=shown_url(raw))
    if fragment is not None:
        raise BadRequest("URL must not have a #fragment", path=shown_url(raw))
    try:
        host, port = _authority(authority, scheme)
        path = _path(path or "/")
        query = _normalise_percent(query or "", _PCHAR | {"/", "?"}, frozenset({"%00"}))
    except ValueError as exc:
        raise BadRequest(f"URL {exc}", path=shown_url(raw)) from None
    return Url(scheme=scheme, host=host, port=port, path=path, query=query)


def _authority(authority: str, scheme: str) -> tuple[str, int]:
    """Given host[:port], return (normalised host, port); raise ValueError."""
    if "@" in authority:
        # RFC 3986 §3.2.1: "http://allowed.example@evil/" goes to evil.
        raise ValueError("must not have user information ('@' before the host)")
    if not authority.isascii():
        raise ValueError("host must be ASCII (write an international name as xn--)")
    if authority.startswith("["):
        host_part, sep, rest = authority[1:].partition("]")
        if not sep:
            raise ValueError("has an unclosed '[' in its host")
        host = _ipv6(host_part)
    else:
        host_part = authority.partition(":")[0]
        rest = authority[len(host_part):]
        host = _hostname(host_part.lower())
    if rest and not rest.startswith(":"):
        raise ValueError("has a malformed host")
    port_text = rest[1:]
    if port_text == "":
        return host, DEFAULT_PORTS[scheme]  # RFC 3986 §6.2.3: an empty port is the default
    if not _PORT.match(port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError("has a malformed port")
    return host, int(port_text)


def _ipv6(text: str) -> str:
    """Given the inside of [...], return the compressed IPv6 address; raise ValueError."""
    if "%" in text or text[:1].lower() == "v":
        raise ValueError("host must be a plain IPv6 address (no zone, no IPvFuture)")
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        raise ValueError("has a malformed IPv6 address") from None


def _hostname(host: str) -> str:
    """Given a lowercased host, return it when it is a DNS name or a dotted quad; raise ValueError.

    WHATWG URL parsers read a host whose last label is a number as IPv4, so
    2130706433, 0x7f.1, 0177.0.0.1 and 127.1 all mean 127.0.0.1 to them: only
    the canonical dotted quad is accepted, so no two spellings reach one address.
    """
    if not host:
        raise ValueError("has no host")
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        if not _DOTTED_QUAD.match(host):
            raise ValueError("host is a number not written as a dotted quad (a.b.c.d)")
        return host
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("has a malformed host name")
    return host


def _path(raw: str) -> str:
    """Given a raw path, return it normalised; raise ValueError for paths origins may read otherwise."""
    path = _normalise_percent(raw, _PCHAR | {"/"}, _PATH_FORBIDDEN)
    if not path.startswith("/"):
        raise ValueError("path must start with '/'")
    segments = path.split("/")
    if "" in segments[1:-1]:
        raise ValueError("path has an empty segment ('//')")
    if any(";" in s and s.split(";", 1)[0] in (".", "..") for s in segments):
        raise ValueError("path has a '..;' segment")
    return remove_dot_segments(path)


def _normalise_percent(text: str, allowed: frozenset[str], forbidden: frozenset[str]) -> str:
    """Given a path or query, return it with RFC 3986 §6.2.2 percent-encoding; raise ValueError.

    Encoded unreserved characters are decoded (%7E -> ~, %2E -> .), other
    escapes uppercased, and characters outside `allowed` encoded as UTF-8.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            hexits = text[i + 1:i + 3]
            if len(hexits) != 2 or not set(hexits) <= _HEX:
                raise ValueError("has a '%' that starts no escape")
            escape = "%" + hexits.upper()
            if escape in forbidden:
                raise ValueError(f"has the escape {escape}, which origins may decode")
            decoded = chr(int(hexits, 16))
            out.append(decoded if decoded in _UNRESERVED else escape)
            i += 3
            continue
        out.append(c if c in allowed else "".join(f"%{b:02X}" for b in c.encode("utf-8")))
        i += 1
    return "".join(out)


def remove_dot_segments(path: str) -> str:
    """Given an absolute path, return it without "." and ".." segments (RFC 3986 §5.2.4)."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def resolve_location(base: Url, location: str) -> Url:
    """Given the URL fetched and a redirect's Location, return the target Url; raise BadRequest.

    RFC 9110 §10.2.2: Location may be relative (RFC 3986 §5.2); its fragment
    is dropped, since it is never sent to a server.
    """
    if _UNSAFE.search(location):
        raise BadRequest("redirect Location contains a space, control character or backslash",
                         path=shown_url(location))
    location = location.split("#", 1)[0]
    if _SCHEME.match(location):
        target = location  # parse_url refuses a scheme without "//" ("http:foo")
    elif location.startswith("//"):
        target = f"{base.scheme}:{location}"
    elif location.startswith("/"):
        target = f"{base.scheme}://{base.netloc}{location}"
    elif location.startswith("?"):
        target = f"{base.scheme}://{base.netloc}{base.path}{location}"
    elif location == "":
        return base
    else:
        directory = base.path.rsplit("/", 1)[0]
        target = f"{base.scheme}://{base.netloc}{directory}/{location}"
    return parse_url(target)


def public(ip: IPAddress) -> bool:
    """Given an address, return whether it is globally routable unicast, judging embedded IPv4 too.

    Refuses loopback, private, link-local (169.254.169.254, the cloud metadata
    address, among them), shared, reserved, unspecified and multicast
    addresses, and IPv6 forms that carry such an IPv4 inside: IPv4-mapped,
    IPv4-compatible, 6to4 and NAT64.
    """
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and (ip in _NAT64 or ip in _V4_COMPATIBLE):
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return public(inner)
    return True


@dataclass(frozen=True)
class UrlPolicy:
    """The operator's allowlist: normalised prefixes; empty allows nothing."""

    prefixes: tuple[Url, ...] = ()

    @classmethod
    def from_prefixes(cls, raws: Iterable[str]) -> UrlPolicy:
        """Given --allow-url values, return the policy; raise ConfigError for a prefix that cannot work."""
        prefixes = []
        for raw in raws:
            try:
                url = parse_url(raw)
            except BadRequest as exc:
                raise ConfigError(f"--allow-url {shown_url(raw)}: {exc.message}") from None
            if url.query:
                raise ConfigError(f"--allow-url {shown_url(raw)}: a prefix must not have a ?query")
            prefixes.append(url)
        return cls(tuple(prefixes))

    def match(self, url: Url) -> Url | None:
        """Given a normalised Url, return the first prefix it starts with at a path boundary."""
        for prefix in self.prefixes:
            if prefix.origin != url.origin:
                continue
            if prefix.path.endswith("/"):
                if url.path.startswith(prefix.path):
                    return prefix
            elif url.path == prefix.path or url.path.startswith(prefix.path + "/"):
                return prefix
        return None

    def check(self, raw: str) -> Url:
        """Given a URL, return its normalised Url when it may be fetched; raise BadRequest or Forbidden.

        A host written as an address is checked here too (no DNS needed);
        a host name is checked by check_addresses once resolved.
        """
        url = parse_url(raw)
        if self.match(url) is None:
            raise Forbidden("URL is not under any --allow-url prefix", path=shown_url(raw))
        if url.ip is not None:
            self.check_addresses(url, [url.ip])
        return url

    def check_redirect(self, base: Url, location: str) -> Url:
        """Given the URL fetched and a redirect's Location, return the target when allowed; raise as check."""
        return self.check(str(resolve_location(base, location)))

    def check_addresses(self, url: Url, addresses: Iterable[IPAddress | str]) -> list[IPAddress]:
        """Given an allowed Url and its host's resolved addresses, return them; raise Forbidden.

        Every address must be public, unless the matching prefix names that
        very address as its host (an operator who allowlisted
        http://127.0.0.1:8080/ meant it). The caller connects only to the
        addresses returned, so a second DNS answer cannot differ (rebinding).
        """
        prefix = self.match(url)
        if prefix is None:
            raise Forbidden("URL is not under any --allow-url prefix", path=shown_url(str(url)))
        ips = [ipaddress.ip_address(a) if isinstance(a, str) else a for a in addresses]
        if not ips:
            raise Forbidden("URL's host has no address", path=shown_url(str(url)))
        for ip in ips:
            if not public(ip) and ip != prefix.ip:
                # The address itself stays out of the answer: it is the operator's network.
                raise Forbidden("URL's host resolves to a loopback, private, link-local or other "
                                "non-public address; allowlist that address itself to fetch it",
                                path=shown_url(str(url)))
        return ips
