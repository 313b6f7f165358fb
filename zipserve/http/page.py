"""The bulk-download page: GET / and GET /browse/{dir}, server-rendered with Jinja2.

A plain HTML form posts the ticked paths to POST /archive, so the page works
without JavaScript; zipserve.js only adds "select all" and the live total.
Every name goes through Jinja2's autoescape, every URL is percent-encoded per
segment. A page reached by a signed link hands out links signed for the same
lifetime (see access.py), confined to the folder the link granted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from http import HTTPStatus
from pathlib import Path
from urllib.parse import quote, urlencode

import anyio
import jinja2
from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from zipserve.core import signing
from zipserve.core.node import Node, RelPath
from zipserve.core.selection import parse_path
from zipserve.errors import ZipserveError
from zipserve.service import Service

HERE = Path(__file__).parent
ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # names are data: `<script>` and `a"b` must render as text
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# Defence in depth behind the escaping: no inline script, nothing from elsewhere.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin", "Cache-Control": "no-cache",
                # The "Windows-safe names" box is ticked for Windows browsers (see on_windows).
                "Vary": "Sec-CH-UA-Platform, User-Agent"}
UNITS = ("KB", "MB", "GB", "TB", "PB", "EB")


def install_page(app: FastAPI, service: Service) -> None:
    """Given the app, add the page's routes and its static files."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    @app.api_route("/browse", methods=["GET", "HEAD"], include_in_schema=False)
    @app.api_route("/browse/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def browse(request: Request, path: str = "") -> HTMLResponse:
        folder, children = await anyio.to_thread.run_sync(service.listing, path)
        links = links_for(request, service.settings.secret, folder.path)
        return HTMLResponse(render_folder(folder, children, links, windows=on_windows(request)),
                            headers=PAGE_HEADERS)


@cache
def version(name: str) -> str:
    """Given a static file's name, return a short hash of it, so a new version is never read from cache."""
    return hashlib.sha256((HERE / "static" / name).read_bytes()).hexdigest()[:12]


@dataclass(frozen=True)
class Links:
    """Where the page points: plain URLs, or URLs signed until `expires` inside `grant`."""

    secret: str | None = None
    expires: int | None = None
    grant: RelPath = ()
    base: str = ""  # where the app is mounted in another (its root_path): every href starts there

    def url(self, path: str, query: Sequence[tuple[str, str]] = (), method: str = "GET") -> str:
        """Given an unencoded path in the app and its query, return the href (signed when the page was)."""
        if self.secret is None or self.expires is None:
            return quote(self.base + path, safe="/") + (
                "?" + urlencode(query, quote_via=quote) if query else "")
        # Signed over the path in the app: that is what Access checks, mounted or not.
        return quote(self.base, safe="/") + signing.sign_url(self.secret, path, query,
                                                             expires=self.expires, method=method)

    def folder(self, parts: RelPath) -> str | None:
        """Given a folder, return its page's href, or None when a signed page may not go there."""
        if self.expires is None:
            return self.url("/browse/" + "/".join(parts) if parts else "/")
        if parts[: len(self.grant)] != self.grant:
            return None
        return self.url("/browse/" + "/".join(parts), [("grant", "/".join(self.grant))])

    def file(self, parts: RelPath) -> str:
        return self.url("/files/" + "/".join(parts))

    def action(self) -> str:
        if self.expires is None:
            return self.url("/archive")
        return self.url("/archive", [("grant", "/".join(self.grant))], method="POST")

    def static(self, name: str) -> str:
        return self.url("/static/" + name, [("v", version(name))])


def links_for(request: Request, secret: str | None, here: RelPath) -> Links:
    """Given the page's request, return how its links are made.

    A signed page's ?grant= was signed with it, so it is trusted; without one
    the page's own folder is the grant.
    """
    expires = request.scope.get("state", {}).get("signed_expires")
    base = str(request.scope.get("root_path", ""))
    if secret is None or expires is None:
        return Links(base=base)
    grant = parse_path(request.query_params.get("grant", "/".join(here)))
    if here[: len(grant)] != grant:
        grant = here
    return Links(secret, expires, grant, base)


@dataclass(frozen=True)
class Row:
    """One entry of the listing, ready for the template."""

    name: str
    kind: str
    value: str  # the relative path the form posts
    href: str
    size: int
    size_text: str
    exact_size: str
    iso: str
    date_text: str


def row_of(node: Node, links: Links) -> Row:
    """Given a child Node, return its table row."""
    is_dir = node.kind == "dir"
    href = links.folder(node.path) if is_dir else links.file(node.path)
    assert href is not None  # a child is always inside the page's grant
    when = datetime.fromtimestamp(node.mtime_ns // 1_000_000_000, UTC)
    return Row(name=node.path[-1], kind=node.kind, value=node.shown, href=href,
               size=0 if is_dir else node.size,
               size_text="—" if is_dir else human_size(node.size),
               exact_size=f"{node.size:,} bytes" if not is_dir and node.size >= 1000 else "",
               # 0: not known (a store's folder without a marker object has no time of its own).
               iso=when.isoformat().replace("+00:00", "Z") if node.mtime_ns else "",
               date_text=when.strftime("%Y-%m-%d %H:%M") if node.mtime_ns else "—")


def breadcrumbs(here: RelPath, links: Links) -> list[tuple[str, str | None]]:
    """Given the folder shown, return (name, href) from the root down; the last has no href."""
    crumbs = [("Home", links.folder(()))]
    crumbs += [(name, links.folder(here[: i + 1])) for i, name in enumerate(here)]
    return [*crumbs[:-1], (crumbs[-1][0], None)]


def render_folder(folder: Node, children: list[Node], links: Links, *, windows: bool = False) -> str:
    """Given a folder and its entries (folders first), return the page's HTML.

    `windows`: tick "Windows-safe names" (names=windows) for this browser's downloads.
    """
    return ENV.get_template("folder.html").render(
        title=folder.shown or "Home", crumbs=breadcrumbs(folder.path, links),
        rows=[row_of(n, links) for n in children], action=links.action(),
        css=links.static("zipserve.css"), js=links.static("zipserve.js"), windows=windows)


def on_windows(request: Request) -> bool:
    """Given the page's request, return whether the browser runs on Windows.

    The Sec-CH-UA-Platform client hint when the browser sends it (Chromium
    does to secure origins, localhost included), else the User-Agent. A
    Windows user unzips with Explorer, which cannot make files named
    `a:b`, `con.txt` or `x.`; elsewhere the archive keeps the tree's names.
    """
    platform = request.headers.get("sec-ch-ua-platform")
    if platform is not None:
        return platform.strip().strip('"').lower() == "windows"
    return "windows" in request.headers.get("user-agent", "").lower()


def render_error(exc: ZipserveError) -> str:
    """Given a refusal, return the HTML page that tells a browser about it.

    Only the message is shown: the path field may echo a host path a client
    sent (`../../etc/passwd`), and the page must never display one.
    """
    return ENV.get_template("error.html").render(
        status=exc.status, phrase=HTTPStatus(exc.status).phrase, message=exc.message,
        css=Links().static("zipserve.css"))


def human_size(n: int) -> str:
    """Given a size in bytes, return it for people: '1 byte', '950 bytes', '1.5 KB', '200 KB'.

    Decimal units, as file managers show them; zipserve.js formats the live total the same way.
    """
    if n < 1000:
        return f"{n} byte" if n == 1 else f"{n} bytes"
    value, unit = n / 1000, 0
    while value >= 999.5 and unit < len(UNITS) - 1:  # 999.5 KB would round to "1000 KB"
        value /= 1000
        unit += 1
    return f"{value:.1f} {UNITS[unit]}" if value < 9.95 else f"{value:.0f} {UNITS[unit]}"
