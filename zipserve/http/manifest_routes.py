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
from zipserve.http.routes import prepared, sender_of, service_of
from zipserve.http.streaming import BodyResponse
from zipserve.manifests import Minted, mint_link
from zipserve.service import Service

router = APIRouter(tags=["manifests"])
LIFETIME = 3600  # a link's default lifetime, in seconds, when the server signs links

ENTRY_SCHEMA = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {
        "source": {"type": "string", "description": "A path under the served root, s3://bucket/key "
                   "of the configured store, or an http(s) URL under an --allow-url prefix. "
                   "Omitted for a folder."},
        "name": {"type": "string", "description": "Path inside the archive; ending in / makes an "
                 "empty folder. No '..', leading '/', drive letter, NUL or duplicates."},
        "size": {"type": "integer", "minimum": 0, "description": "Refused if the source differs."},
        "crc32": {"type": "string", "pattern": "^[0-9A-Fa-f]{8}$", "description": "A remote "
                  "file's CRC-32: plans a stored ZIP without reading it first; bytes that "
                  "disagree cut the download."},
        "mtime": {"oneOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}],
                  "description": "The time the archive shows: POSIX seconds or ISO 8601."},
    },
}
MANIFEST_SCHEMA = {
    "type": "object", "required": ["entries"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "description": "Download name, without extension."},
        "format": {"enum": ["zip", "tar", "tar.gz", "tar.zst"], "default": "zip"},
        "compression": {"enum": ["auto", "store", "deflate"], "default": "auto",
                        "description": "ZIP only; store keeps the archive sized and resumable."},
        "level": {"type": "integer", "minimum": 1, "maximum": 9},
        "missing": {"enum": ["fail", "skip"], "default": "fail",
                    "description": "skip: leave missing entries out and add MISSING.txt."},
        "entries": {"type": "array", "minItems": 1, "items": ENTRY_SCHEMA},
        "names": {"enum": ["keep", "windows"], "default": "keep",
                  "description": "windows: names made valid on Windows, without collisions."},
        "checksums": {"enum": ["none", "sha256"], "default": "none",
                      "description": "sha256: a last SHA256SUMS entry (zip)."},
        "encryption": {"enum": ["none", "aes256"], "description": "aes256: WinZip AES-256 (zip); "
                       "the default when a password is given."},
        "password": {"type": "string", "description": "Encrypts every file (needs --secret). "
                     "Kept only in the server's record store; the link names the record."},
    },
}
POST_DOC: dict[str, Any] = {
    "requestBody": {"required": True,
                    "content": {"application/json": {"schema": MANIFEST_SCHEMA}}},
    "parameters": [
        {"name": "expires", "in": "query", "schema": {"type": "integer", "default": LIFETIME},
         "description": "The link's lifetime in seconds, when the server signs links."},
        {"name": "pin", "in": "query", "schema": {"enum": ["0", "1"], "default": "1"},
         "description": "1: a sized archive's link carries its ETag and answers 412 once a "
                        "source changes."},
    ],
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A manifest that cannot work; the JSON error names the entry."},
    401: {"description": "The server needs its token (or a signed link)."},
    403: {"description": "A URL outside --allow-url, or a path outside the root."},
    404: {"description": "Entries missing (missing=fail): error.missing lists every one."},
    413: {"description": "Over --max-files, --max-bytes or --max-body."},
}


@router.post("/manifest", status_code=201, openapi_extra=POST_DOC, responses=ERRORS,
             summary="Make a download link for an application's list of files and names")
async def post_manifest(request: Request) -> JSONResponse:
    """Check the manifest, stat every source, and answer 201 with the GET link that downloads it.

    The answer: {"url", "path", "name", "format", "size" (null: streamed without a length),
    "etag", "entries", "expires" (null: not signed), "skipped": [{"name", "why"}]}.
    """
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


@router.head("/manifest/{rest:path}", include_in_schema=False)  # GET's headers, no body
@router.get("/manifest/{rest:path}", responses={
    200: {"description": "The archive", "content": {"application/zip": {}, "application/x-tar": {}}},
    206: {"description": "The ranges asked for (sized archives)"},
    304: {"description": "Not modified"}, 412: {"description": "A source changed (?etag= pin)"},
    416: {"description": "Range not satisfiable"}, **ERRORS},
    summary="Download a manifest's archive (the link POST /manifest made)")
async def get_manifest(rest: str, request: Request) -> BodyResponse:
    """Stream the archive a manifest link names: /manifest/{token}/{name} or /manifest/sha256/{hex}/{name}.

    Stored ZIP and tar have Content-Length, a strong ETag, Range and If-Range.
    """
    service = service_of(request)

    def plan() -> Any:
        secret = service.settings.secret
        manifest = resolve(parse_link(rest), service.records, max_entries=service.settings.max_files,
                           secret=secret.encode("utf-8") if secret is not None else None)
        return service.manifest(manifest).plan
    archive = await prepared(request, await anyio.to_thread.run_sync(plan), plan, service.manifest_encoder)
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
