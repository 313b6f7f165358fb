"""/openapi.json and /docs: the description validates as OpenAPI 3, names what the routes read, and
the routes answer as described; the docs page renders in Chromium from 127.0.0.1 alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate
from playwright.sync_api import sync_playwright
from starlette.testclient import TestClient

from tests.helpers import ARGS, CHROMIUM, TIMEOUT_MS, Server, Site
from zipserve.core import formats
from zipserve.core.selection import CHECKSUMS, COMPRESSIONS, ENCRYPTIONS, NAMES
from zipserve.http.app import create_app
from zipserve.http.fields import OPTIONS, SECRET_FIELDS
from zipserve.http.openapi import ErrorBody, Health, Listing
from zipserve.settings import Settings

DESCRIBED = {("get", "/archive"), ("post", "/archive"), ("get", "/archive/{target}"),
             ("get", "/files/{path}"), ("get", "/api/list"), ("get", "/api/list/{path}"),
             ("get", "/healthz")}
HEADERS = {"Range", "If-Range", "If-None-Match", "If-Modified-Since", "If-Match",
           "If-Unmodified-Since"}


@pytest.fixture(scope="module")
def schema(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    return dict(answer.json())


def operation(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return dict(schema["paths"][path][method])


def params(op: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", []) if p["in"] == where}


# --- the description itself -----------------------------------------------------------------------


def test_the_description_is_valid_openapi_3(schema: dict[str, Any]) -> None:
    validate(schema)  # openapi-spec-validator: the 3.x schema, references resolved
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "zipserve"


def test_every_application_route_is_described_and_no_page_route_is(schema: dict[str, Any]) -> None:
    described = {(m, p) for p, ops in schema["paths"].items() for m in ops}
    assert described >= DESCRIBED
    for path in ("/", "/browse", "/browse/{path}", "/metrics", "/docs", "/openapi.json"):
        assert path not in schema["paths"]
    assert not any(p.startswith("/static") or p.startswith("/docs/") for p in schema["paths"])
    assert not any(m == "head" for m, _ in described)  # HEAD is described by its GET


@pytest.mark.parametrize(("method", "path"), sorted(DESCRIBED))
def test_each_route_has_a_summary_a_description_and_json_refusals(
        schema: dict[str, Any], method: str, path: str) -> None:
    op = operation(schema, method, path)
    assert op["summary"] and op["description"]
    assert "422" not in op["responses"]  # refusals.py answers malformed requests with 400
    for status, answer in op["responses"].items():
        assert answer["description"]
        if int(status) >= 400:
            assert answer["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"}
    error = schema["components"]["schemas"]["ErrorDetail"]
    assert {"code", "message"} <= set(error["required"])


ARCHIVE_STATUSES = {"200", "206", "304", "400", "403", "404", "412", "413", "416", "503"}


@pytest.mark.parametrize("path", ["/archive", "/archive/{target}"])
def test_archive_downloads_list_their_statuses_and_types(schema: dict[str, Any], path: str) -> None:
    answers = operation(schema, "get", path)["responses"]
    assert set(answers) >= ARCHIVE_STATUSES
    assert set(answers["200"]["content"]) == {f.content_type for f in formats.FORMATS}


def test_get_archive_lists_the_fields_the_route_reads(schema: dict[str, Any]) -> None:
    op = operation(schema, "get", "/archive")
    assert set(params(op, "query")) == {"s", "r", "path", "format", "etag", "prepare", *OPTIONS}
    assert set(params(op, "header")) == HEADERS
    assert params(op, "query")["path"]["schema"]["type"] == "array"


def test_archive_by_url_lists_its_target_and_options(schema: dict[str, Any]) -> None:
    op = operation(schema, "get", "/archive/{target}")
    assert set(params(op, "path")) == {"target"}
    assert set(params(op, "query")) == {"format", "etag", "prepare", *OPTIONS}


def test_post_archive_takes_the_same_fields_as_json_or_a_form(schema: dict[str, Any]) -> None:
    op = operation(schema, "post", "/archive")
    body = op["requestBody"]["content"]
    assert set(body["application/json"]["schema"]["properties"]) == {
        "paths", "format", *OPTIONS, *SECRET_FIELDS}
    assert set(body["application/x-www-form-urlencoded"]["schema"]["properties"]) == {
        "path", "format", *OPTIONS, *SECRET_FIELDS}
    assert body["application/json"]["schema"]["properties"]["password"]["writeOnly"] is True
    assert "303" in op["responses"] and "200" not in op["responses"]


@pytest.mark.parametrize(("name", "values"), [
    ("compression", COMPRESSIONS), ("names", NAMES), ("checksums", CHECKSUMS),
    ("encryption", ENCRYPTIONS),
    ("format", formats.NAMES)])
def test_option_values_are_the_ones_the_core_accepts(schema: dict[str, Any], name: str,
                                                     values: tuple[str, ...]) -> None:
    described = params(operation(schema, "get", "/archive"), "query")[name]["schema"]["enum"]
    assert described == list(values)


# --- the routes answer as described ---------------------------------------------------------------

# One probe per query parameter of GET /archive: a request that shows the route reads it.
# (params, status, what the answer shows)
PROBES: dict[str, tuple[dict[str, str], int, str]] = {
    "s": ({"s": "not-a-packed-selection"}, 400, "error"),
    "r": ({"r": "not-a-record"}, 400, "record key"),
    "path": ({"path": "no/such/thing"}, 404, "no/such/thing"),
    "format": ({"path": "docs", "format": "rar"}, 400, "unknown format"),
    "name": ({"path": "docs", "name": "my pick"}, 200, "my pick.zip"),
    "compression": ({"path": "docs", "compression": "bzip9"}, 400, "compression"),
    "level": ({"path": "docs", "level": "0"}, 400, "level"),
    "names": ({"path": "docs", "names": "dos"}, 400, "names"),
    "checksums": ({"path": "docs", "checksums": "md5"}, 400, "checksums"),
    "encryption": ({"path": "docs", "encryption": "rot13"}, 400, "encryption"),
    "etag": ({"path": "docs", "compression": "store", "etag": "stale"}, 412, "error"),
}


def shown(answer: httpx.Response) -> str:
    """Given an answer, return what a probe looks for in it: the error body, or the download's name."""
    if answer.status_code >= 400:
        ErrorBody.model_validate(answer.json())  # the described error shape
        return answer.text
    return answer.headers["content-disposition"]


