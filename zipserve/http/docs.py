"""The API's docs page at /docs: Swagger UI on /openapi.json, every asset served by zipserve itself.

Swagger UI's files come from the fastapi-offline package (its static/
folder; its app factory is not used): it follows Swagger UI's releases and
needs nothing beyond FastAPI. swagger-ui-bundle still ships Swagger UI 4,
which cannot show OpenAPI 3.1 (what FastAPI writes), and swagger-ui-py
brings Swagger Editor (~20 MB) with PyYAML and packaging.

The page names no other host, Swagger UI's validator badge (which would ask
validator.swagger.io) is off, and its Content-Security-Policy lets the
browser load nothing from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS = "/docs"
ASSETS = "/docs/assets"  # Swagger UI's script, style sheet and icon
OPTIONS = {"validatorUrl": None, "defaultModelsExpandDepth": 0}
_INLINE = re.compile(r"<script>(.*?)</script>", re.S)


def install_docs(app: FastAPI) -> None:
    """Given the app (its openapi_url set), add /docs and Swagger UI's files under /docs/assets."""
    folder = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(folder)), name="docs-assets")
    schema = app.openapi_url or "/openapi.json"

    @app.get(DOCS, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", ""))  # where the app is mounted, if it is
        page = get_swagger_ui_html(
            openapi_url=root + schema, title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png", swagger_ui_parameters=OPTIONS)
        page.headers["Content-Security-Policy"] = policy(bytes(page.body).decode())
        page.headers["X-Content-Type-Options"] = "nosniff"
        return page


def policy(html: str) -> str:
    """Given the page, return its Content-Security-Policy: this origin only, its inline script by hash.

    Swagger UI sets inline styles and data: images; it fetches the description
    (and, when trying a route, the route) from this origin.
    """
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE.findall(html))
    return (f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
