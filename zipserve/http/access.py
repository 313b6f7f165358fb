"""Who may ask: a bearer token (or its cookie), or a signed link, checked before any route runs.

With neither --token nor --secret the server is open. /healthz is always
open, and so are the API's description (/openapi.json) and its docs page
(/docs and its files): they describe the routes and reveal no file, folder
or setting, and an application's developer needs them before holding a
token or a signed link.
A signed request leaves its expiry (and, for a POST grant, its folder) in
``scope["state"]`` so pages can hand out links signed for the same lifetime.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from zipserve.core import signing
from zipserve.errors import Unauthorized, ZipserveError

COOKIE = "zipserve_token"
OPEN_PATHS = ("/healthz", "/openapi.json", "/docs")
OPEN_PREFIXES = ("/docs/assets/",)
TOKEN_ONLY = ("/metrics",)


class Access:
    """ASGI middleware enforcing --token and --secret."""

    def __init__(self, app: ASGIApp, *, token: str | None, secret: str | None,
                 max_lifetime: int, on_error: Callable[[Request, ZipserveError], object],
                 clock: Callable[[], float] = time.time) -> None:
        self.app, self.token, self.secret = app, token, secret
        self.max_lifetime, self.on_error, self.clock = max_lifetime, on_error, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.token is None and self.secret is None) \
                or is_open(get_route_path(scope)):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        try:
            redirect = self._check(request, scope, query)
        except ZipserveError as exc:
            await self.on_error(request, exc)(scope, receive, send)  # type: ignore[operator]
            return
        if redirect is not None:
            await redirect(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check(self, request: Request, scope: Scope,
               query: list[tuple[str, str]]) -> RedirectResponse | None:
        """Given a request, return None to let it in, a redirect to drop ?token=, or raise Unauthorized."""
        if self.token is not None:
            if self._token_ok(request):
                return None
            given = [v for k, v in query if k == "token"]
            if given and _same(given[-1], self.token):
                return self._cookie_redirect(scope, query)
        # The path in this app: mounted in another, links are signed without the mount's prefix.
        path = get_route_path(scope)
        if self.secret is not None and path not in TOKEN_ONLY and any(
                k == "sig" for k, _ in query):
            expires = signing.verify(self.secret, scope["method"], path, query,
                                     now=self.clock(), max_lifetime=self.max_lifetime)
            scope.setdefault("state", {})["signed_expires"] = expires
            return None
        if self.token is None:
            raise Unauthorized("this URL needs a signed link (made by `zipserve sign`)")
        raise Unauthorized("missing or wrong token: send 'Authorization: Bearer <token>'")

    def _token_ok(self, request: Request) -> bool:
        assert self.token is not None
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and _same(auth[7:].strip(), self.token):
            return True
        return _same(request.cookies.get(COOKIE, ""), self.token)

    def _cookie_redirect(self, scope: Scope, query: list[tuple[str, str]]) -> RedirectResponse:
        """Given a request that brought ?token=, set the cookie and send it to the same URL without it."""
        assert self.token is not None
        rest = [(k, v) for k, v in query if k != "token"]
        target = scope.get("root_path", "") + get_route_path(scope) + ("?" + urlencode(rest) if rest else "")
        # SameSite=Lax, not Strict: Strict would drop the cookie on exactly this
        # redirect when the link was followed from another site.
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="lax", path="/")
        return response


def is_open(path: str) -> bool:
    """Given a path in this app, return whether anyone may ask for it, token or not."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def get_route_path(scope: Scope) -> str:
    """Given a request's scope, return its path inside this app (without the root_path it is mounted at)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


def _same(given: str, expected: str) -> bool:
    """Compare secrets in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())


_SECRETS = re.compile(r"((?:^|[?&])(?:token|sig|password)=)[^&\s]*")


class RedactSecrets(logging.Filter):
    """Keep tokens, signatures and passwords (refused in URLs, but sent all the same) out of access logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_SECRETS.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        return True
