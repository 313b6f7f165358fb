"""The API's routes: each reads its request, plans in a worker thread, and hands over to respond.

The app's Service and Sender are in ``app.state`` (see app.create_app); the
page's routes are in page.py, the error mapping in refusals.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from zipserve.core import links, signing
from zipserve.core.plan import ArchivePlan
from zipserve.core.selection import parse_path, split_extension
from zipserve.encode.encoder import Encoder
from zipserve.errors import BadRequest, Busy, Forbidden, NotFound
from zipserve.http import openapi as api
from zipserve.http.fields import normalise_fields, option, posted_fields, refuse_password, selection_fields
from zipserve.http.respond import Sender, serve_archive, serve_file
from zipserve.http.streaming import BodyResponse
from zipserve.service import Service
from zipserve.settings import Settings

router = APIRouter()


@router.get("/healthz", **api.HEALTH)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)  # for operators, in Prometheus' text
async def get_metrics(request: Request) -> Response:
    return Response(sender_of(request).metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/api/list", **api.LIST)
async def api_list_root(request: Request) -> dict[str, Any]:
    return await api_list("", request)


@router.get("/api/list/{path:path}", **api.LIST)
async def api_list(path: Annotated[str, api.FOLDER], request: Request) -> dict[str, Any]:
    folder, children = await anyio.to_thread.run_sync(service_of(request).listing, path)
    return {"path": folder.shown, "entries": [
        {"name": n.path[-1], "kind": n.kind, "size": n.size,
         "modified": iso_time(n.mtime_ns) if n.mtime_ns else None} for n in children]}


@router.get("/files/{path:path}", **api.FILE)
@router.head("/files/{path:path}", include_in_schema=False)  # described by GET
async def get_file(path: Annotated[str, api.FILE_PATH], request: Request) -> BodyResponse:
    service = service_of(request)
    node = await anyio.to_thread.run_sync(service.file, path)
    return serve_file(node, request, service.encoder, sender_of(request))


@router.get("/archive/{target:path}", **api.ARCHIVE_TARGET)
@router.head("/archive/{target:path}", include_in_schema=False)
async def get_archive_path(target: Annotated[str, api.TARGET], request: Request) -> BodyResponse:
    q = request.query_params
    refuse_password(q)
    path, fmt = split_extension(target, q.get("format"))
    service = service_of(request)
    fields = {**q, "paths": [path], "format": fmt}
    plan = await prepared(request, await plan_in_thread(service, fields),
                          lambda: plan_fields(service, fields))
    return serve_archive(plan, request, service.encoder, sender_of(request))


@router.get("/archive", **api.ARCHIVE)
@router.head("/archive", include_in_schema=False)
async def get_archive(request: Request) -> BodyResponse:
    service = service_of(request)
    key = request.query_params.get("r")
    if key is not None:  # a record: a selection with its password, kept server-side
        fields = await anyio.to_thread.run_sync(record_fields, service, key)
    else:
        fields = selection_fields(request)
    plan = await prepared(request, await plan_in_thread(service, fields),
                          lambda: plan_fields(service, fields))
    return serve_archive(plan, request, service.encoder, sender_of(request))


@router.post("/archive", **api.ARCHIVE_POST)
async def post_archive(request: Request) -> Response:
    service = service_of(request)
    fields = await posted_fields(request, service.settings.max_body)
    # Check the paths now so a bad selection is refused here, not after the redirect.
    plan = await plan_in_thread(service, fields)
    if "password" in fields:
        location = await anyio.to_thread.run_sync(record_location, request, fields, plan, service)
    else:
        location = archive_location(request, fields, service.settings)
    return RedirectResponse(location, status_code=303)


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
    expires = granted_expiry(request, fields, settings)
    base = str(request.scope.get("root_path", ""))  # where the app is mounted, if it is
    if expires is None or settings.secret is None:
        return base + "/archive?s=" + links.pack(fields)
    return base + signing.sign_url(settings.secret, "/archive", [("s", links.pack(fields))],
                                   expires=expires)


def granted_expiry(request: Request, fields: dict[str, Any], settings: Settings) -> int | None:
    """Given a POSTed selection, return the expiry of the signed grant that let it in, or None.

    Raises Forbidden when the grant's folder does not hold every selected path.
    """
    expires: int | None = request.scope.get("state", {}).get("signed_expires")
    if expires is None or settings.secret is None:
        return None
    grant = parse_path(request.query_params.get("grant", ""))
    for raw in fields["paths"]:
        if parse_path(raw)[: len(grant)] != grant:
            raise Forbidden("this link only allows downloads from its own folder", path=raw)
    return expires


RECORD_LIFETIME = 24 * 3600  # a password's record, when no grant sets a shorter life


def record_location(request: Request, fields: dict[str, Any], plan: ArchivePlan,
                    service: Service) -> str:
    """Given a POSTed selection with a password and its plan, keep it as a record; return the link to it.

    The link names the record, never the fields; it is signed (Service.sealing
    refused the password without a secret) until the grant's expiry, else a day
    (at most --max-lifetime), and a sized archive's link pins its ETag.
    Raises Forbidden as granted_expiry.
    """
    settings = service.settings
    assert settings.secret is not None
    expires = granted_expiry(request, fields, settings)
    if expires is None:
        expires = int(time.time()) + min(RECORD_LIFETIME, settings.max_expires)
    key, sealed = links.seal_record(settings.secret.encode("utf-8"), links.record_bytes(fields))
    service.records.put(key, sealed, expires=expires)
    query = [("r", key)] + ([("etag", plan.etag)] if plan.etag is not None else [])
    base = str(request.scope.get("root_path", ""))  # where the app is mounted, if it is
    return base + signing.sign_url(settings.secret, "/archive", query, expires=expires)


def record_fields(service: Service, key: str) -> dict[str, Any]:
    """Given a record's key from a link, return the selection it holds; raise BadRequest or NotFound."""
    if not links.RECORD_KEY.match(key):
        raise BadRequest("malformed record key in link")
    stored = service.records.get(key)
    secret = service.settings.secret
    if stored is None or secret is None:
        raise NotFound("this link's record is unknown or has expired")
    return normalise_fields(links.parse_record(links.open_record(secret.encode("utf-8"), key, stored)))


