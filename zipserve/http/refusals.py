"""Errors -> HTTP, in one place: every ZipserveError (and FastAPI's own 404, 405 and 422) as JSON.

The body is ``{"error": {"code", "message", "path"?}}`` with the error's status
and headers; a client that prefers HTML (a browser) gets a page instead.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from zipserve.core.headers import prefers_html
from zipserve.errors import BadRequest, ZipserveError
from zipserve.http.access import get_route_path
from zipserve.http.page import render_error

# Starlette's own refusals, named like ours.
HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def install_error_handlers(app: FastAPI) -> None:
    """Given the app, make every refusal go through `error_response`."""

    @app.exception_handler(ZipserveError)
    async def on_error(request: Request, exc: ZipserveError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, BadRequest("malformed request"))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        err = HttpRefusal(str(exc.detail), dict(exc.headers or {}))
        err.status, err.code = exc.status_code, HTTP_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 405:
            err.extra["Allow"] = ", ".join(allowed(request))
        return error_response(request, err)


class HttpRefusal(ZipserveError):
    """A refusal the router made (404, 405), with the headers it must carry."""

    def __init__(self, message: str, extra: dict[str, str]) -> None:
        super().__init__(message)
        self.extra = extra

    def headers(self) -> dict[str, str]:
        return self.extra


def allowed(request: Request) -> list[str]:
    """Given a request the router answered 405, return every method some route takes at its path.

    RFC 9110 §15.5.6: a 405 lists them all in Allow; the router names only the
    first route's, and GET and HEAD, or GET and POST, are routes of their own here.
    """
    path = get_route_path(request.scope)
    methods: set[str] = set()
    routes = list(request.app.routes)
    for route in routes:
        inner = getattr(route, "original_router", None)  # an include_router()'s routes (no prefix here)
        if inner is not None:
            routes.extend(inner.routes)
        regex, more = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and more and regex.match(path):
            methods |= set(more)
    if "GET" in methods:
        methods.add("HEAD")  # every GET route answers HEAD (Starlette adds it)
    return sorted(methods)


def error_response(request: Request, exc: ZipserveError) -> Response:
    """Given an error, return it as JSON, or as an HTML page when the client prefers HTML."""
    headers = exc.headers()
    if prefers_html(request.headers.get("accept", "")):
        return HTMLResponse(render_error(exc), status_code=exc.status, headers=headers)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
