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

Connections are kept alive (RFC 9112 §9.3) in a small pool keyed by the
URL's scheme, host and port and the checked address the socket is connected
to: a request reuses one only when its own freshly checked addresses include
that very address, so the checks above hold for every request. A connection
goes back only after a response read to its last byte; any other end (an
error, a body left unread, Connection: close) closes it.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Callable, Mapping

from zipserve.core.urlpolicy import MAX_REDIRECTS, IPAddress, Url, UrlPolicy, shown_url
from zipserve.errors import BadGateway

REDIRECTS = frozenset({301, 302, 303, 307, 308})  # RFC 9110 §15.4
USER_AGENT = "zipserve"

IDLE = 32  # connections kept alive, in all, for one Fetcher (a process's bodies and read-ahead)
# A connection the origin may have closed while it sat idle: sent on again once, fresh.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

Resolver = Callable[[Url], list[str]]
Key = tuple[str, str, int, str]  # scheme, host, port, the checked address connected to


def resolve(url: Url) -> list[str]:
    """Given a Url, return its host's addresses (the literal address when it is written as one).

    Raises OSError (socket.gaierror) when the name does not resolve.
    """
    if url.ip is not None:
        return [str(url.ip)]
    infos = socket.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Response(http.client.HTTPResponse):
    """A response whose close() hands its connection back: to the pool when read to its end."""

    release: Callable[[bool], None] | None = None

    def close(self) -> None:
        # Reusable only when the body was read to its last byte (a HEAD's is empty) and the
        # origin keeps the connection open; a chunked body is never reused (length unknown).
        reusable = not self.will_close and not self.chunked and self.length == 0
        super().close()
        release, self.release = self.release, None
        if release is not None:
            release(reusable)


class PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to one checked address; the Host header names the URL's host."""

    response_class = Response

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
        self.idle = Idle()

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
                **headers}
        error: OSError | http.client.HTTPException | None = None
        for ip in ips:
            try:
                return self.exchange(url, ip, method, target, sent)
            except (OSError, http.client.HTTPException) as exc:
                error = exc
        assert error is not None
        raise error

    def exchange(self, url: Url, ip: IPAddress, method: str, target: str,
                 headers: Mapping[str, str]) -> Response:
        """Given a checked address and a request, send it on a kept-alive connection, else a new one.

        A kept-alive connection the origin closed while it sat idle is replaced
        by a new one, once. Raises OSError or http.client.HTTPException.
        """
        key = (url.scheme, url.host, url.port, str(ip))
        kept = self.idle.take(key)
        if kept is not None:
            try:
                return self.ask(kept, key, method, target, headers)
            except STALE:
                pass  # RFC 9112 §9.3.1: a request on an idle connection may be sent again
        return self.ask(self.connection(url, ip), key, method, target, headers)

    def ask(self, conn: PinnedHTTP, key: Key, method: str, target: str,
            headers: Mapping[str, str]) -> Response:
        """Given a connection, send a request on it; return the response, which hands it back when closed."""
        try:
            conn.request(method, target, headers=headers)
            response = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        assert isinstance(response, Response)

        def release(reusable: bool) -> None:
            if reusable:
                self.idle.give(key, conn)
            else:
                conn.close()

        response.release = release
        return response

    def connection(self, url: Url, ip: IPAddress) -> PinnedHTTP:
        """Given an allowed Url and one of its checked addresses, return an unopened connection."""
        if url.scheme == "https":
            return PinnedHTTPS(url, ip, self.timeout, self.context)
        return PinnedHTTP(url, ip, self.timeout)

    def close(self) -> None:
        """Close the kept-alive connections (responses still open close theirs when closed)."""
        self.idle.close()


class Idle:
    """Kept-alive connections, each under its Key: at most `size` in all, least recently used closed first."""

    def __init__(self, size: int = IDLE) -> None:
        self.size = size
        self.conns: list[tuple[Key, PinnedHTTP]] = []
        self.lock = threading.Lock()
        self.closed = False

    def take(self, key: Key) -> PinnedHTTP | None:
        """Given a key, return the most recently kept connection under it still open, or None."""
        while True:
            with self.lock:
                found = next((i for i in range(len(self.conns) - 1, -1, -1)
                              if self.conns[i][0] == key), None)
                if found is None:
                    return None
                conn = self.conns.pop(found)[1]
            if quiet(conn):
                return conn
            conn.close()

    def give(self, key: Key, conn: PinnedHTTP) -> None:
        """Given a connection whose last response was read to its end, keep it (or close it when closed)."""
        with self.lock:
            if not self.closed:
                self.conns.append((key, conn))
            drop = [c for _, c in self.conns[:-self.size]] if not self.closed else [conn]
            del self.conns[:-self.size]
        for old in drop:
            old.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            conns, self.conns = self.conns, []
        for _, conn in conns:
            conn.close()


def quiet(conn: PinnedHTTP) -> bool:
    """Given an idle connection, return whether it is open with nothing to read.

    Between responses the origin has nothing to say: a readable socket is one
    it closed (end of file) or one that would be misread.
    """
    if conn.sock is None:
        return False
    poll = select.poll()
    poll.register(conn.sock.fileno(), select.POLLIN)
    return not poll.poll(0)
