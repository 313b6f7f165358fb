"""One HTTP request to an allowlisted URL, connected only to addresses the policy checked.

Built on the standard library's http.client rather than urllib3: a connection
here is made to one checked address while Host (and TLS SNI and certificate
checks) name the URL's host, redirects are never followed on their own, and
nothing retries behind our back. http.client does exactly what it is told;
urllib3 resolves names itself, pools by host and retries and redirects
unless each is turned off, all of which would have to be undone.

Every URL, the first and each redirect target, passes UrlPolicy.check; its
host is resolved here with getaddrinfo, the answers pass check_addresses, and
the socket connects to those very addresses: a second DNS answer (rebinding)
is never asked for.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable, Mapping

from zipserve.core.urlpolicy import MAX_REDIRECTS, IPAddress, Url, UrlPolicy, shown_url
from zipserve.errors import BadGateway

REDIRECTS = frozenset({301, 302, 303, 307, 308})  # RFC 9110 §15.4
USER_AGENT = "zipserve"

Resolver = Callable[[Url], list[str]]


def resolve(url: Url) -> list[str]:
    """Given a Url, return its host's addresses (the literal address when it is written as one).

    Raises OSError (socket.gaierror) when the name does not resolve.
    """
    if url.ip is not None:
        return [str(url.ip)]
    infos = socket.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to one checked address; the Host header names the URL's host."""

    def __init__(self, url: Url, ip: IPAddress, timeout: float) -> None:
        super().__init__(url.host, url.port, timeout=timeout)
        self.ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self.ip), self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PinnedHTTPS(PinnedHTTP):
    """An HTTPS connection to one checked address; SNI and the certificate name the URL's host."""

    def __init__(self, url: Url, ip: IPAddress, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(url, ip, timeout)
        self.default_port = 443
        self.context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


class Fetcher:
    """Sends requests to URLs the policy allows, following redirects by hand."""

    def __init__(self, policy: UrlPolicy, *, timeout: float = 10.0,
                 resolver: Resolver = resolve, context: ssl.SSLContext | None = None) -> None:
        self.policy, self.timeout, self.resolver = policy, timeout, resolver
        self.context = context or ssl.create_default_context()

    def request(self, method: str, raw: str, headers: Mapping[str, str]
                ) -> tuple[http.client.HTTPResponse, Url]:
        """Given a method, a URL and headers, return the final response and the URL that gave it.

        Redirects (at most MAX_REDIRECTS) are followed only to targets the
        policy allows. Raises BadRequest or Forbidden (policy, before any
        connection to the refused target), BadGateway (too many redirects,
        a redirect without Location) and OSError / http.client.HTTPException
        (connection); the caller closes the response.
        """
        url = self.policy.check(raw)
        for _ in range(MAX_REDIRECTS + 1):
            response = self.send(method, url, headers)
            if response.status not in REDIRECTS:
                return response, url
            location = response.getheader("Location")
            response.close()
            if location is None:
                raise BadGateway(f"{shown_url(str(url))}: redirect without a Location")
            url = self.policy.check_redirect(url, location)
        raise BadGateway(f"{shown_url(raw)}: more than {MAX_REDIRECTS} redirects")

    def send(self, method: str, url: Url, headers: Mapping[str, str]) -> http.client.HTTPResponse:
        """Given an allowed Url, resolve and check its host, connect to a checked address, and send.

        Raises Forbidden for a non-public address; OSError or http.client.HTTPException from the
        last address tried when none answers.
        """
        ips = self.policy.check_addresses(url, self.resolver(url))
        target = url.path + ("?" + url.query if url.query else "")
        sent = {"Host": url.netloc, "User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                # One request a connection: closing the response closes its socket.
                "Connection": "close", **headers}
        error: OSError | http.client.HTTPException | None = None
        for ip in ips:
            conn = self.connection(url, ip)
            try:
                conn.request(method, target, headers=sent)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                error = exc
                continue
            if conn.sock is not None:
                # The response's file keeps the socket open until the response is closed (as
                # http.client does itself when the origin says Connection: close).
                conn.sock.close()
                conn.sock = None
            return response
        assert error is not None
        raise error

    def connection(self, url: Url, ip: IPAddress) -> PinnedHTTP:
        """Given an allowed Url and one of its checked addresses, return an unopened connection."""
        if url.scheme == "https":
            return PinnedHTTPS(url, ip, self.timeout, self.context)
        return PinnedHTTP(url, ip, self.timeout)
