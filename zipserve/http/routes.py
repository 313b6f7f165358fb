"""The API's routes: each reads its request, plans in a worker thread, and hands over to respond.

The app's Service and Sender are in ``app.state`` (see app.create_app); the
page's routes are in page.py, the error mapping in refusals.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from zipserve.core import links, signing
from zipserve.core.plan import ArchivePlan
from zipserve.core.selection import parse_path, split_extension
from zipserve.errors import Forbidden
from zipserve.http.fields import option, posted_fields, selection_fields
from zipserve.http.respond import Sender, serve_archive, serve_file
from zipserve.http.streaming import BodyResponse
from zipserve.service import Service
from zipserve.settings import Settings

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics")
async def get_metrics(request: Request) -> Response:
    return Response(sender_of(request).metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/api/list")
@router.get("/api/list/{path:path}")
async def api_list(request: Request, path: str = "") -> dict[str, Any]:
    folder, children = await anyio.to_thread.run_sync(service_of(request).listing, path)
    return {"path": folder.shown, "entries": [
        {"name": n.path[-1], "kind": n.kind, "size": n.size,
         "modified": iso_time(n.mtime_ns) if n.mtime_ns else None} for n in children]}


@router.api_route("/files/{path:path}", methods=["GET", "HEAD"])
async def get_file(path: str, request: Request) -> BodyResponse:
    service = service_of(request)
    node = await anyio.to_thread.run_sync(service.file, path)
    return serve_file(node, request, service.encoder, sender_of(request))


@router.api_route("/archive/{target:path}", methods=["GET", "HEAD"])
async def get_archive_path(target: str, request: Request) -> BodyResponse:
    q = request.query_params
    path, fmt = split_extension(target, q.get("format"))
    service = service_of(request)
    plan = await plan_in_thread(service, [path], fmt, q.get("compression"), q.get("level"),
                                q.get("name"), q.get("names"), q.get("checksums"))
    return serve_archive(plan, request, service.encoder, sender_of(request))


@router.api_route("/archive", methods=["GET", "HEAD"])
async def get_archive(request: Request) -> BodyResponse:
    fields = selection_fields(request)
    service = service_of(request)
    plan = await plan_in_thread(service, fields["paths"], fields["format"],
                                fields.get("compression"), fields.get("level"), fields.get("name"),
                                fields.get("names"), fields.get("checksums"))
    return serve_archive(plan, request, service.encoder, sender_of(request))


@router.post("/archive")
async def post_archive(request: Request) -> Response:
    service = service_of(request)
    fields = await posted_fields(request, service.settings.max_body)
    # Check the paths now so a bad selection is refused here, not after the redirect.
    await plan_in_thread(service, fields["paths"], fields["format"],
                         fields.get("compression"), fields.get("level"), fields.get("name"),
                         fields.get("names"), fields.get("checksums"))
    return RedirectResponse(archive_location(request, fields, service.settings), status_code=303)


def service_of(request: Request) -> Service:
    """Given a request, return its app's Service."""
    service: Service = request.app.state.service
    return service


def sender_of(request: Request) -> Sender:
    """Given a request, return its app's Sender."""
    sender: Sender = request.app.state.sender
    return sender


def archive_location(request: Request, fields: dict[str, Any], settings: Settings) -> str:
    """Given a POSTed selection, return the GET URL that downloads it; raise Forbidden.

    A POST let in by a page's signed grant may only select inside the grant's
    folder, and gets a download URL signed for the same lifetime.
    """
    expires = request.scope.get("state", {}).get("signed_expires")
    base = str(request.scope.get("root_path", ""))  # where the app is mounted, if it is
    if expires is None or settings.secret is None:
        return base + "/archive?s=" + links.pack(fields)
    grant = parse_path(request.query_params.get("grant", ""))
    for raw in fields["paths"]:
        if parse_path(raw)[: len(grant)] != grant:
            raise Forbidden("this link only allows downloads from its own folder", path=raw)
    return base + signing.sign_url(settings.secret, "/archive", [("s", links.pack(fields))],
                                   expires=expires)


async def plan_in_thread(service: Service, paths: list[str], fmt: str, compression: Any,
                         level: Any, name: Any, names: Any = None,
                         checksums: Any = None) -> ArchivePlan:
    """Given raw selection fields, return their plan, made in a worker thread.

    Walking a big tree must not stall the event loop. Raises what Service.archive raises.
    """
    def run() -> ArchivePlan:
        return service.archive(paths, fmt, compression=option(compression), level=option(level),
                               name=option(name), names=option(names),
                               checksums=option(checksums))
    return await anyio.to_thread.run_sync(run)


def iso_time(ns: int) -> str:
    """Given nanoseconds since the epoch, return an ISO 8601 UTC time."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).isoformat().replace("+00:00", "Z")