def test_every_described_query_parameter_has_a_probe(schema: dict[str, Any]) -> None:
    assert set(params(operation(schema, "get", "/archive"), "query")) == {*PROBES, "prepare"}


def test_head_reads_prepare(http: httpx.Client) -> None:
    # A deflated ZIP of docs/ has no length until it is deflated once; prepare does that first.
    query = {"path": "docs/notes", "compression": "deflate", "level": "9"}
    assert "content-length" not in http.head("/archive", params=query).headers
    prepared = http.head("/archive", params={**query, "prepare": "1"})
    assert prepared.status_code == 200 and int(prepared.headers["content-length"]) > 0


@pytest.mark.parametrize("name", sorted(PROBES))
def test_get_archive_reads_each_described_parameter(http: httpx.Client, schema: dict[str, Any],
                                                    name: str) -> None:
    query, status, expected = PROBES[name]
    answer = http.get("/archive", params=query)
    assert answer.status_code == status
    assert str(status) in operation(schema, "get", "/archive")["responses"]
    assert expected in shown(answer)


@pytest.mark.parametrize(("url", "headers", "status"), [
    ("/files/docs/readme.txt", {}, 200),
    ("/files/docs/readme.txt", {"Range": "bytes=0-9"}, 206),
    ("/files/docs/readme.txt", {"Range": "bytes=99999-"}, 416),
    ("/files/docs/nothing.txt", {}, 404),
    ("/archive?path=../etc", {}, 403),
    ("/archive/docs.tar", {"Range": "bytes=0-99"}, 206),
    ("/archive/docs.tar", {"If-Match": '"other"'}, 412),
    ("/archive/docs.rar", {}, 400),
])
def test_downloads_answer_with_described_statuses(http: httpx.Client, schema: dict[str, Any],
                                                  url: str, headers: dict[str, str],
                                                  status: int) -> None:
    answer = http.get(url, headers=headers)
    assert answer.status_code == status
    path = {"/files/": "/files/{path}", "/archive/": "/archive/{target}"}.get(
        url[:url.index("/", 1) + 1], "/archive")
    assert str(status) in operation(schema, "get", path)["responses"]
    if status >= 400 and "if-match" not in {k.lower() for k in headers}:
        ErrorBody.model_validate(answer.json())
    elif status == 412:  # RFC 9110 §13.2.2: a failed If-Match is answered like a 304, no body
        assert answer.content == b"" and answer.headers["etag"]


