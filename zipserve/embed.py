"""zipserve inside an application's own FastAPI or Starlette app.

Three calls, all exported by the package::

    import zipserve
    downloads = zipserve.asgi(root="/srv/files", secret="...")   # an ASGI app
    app.mount("/dl", downloads)                                  # every zipserve route under /dl

    @app.get("/invoices.zip")
    async def invoices() -> zipserve.ArchiveResponse:            # an archive from your own route
        return zipserve.ArchiveResponse(entries=[{"source": "u/81/a8f3e1",
                                                  "name": "Invoices/2024-03 ACME.pdf"}])

    url = zipserve.manifest_url({"entries": [...]}, base_url="/dl")  # a signed link, made in process

ArchiveResponse and manifest_url use the app made by the last asgi() call
unless given another (`app=`); their entries are a manifest's (core/manifest.py),
so they read from the same root, S3 store and allowed URLs as the app does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from zipserve.core.manifest import Manifest, load_manifest, parse_manifest
from zipserve.errors import ZipserveError
from zipserve.http.app import create_app
from zipserve.http.refusals import error_response
from zipserve.http.respond import Sender, serve_archive
from zipserve.manifests import mint_link
from zipserve.service import Service
from zipserve.settings import Settings

_made: list[FastAPI] = []  # the apps asgi() made, newest last: the default of the calls below


def asgi(root: str | Path, *, secret: str | None = None, token: str | None = None,
         **settings: Any) -> FastAPI:
    """Given a root (a folder or an s3:// URL) and any Settings field, return zipserve's ASGI app.

    Mount it in another app (``app.mount("/dl", ...)``) or serve it alone.
    Raises ConfigError for settings that cannot work.
    """
    app = create_app(Settings(root=root, secret=secret, token=token, **settings))
    _made.append(app)
    return app


def _app(app: FastAPI | None) -> FastAPI:
    if app is not None:
        return app
    if not _made:
        raise RuntimeError("call zipserve.asgi(root=...) first, or pass app=")
    return _made[-1]


def _manifest(manifest: Manifest | Mapping[str, Any] | str | bytes, service: Service) -> Manifest:
    """Given a manifest as an object, a dict or JSON text, return it checked; raise BadRequest."""
    if isinstance(manifest, Manifest):
        return manifest
    limit = service.settings.max_files
    if isinstance(manifest, str | bytes):
        return load_manifest(manifest, max_entries=limit)
    return parse_manifest(dict(manifest), max_entries=limit)


def manifest_url(manifest: Manifest | Mapping[str, Any] | str | bytes, *, app: FastAPI | None = None,
                 expires_in: int = 3600, pin: bool = True, base_url: str = "") -> str:
    """Given a manifest, stat its sources and return its download link (what POST /manifest answers).

    `base_url` is where the app is reachable ("/dl", or "https://host/dl");
    the link is signed for `expires_in` seconds when the app has a secret.
    Blocking (it stats every source): call it from a worker thread in async code.
    Raises the ZipserveError POST /manifest would answer.
    """
    service: Service = _app(app).state.service
    checked = _manifest(manifest, service)
    expires = int(time.time()) + expires_in if service.settings.secret else None
    minted = mint_link(checked, service.manifest(checked), store=service.records,
                       secret=service.settings.secret, expires=expires, pin=pin)
    return base_url.rstrip("/") + minted.url


class ArchiveResponse(Response):
    """An archive of a manifest's entries, answered from an application's own route.

    The same answer as a manifest link's: Content-Length, strong ETag, Range,
    If-Range and conditional requests for a stored ZIP or a tar; streamed with
    parallel compression otherwise; JSON refusals before any byte.
    """

    def __init__(self, entries: Sequence[Mapping[str, Any]], format: str = "zip", *,  # noqa: A002
                 name: str | None = None, compression: str | None = None, missing: str = "fail",
                 app: FastAPI | None = None) -> None:
        fields: dict[str, Any] = {"entries": list(entries), "format": format, "missing": missing}
        fields.update({k: v for k, v in (("name", name), ("compression", compression)) if v})
        self.fields, self.app = fields, _app(app)
        self.status_code, self.background = 200, None
        self.raw_headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        service: Service = self.app.state.service
        sender: Sender = self.app.state.sender
        try:
            def plan() -> Any:
                return service.manifest(_manifest(self.fields, service)).plan
            archive = await anyio.to_thread.run_sync(plan)
            response: Response = serve_archive(archive, request, service.manifest_encoder, sender)
        except ZipserveError as exc:
            response = error_response(request, exc)
        await response(scope, receive, send)
