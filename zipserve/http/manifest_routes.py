"""The manifest routes: POST /manifest makes a link, GET /manifest/... downloads its archive.

An application POSTs its list of files and names (core/manifest.py); the
server checks it, stats every source, and answers with a GET link any server
sharing the secret (and the record store, for long manifests) can serve,
with everything a folder's archive has: Content-Length, a strong ETag, Range
and If-Range, ?etag= pinning.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from zipserve.core.manifest import load_manifest
from zipserve.core.manifest_link import parse_link, resolve
from zipserve.errors import BadRequest
from zipserve.http.fields import read_body
from zipserve.http.respond import serve_archive
from zipserve.http.routes import sender_of, service_of
from zipserve.http.streaming import BodyResponse
from zipserve.manifests import Minted, mint_link
from zipserve.service import Service

router = APIRouter()
LIFETIME = 3600  # a link's default lifetime, in seconds, when the server signs links


@router.post("/manifest", status_code=201)
async def post_manifest(request: Request) -> JSONResponse:
    service = service_of(request)
    body = await read_body(request, service.settings.max_body)
    lifetime, pin = link_options(request, service)

    def make() -> Minted:
        manifest = load_manifest(body, max_entries=service.settings.max_files)
        expires = int(time.time()) + lifetime if service.settings.secret else None
        return mint_link(manifest, service.manifest(manifest), store=service.records,
                         secret=service.settings.secret, expires=expires, pin=pin)
    minted = await anyio.to_thread.run_sync(make)
    return JSONResponse(described(minted, request), status_code=201)


@router.api_route("/manifest/{rest:path}", methods=["GET", "HEAD"])
async def get_manifest(rest: str, request: Request) -> BodyResponse:
    service = service_of(request)

    def plan() -> Any:
        manifest = resolve(parse_link(rest), service.records,
                           max_entries=service.settings.max_files)
        return service.manifest(manifest).plan
    archive = await anyio.to_thread.run_sync(plan)
    return serve_archive(archive, request, service.manifest_encoder, sender_of(request))


def link_options(request: Request, service: Service) -> tuple[int, bool]:
    """Given POST /manifest's query (?expires=SECONDS, ?pin=0), return the link's lifetime and pinning."""
    q = request.query_params
    raw = q.get("expires", str(LIFETIME))
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= service.settings.max_expires:
        raise BadRequest(f"expires is a lifetime in seconds, 1..{service.settings.max_expires}")
    pin = q.get("pin", "1")
    if pin not in ("0", "1"):
        raise BadRequest("pin is 1 (the link answers 412 once a source changes) or 0")
    return int(raw), pin == "1"


def described(minted: Minted, request: Request) -> dict[str, Any]:
    """Given a minted link, return POST /manifest's answer: the link and what it downloads."""
    plan, skipped = minted.planned.plan, minted.planned.skipped
    return {
        "url": str(request.base_url).rstrip("/") + minted.url,  # base_url holds any mount's root_path
        "path": request.scope.get("root_path", "") + minted.url,
        "name": plan.filename,
        "format": plan.options.format,
        "size": plan.total,
        "etag": plan.etag,
        "entries": len(plan.entries),
        "expires": minted.expires,
        "skipped": [{"name": e.name, "why": why} for e, why in skipped],
    }