async def plan_in_thread(service: Service, fields: Any) -> ArchivePlan:
    """Given raw selection fields (paths, format, options, perhaps a password), return their plan.

    Planned in a worker thread: walking a big tree must not stall the event
    loop. Raises what Service.archive raises.
    """
    return await anyio.to_thread.run_sync(plan_fields, service, fields)


def plan_fields(service: Service, fields: Any) -> ArchivePlan:
    """Given raw selection fields, return their plan (see plan_in_thread)."""
    return service.archive(list(fields["paths"]), fields["format"],
                           compression=option(fields.get("compression")),
                           level=option(fields.get("level")), name=option(fields.get("name")),
                           names=option(fields.get("names")),
                           checksums=option(fields.get("checksums")),
                           encryption=option(fields.get("encryption")),
                           password=option(fields.get("password")))


async def prepared(request: Request, plan: ArchivePlan, replan: Callable[[], ArchivePlan],
                   encoder: Encoder | None = None) -> ArchivePlan:
    """Given a request, its plan and how to plan it again, return it, warmed for HEAD ?prepare=1 or a pin.

    Such a HEAD of an unsized deflated ZIP compresses it once without sending
    it (Service.warm, through ``encoder``: the service's unless given), so its
    entries' lengths are known, then plans it again: the answer carries the
    Content-Length and ETag the next GET is served with. A request pinned to
    an ETag (`?etag=`, a resume) of such a ZIP is warmed the same way first: a
    server that never sent it (another of a fleet, or one whose cache was
    lost) can then serve the pinned snapshot, not a 412.
    """
    q = request.query_params
    if plan.sized or not (q.get("etag") or (request.method == "HEAD" and q.get("prepare") == "1")):
        return plan
    service, sender = service_of(request), sender_of(request)
    # It costs what a download costs, so it takes a stream slot while it runs.
    if not sender.metrics.try_start(sender.max_streams):
        raise Busy(f"more than {sender.max_streams} archives in flight; try again shortly")
    try:
        warmed = await anyio.to_thread.run_sync(service.warm, plan, encoder)
    finally:
        sender.metrics.release()
    return await anyio.to_thread.run_sync(replan) if warmed else plan


def iso_time(ns: int) -> str:
    """Given nanoseconds since the epoch, return an ISO 8601 UTC time."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).isoformat().replace("+00:00", "Z")
