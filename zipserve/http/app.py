"""FastAPI routes: requests -> plans -> responses; errors -> JSON (or HTML) in one place."""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from zipserve.core import links, signing
from zipserve.core.answer import Asked, Part, Served, answer_for
from zipserve.core.headers import file_etag, prefers_html
from zipserve.core.node import Node
from zipserve.core.plan import ArchivePlan
from zipserve.core.selection import parse_path, split_extension
from zipserve.errors import (
    BadRequest,
    Busy,
    Forbidden,
    TooLarge,
    ZipserveError,
)
from zipserve.http.access import Access, RedactSecrets
from zipserve.http.metrics import Metrics
from zipserve.http.page import install_page, render_error
from zipserve.http.streaming import BodyResponse, Chunk, Outcome
from zipserve.service import Service
from zipserve.settings import Settings

log = logging.getLogger("zipserve.access")


def create_app(settings: Settings) -> FastAPI:
    """Given settings, return the ASGI app serving their root."""
    service = Service(settings)
    app = FastAPI(title="zipserve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.state.metrics = metrics = Metrics()
    limiter = anyio.CapacityLimiter(max(settings.max_streams * 2, 8))
    install_error_handlers(app)
    if settings.token is not None or settings.secret is not None:
        app.add_middleware(Access, token=settings.token, secret=settings.secret,
                           max_lifetime=settings.max_expires, on_error=error_response)
    logging.getLogger("uvicorn.access").addFilter(RedactSecrets())

    def respond(status: int, headers: dict[str, str], body: Callable[[bool], Iterator[Chunk]] | None,
                on_done: Callable[[Outcome], None] | None = None) -> BodyResponse:
        return BodyResponse(status, headers, body, limiter=limiter,
                            send_timeout=settings.send_timeout, on_done=on_done,
                            direct=settings.direct_send)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def get_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/api/list")
    @app.get("/api/list/{path:path}")
    async def api_list(request: Request, path: str = "") -> dict[str, Any]:
        folder, children = await anyio.to_thread.run_sync(service.listing, path)
        return {"path": folder.shown, "entries": [
            {"name": n.path[-1], "kind": n.kind, "size": n.size,
             "modified": iso_time(n.mtime_ns) if n.mtime_ns else None} for n in children]}

    @app.api_route("/files/{path:path}", methods=["GET", "HEAD"])
    async def get_file(path: str, request: Request) -> BodyResponse:
        node = await anyio.to_thread.run_sync(service.file, path)
        return serve_file(node, request, respond, service)

    @app.api_route("/archive/{target:path}", methods=["GET", "HEAD"])
    async def get_archive_path(target: str, request: Request) -> BodyResponse:
        q = request.query_params
        path, fmt = split_extension(target, q.get("format"))
        plan = await plan_in_thread(service, [path], fmt, q.get("compression"), q.get("level"),
                                    q.get("name"))
        return serve_archive(plan, request, respond, metrics, settings.max_streams)

    @app.api_route("/archive", methods=["GET", "HEAD"])
    async def get_archive(request: Request) -> BodyResponse:
        fields = selection_fields(request)
        plan = await plan_in_thread(service, fields["paths"], fields["format"],
                                    fields.get("compression"), fields.get("level"),
                                    fields.get("name"))
        return serve_archive(plan, request, respond, metrics, settings.max_streams)

    @app.post("/archive")
    async def post_archive(request: Request) -> Response:
        fields = await posted_fields(request, settings.max_body)
        # Check the paths now so a bad selection is refused here, not after the redirect.
        await plan_in_thread(service, fields["paths"], fields["format"],
                             fields.get("compression"), fields.get("level"), fields.get("name"))
        return RedirectResponse(archive_location(request, fields, settings), status_code=303)

    install_page(app, service)
    return app


def archive_location(request: Request, fields: dict[str, Any], settings: Settings) -> str:
    """Given a POSTed selection, return the GET URL that downloads it.

    A POST let in by a page's signed grant may only select inside the grant's
    folder, and gets a download URL signed for the same lifetime.
    """
    expires = request.scope.get("state", {}).get("signed_expires")
    if expires is None or settings.secret is None:
        return "/archive?s=" + links.pack(fields)
    grant = parse_path(request.query_params.get("grant", ""))
    for raw in fields["paths"]:
        if parse_path(raw)[: len(grant)] != grant:
            raise Forbidden("this link only allows downloads from its own folder", path=raw)
    return signing.sign_url(settings.secret, "/archive", [("s", links.pack(fields))],
                            expires=expires)


async def plan_in_thread(service: Service, paths: list[str], fmt: str, compression: Any,
                         level: Any, name: Any) -> ArchivePlan:
    """Plan in a worker thread: walking a big tree must not stall the event loop."""
    def run() -> ArchivePlan:
        return service.archive(paths, fmt, compression=_opt(compression), level=_opt(level),
                               name=_opt(name))
    return await anyio.to_thread.run_sync(run)


def iso_time(ns: int) -> str:
    """Given nanoseconds since the epoch, return an ISO 8601 UTC time."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).isoformat().replace("+00:00", "Z")


def _opt(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | int):
        raise BadRequest("options must be strings")
    return str(value)


def selection_fields(request: Request) -> dict[str, Any]:
    """Given GET /archive, return its fields from ?s= or from ?path=&format=&name=."""
    q = request.query_params
    if "s" in q:
        fields = links.unpack(q["s"])
        return normalise_fields(fields)
    return normalise_fields({"paths": q.getlist("path"), "format": q.get("format", "zip"),
                             "name": q.get("name"), "compression": q.get("compression"),
                             "level": q.get("level")})


async def posted_fields(request: Request, max_body: int) -> dict[str, Any]:
    """Given POST /archive (a form or JSON), return its fields; raise 400 or 413."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise TooLarge(f"request body is larger than {max_body} bytes")
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > max_body:
            raise TooLarge(f"request body is larger than {max_body} bytes")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest("request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest('JSON body must be an object like {"paths": [...]}')
        return normalise_fields(data)
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}
        form = await Request(request.scope, replay).form()
        return normalise_fields({"paths": [v for v in form.getlist("path") if isinstance(v, str)],
                                 "format": form.get("format") or "zip", "name": form.get("name"),
                                 "compression": form.get("compression"),
                                 "level": form.get("level")})
    raise BadRequest("POST /archive takes a form or application/json")


def normalise_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Given raw selection fields, return them checked and minimal; raise BadRequest."""
    paths = data.get("paths", data.get("path"))
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise BadRequest("paths must be a list of strings")
    fmt = data.get("format") or "zip"
    if not isinstance(fmt, str):
        raise BadRequest("format must be a string")
    out: dict[str, Any] = {"paths": paths, "format": fmt}
    for key in ("name", "compression", "level"):
        value = _opt(data.get(key))
        if value is not None:
            out[key] = value
    for value in [fmt, *(v for k, v in out.items() if k != "paths")]:
        _check_text(value)
    return out


def _check_text(value: str) -> None:
    """Given a field, raise BadRequest unless it is valid UTF-8 text (JSON may carry lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("fields must be valid UTF-8 text") from None


def served_archive(plan: ArchivePlan) -> Served:
    """Given a plan, return the archive as the answer sees it."""
    if not plan.sized:
        return Served.unsized_archive(plan.content_type, plan.filename)
    assert plan.total is not None and plan.etag is not None
    return Served.sized_archive(plan.content_type, plan.filename, plan.total, plan.etag,
                                plan.last_modified)


def served_file(node: Node) -> Served:
    """Given a file node, return the file as the answer sees it."""
    ctype = mimetypes.guess_type(node.path[-1])[0] or "application/octet-stream"
    return Served.file(ctype, node.size, file_etag(node.size, node.mtime_ns, node.version),
                       node.mtime_ns // 1_000_000_000)


def serve_archive(plan: ArchivePlan, request: Request, respond: Callable[..., BodyResponse],
                  metrics: Metrics, max_streams: int) -> BodyResponse:
    """Given a plan, decide the answer (pinned ETag, preconditions, range), then send it."""
    answer = answer_for(served_archive(plan), Asked(request.method, lower(request),
                                                    request.query_params.get("etag")))
    if answer.error is not None:
        raise answer.error
    if answer.body is None:
        return respond(answer.status, answer.headers, None)
    encoder = request.app.state.service.encoder
    body = body_of(answer.body, lambda a, b, zero_copy: encoder.batches(plan, a, b,
                                                                         parts=zero_copy))
    if request.method != "HEAD" and not metrics.try_start(max_streams):
        raise Busy(f"more than {max_streams} archives in flight; try again shortly")
    started = time.monotonic()

    def done(outcome: Outcome) -> None:
        seconds = time.monotonic() - started
        if request.method != "HEAD":
            metrics.finish(outcome, seconds)
        log.info("archive %s", json.dumps({
            "name": plan.filename, "format": plan.options.format, "entries": len(plan.entries),
            "bytes_planned": sum(e.node.size for e in plan.entries), "status": outcome.status,
            "bytes_sent": outcome.sent, "outcome": outcome.result, "error": outcome.error,
            "seconds": round(seconds, 3), "path": outcome.path, "bytes_unread": outcome.unread},
            ensure_ascii=False))
    return respond(answer.status, answer.headers, body, done)


def serve_file(node: Node, request: Request, respond: Callable[..., BodyResponse],
               service: Service) -> BodyResponse:
    """Given a file node, decide the answer (preconditions, range), then send it."""
    answer = answer_for(served_file(node), Asked(request.method, lower(request)))
    if answer.error is not None:
        raise answer.error
    if answer.body is None:
        return respond(answer.status, answer.headers, None)
    encoder = service.encoder
    body = body_of(answer.body, lambda a, b, zero_copy: encoder.file_body(
        node, a, node.size if b is None else b, parts=zero_copy))
    return respond(answer.status, answer.headers, body)


def body_of(parts: tuple[Part, ...], slice_of: Callable[[int, int | None, bool], Iterator[Chunk]]
            ) -> Callable[[bool], Iterator[Chunk]]:
    """Given an answer's body parts, return the body factory: one span as it is, or multipart.

    The factory and `slice_of` take whether the body may hold FileParts (see streaming.BodyResponse).
    """
    if len(parts) == 1 and isinstance(parts[0], tuple):
        start, stop = parts[0]
        return lambda zero_copy: slice_of(start, stop, zero_copy)

    def multipart(zero_copy: bool) -> Iterator[Chunk]:
        for part in parts:
            if isinstance(part, bytes):
                yield part
            else:
                yield from slice_of(*part, zero_copy)
    return multipart


def lower(request: Request) -> dict[str, str]:
    """Given a request, return its headers as a lower-cased dict, repeated ones joined."""
    out: dict[str, str] = {}
    for key, value in request.headers.items():
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Map every refusal to SPEC.md's JSON error (or HTML for browsers), in one place."""

    @app.exception_handler(ZipserveError)
    async def on_error(request: Request, exc: ZipserveError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, BadRequest("malformed request"))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        err = ZipserveError(str(exc.detail))
        err.status, err.code = exc.status_code, {404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error")
        return error_response(request, err)


def error_response(request: Request, exc: ZipserveError) -> Response:
    """Given an error, return it as JSON, or as an HTML page when the client prefers HTML."""
    headers = exc.headers()
    if prefers_html(request.headers.get("accept", "")):
        return HTMLResponse(render_error(exc), status_code=exc.status, headers=headers)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