def test_a_matching_etag_is_not_modified(http: httpx.Client) -> None:
    etag = http.get("/files/top.txt").headers["etag"]
    assert http.get("/files/top.txt", headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("body", [{"json": {"paths": ["docs"], "format": "tar", "names": "windows"}},
                                  {"data": {"path": ["docs", "top.txt"], "format": "zip"}}])
def test_post_archive_answers_303_to_a_get_url(http: httpx.Client, body: dict[str, Any]) -> None:
    answer = http.post("/archive", **body)
    assert answer.status_code == 303
    assert http.get(answer.headers["location"]).status_code == 200


def test_listings_and_health_match_their_models(http: httpx.Client) -> None:
    for url in ("/api/list", "/api/list/docs"):
        listing = Listing.model_validate(http.get(url).json())
        assert listing.entries
    Health.model_validate(http.get("/healthz").json())


# --- who may read it, and where it lives when mounted ------------------------------------------------


@pytest.mark.parametrize("setting", [{"token": "t0ken"}, {"secret": "s3cret"}])
def test_the_description_and_docs_are_open_when_the_rest_needs_a_token(
        tree: Path, setting: dict[str, str]) -> None:
    app = create_app(Settings(root=tree, crc_cache=None, records=None, **setting))
    with TestClient(app) as client:
        assert client.get("/api/list").status_code == 401
        assert client.get("/files/top.txt").status_code == 401
        for url in ("/openapi.json", "/docs", "/docs/assets/swagger-ui-bundle.js",
                    "/docs/assets/swagger-ui.css", "/healthz"):
            assert client.get(url).status_code == 200, url


def test_mounted_under_a_prefix_the_docs_point_inside_it(tree: Path) -> None:
    outer = FastAPI()
    outer.mount("/dl", create_app(Settings(root=tree, crc_cache=None, records=None)))
    with TestClient(outer) as client:
        page = client.get("/dl/docs").text
        assert "/dl/openapi.json" in page and "/dl/docs/assets/swagger-ui-bundle.js" in page
        assert client.get("/dl/openapi.json").json()["servers"] == [{"url": "/dl"}]
        assert client.get("/dl/docs/assets/swagger-ui-bundle.js").status_code == 200


# --- the docs page in Chromium --------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=TIMEOUT_MS)
        yield browser
        browser.close()


def test_the_docs_page_renders_the_routes_from_this_server_alone(chromium: Any,
                                                                 sample: Site) -> None:
    server: Server = sample.server
    requests: list[str] = []
    problems: list[str] = []
    context = chromium.new_context(base_url=server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        page.goto("/docs")
        page.wait_for_selector(".opblock-summary-path")
        shown_paths = page.locator(".opblock-summary-path").all_inner_texts()
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    for path in ("/archive", "/archive/{target}", "/files/{path}", "/api/list", "/healthz"):
        assert any(s.replace("\u200b", "") == path for s in shown_paths), (path, shown_paths)
    hosts = {urlsplit(u).hostname for u in requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, requests
    assert any(u.endswith("/openapi.json") for u in requests)
    assert problems == []


def test_swagger_ui_asks_no_validator_and_names_no_other_host(http: httpx.Client) -> None:
    page = http.get("/docs")
    assert "validatorUrl\": null" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]




@pytest.mark.parametrize(("path", "allow"), [
    ("/archive", "GET, HEAD, POST"),
    ("/manifest", "POST"),
    ("/manifest/token/a.zip", "GET, HEAD"),
    ("/files/a.txt", "GET, HEAD"),
    ("/healthz", "GET, HEAD"),
])
def test_a_405_lists_every_method_the_path_takes(tmp_path: Path, path: str, allow: str) -> None:
    # RFC 9110 §15.5.6: Allow names them all, though GET, HEAD and POST are routes of their own.
    with TestClient(create_app(Settings(root=tmp_path, crc_cache=None, records=None))) as c:
        r = c.request("DELETE", path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert r.json()["error"]["code"] == "method_not_allowed"
