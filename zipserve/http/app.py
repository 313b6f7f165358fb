"""The ASGI app: routes, page, access control and the error mapping, wired to one Service.

A request flows routes -> (fields, plan) -> core.answer -> respond -> streaming;
refusals go to refusals.py, which alone turns errors into HTTP.
"""

from __future__ import annotations

import importlib.metadata
import logging

from fastapi import FastAPI

from zipserve.http.access import Access, RedactSecrets
from zipserve.http.docs import install_docs
from zipserve.http.manifest_routes import router as manifest_router
from zipserve.http.metrics import Metrics
from zipserve.http.openapi import install_openapi
from zipserve.http.page import install_page
from zipserve.http.refusals import error_response, install_error_handlers
from zipserve.http.respond import Sender
from zipserve.http.routes import router
from zipserve.service import Service
from zipserve.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """Given settings, return the ASGI app serving their root."""
    service = Service(settings)
    # The API described at /openapi.json (http/openapi.py) and shown at /docs (http/docs.py).
    app = FastAPI(title="zipserve", version=version(), docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    install_openapi(app)
    app.state.service = service
    app.state.metrics = metrics = Metrics()
    app.state.sender = Sender.of(settings, metrics)
    install_error_handlers(app)
    if settings.token is not None or settings.secret is not None:
        app.add_middleware(Access, token=settings.token, secret=settings.secret,
                           max_lifetime=settings.max_expires, on_error=error_response)
    logging.getLogger("uvicorn.access").addFilter(RedactSecrets())
    app.include_router(router)
    app.include_router(manifest_router)
    install_page(app, service)
    install_docs(app)
    return app


def version() -> str:
    """Return zipserve's installed version, or "0" when it runs from a checkout never installed."""
    try:
        return importlib.metadata.version("zipserve")
    except importlib.metadata.PackageNotFoundError:
        return "0"
