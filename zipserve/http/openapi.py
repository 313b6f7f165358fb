"""The API's description at /openapi.json: what each application-facing route reads and answers.

Routes take the dicts below as keyword arguments of their decorators. The
query parameters are the names http/fields.py reads (fields.OPTIONS) and
their values the core's own lists, so the description moves with the code.
HEAD routes are left out, described by their GET (the same headers, no
body); so are the page's routes, its static files and /metrics. Models here
only describe: no answer is validated through them.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI, Path
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from starlette.responses import Response

from zipserve.core import formats
from zipserve.core.selection import CHECKSUMS, COMPRESSIONS, ENCRYPTIONS, NAMES
from zipserve.http.fields import OPTIONS, SECRET_FIELDS

DESCRIPTION = """\
Streams any selection of files under the served root as ZIP, tar, tar.gz,
tar.zst or gzip. An archive whose size is known before sending (a stored ZIP,
a tar, a deflated ZIP once its entries' compressed lengths are known) has a
Content-Length, a strong ETag and Range support, so a cut download resumes
byte-identical; `?etag=` pins a link to one snapshot.

Refusals are JSON, `{"error": {"code", "message", "path"?}}`, with the status
below (a browser that prefers HTML gets a page). With `--token`, send
`Authorization: Bearer TOKEN`; with `--secret`, use links made by
`zipserve sign` (`?expires=&sig=`). `/healthz`, this description and `/docs`
are always open.
"""


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable code: bad_request, unauthorized, forbidden, not_found, "
                                  "missing, precondition_failed, too_large, range_not_satisfiable, "
                                  "busy, store_error, store_unavailable.")
    message: str = Field(description="What went wrong, for people.")
    path: str | None = Field(None, description="The requested path the error is about, if one is.")
    missing: list[dict[str, Any]] | None = Field(
        None, description="A manifest's entries whose sources are missing (code `missing`).")


class ErrorBody(BaseModel):
    """Every refusal's body."""

    error: ErrorDetail


class ListEntry(BaseModel):
    name: str
    kind: Literal["file", "dir"]
    size: int = Field(description="Bytes; 0 for a folder.")
    modified: str | None = Field(description="ISO 8601 UTC; null when the source has no time.")


class Listing(BaseModel):
    """A folder's entries: folders first, then by name."""

    path: str = Field(description="The folder, relative to the root (empty for the root).")
    entries: list[ListEntry]


class Health(BaseModel):
    status: Literal["ok"]


# --- parameters ---------------------------------------------------------------------------------

OPTION_DOCS: dict[str, tuple[str, dict[str, Any]]] = {
    "name": ("The download's name, without extension (default: from the selection).",
             {"type": "string"}),
    "compression": ("ZIP entries: `auto` deflates what compresses and stores JPEG, MP4, ZIP...;"
                    " `store` makes a sized ZIP (Content-Length, Range, resume); `deflate` all.",
                    {"type": "string", "enum": list(COMPRESSIONS), "default": "auto"}),
    "level": ("Deflate, gzip or zstd level, 1 (fast) to 9 (small); default: the server's --level.",
              {"type": "integer", "minimum": 1, "maximum": 9}),
    "names": ("`windows` renames entries so Windows can extract them (reserved names,"
              ' `<>:"|?*`, trailing dots and spaces, long paths), without collisions.',
              {"type": "string", "enum": list(NAMES), "default": "keep"}),
    "checksums": ("`sha256` appends a SHA256SUMS entry listing every file (ZIP only; such a ZIP is"
                  " not sized).", {"type": "string", "enum": list(CHECKSUMS), "default": "none"}),
    "encryption": ("`aes256` encrypts every entry with WinZip AES-256 (ZIP only); it needs a"
                   " `password`, which only POST /archive takes.",
                   {"type": "string", "enum": list(ENCRYPTIONS), "default": "none"}),
}
PASSWORD = {"type": "string", "format": "password", "writeOnly": True,
            "description": "Encrypts the ZIP (implies `encryption=aes256`; needs --secret). Kept in"
                           " a server-side record the answered link names; never in a URL: a GET"
                           " carrying one is refused."}
FORMAT = {"type": "string", "enum": list(formats.NAMES), "default": formats.DEFAULT}
FORMAT_TEXT = "Archive format (`tgz` is taken for tar.gz); `gz` holds exactly one file."
ETAG = ("Pin the link to one snapshot: the archive's ETag without quotes. Once the selection"
        " changes the link answers 412 instead of other bytes.")
CONDITIONS = {
    "Range": "One or more byte ranges (RFC 9110 §14.2); served for sized answers.",
    "If-Range": "An ETag or date: the Range applies only while it still matches.",
    "If-None-Match": "ETags: 304 when one matches.",
    "If-Modified-Since": "A date: 304 when not modified since (without If-None-Match).",
    "If-Match": "ETags: 412 unless one matches.",
    "If-Unmodified-Since": "A date: 412 if modified since (without If-Match).",
}


def query(name: str, description: str, schema: dict[str, Any], **more: Any) -> dict[str, Any]:
    """Given a query parameter's name, text and JSON schema, return its OpenAPI parameter."""
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema, **more}


def options() -> list[dict[str, Any]]:
    """Return the archive options' query parameters, in the order fields.OPTIONS names them."""
    return [query(k, *OPTION_DOCS[k]) for k in OPTIONS]


def conditions() -> list[dict[str, Any]]:
    """Return the conditional and Range request headers every download honours."""
    return [{"name": k, "in": "header", "required": False, "description": v,
             "schema": {"type": "string"}} for k, v in CONDITIONS.items()]


# --- responses ----------------------------------------------------------------------------------

ERRORS = {
    400: "A malformed request: a bad path, option or field (the message names it).",
    401: "A token or signed link is needed (`--token`, `--secret`).",
    403: "A path outside the root, or outside what a signed link allows.",
    404: "No such file or folder (or link).",
    412: "A precondition failed: a pinned `?etag=` that no longer matches (this body), or"
         " If-Match / If-Unmodified-Since (no body, the validators repeated, as for a 304).",
    413: "Over a limit: files, bytes, paths, depth or body size (`--max-*`).",
    416: "No requested range lies within the answer (Content-Range names its length).",
    502: "The object store answered an error (bucket missing, credentials refused).",
    503: "Too many downloads at once, or the object store is unreachable: retry after"
         " Retry-After seconds.",
}
BINARY = {"schema": {"type": "string", "format": "binary"}}
VALIDATORS = {
    "ETag": {"description": "Strong for a sized archive or a file, weak otherwise.",
             "schema": {"type": "string"}},
    "Content-Disposition": {"description": "attachment, with the download's name.",
                            "schema": {"type": "string"}},
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Given statuses, return their OpenAPI responses, each with the JSON error body."""
    return {code: {"model": ErrorBody, "description": ERRORS[code]} for code in codes}


def downloads(types: list[str], what: str) -> dict[int | str, dict[str, Any]]:
    """Given the content types and what a download is, return its 200, 206 and 304 responses."""
    content = {t: BINARY for t in types}
    return {
        200: {"description": what, "content": content, "headers": VALIDATORS},
        206: {"description": "The requested ranges (sized answers only); several ranges come as"
                             " multipart/byteranges.", "content": content},
        304: {"description": "Not modified: If-None-Match or If-Modified-Since matched."},
    }


ARCHIVE_TYPES = sorted({f.content_type for f in formats.FORMATS})
ARCHIVE_ANSWERS = {
    **downloads(ARCHIVE_TYPES, "The archive. A stored ZIP and a tar are sized (Content-Length,"
                " strong ETag, Range); other archives stream with a weak ETag."),
    **errors(400, 401, 403, 404, 412, 413, 416, 502, 503)}


# --- the routes ---------------------------------------------------------------------------------

TARGET = Path(description="A file or folder path, relative to the root, and the format's extension:"
                          " `docs.zip`, `photos/2024.tar.gz`, `notes/long.txt.gz`.")
FILE_PATH = Path(description="The file, relative to the root.")
FOLDER = Path(description="The folder, relative to the root.")

DOWNLOAD: dict[str, Any] = dict(response_class=Response, response_model=None)
PREPARE = ("HEAD only: `1` deflates a ZIP that is not sized yet once, sending nothing, so this"
           " answer and the next ones have its Content-Length and ETag (takes a stream slot).")
OPTIONS_AND_PIN = [*options(), query("etag", ETAG, {"type": "string"}),
                   query("prepare", PREPARE, {"type": "string", "enum": ["1"]})]

ARCHIVE: dict[str, Any] = dict(
    DOWNLOAD, summary="Download a selection as an archive",
    description="The selection as `?path=` (repeated) with `format` and options, or as `?s=`, the"
                " packed selection POST /archive redirects to. Names inside are relative to the"
                " deepest folder holding every path. HEAD answers the same headers, no body.",
    responses=ARCHIVE_ANSWERS,
    openapi_extra={"parameters": [
        query("s", "A packed selection (what POST /archive redirects to); when given, the"
                   " fields below are not read.", {"type": "string"}),
        query("r", "A server-side record of a selection with its password (what POST /archive"
                   " redirects to when given one); when given, no other field is read.",
              {"type": "string"}),
        query("path", "A file or folder to include, relative to the root; repeat for more.",
              {"type": "array", "items": {"type": "string"}}, style="form", explode=True),
        query("format", FORMAT_TEXT, FORMAT), *OPTIONS_AND_PIN, *conditions()]})

ARCHIVE_TARGET: dict[str, Any] = dict(
    DOWNLOAD, summary="Download a file or folder as an archive named by its URL",
    description="`docs.zip` is the folder `docs` as ZIP; the extension names the format (.zip,"
                " .tar, .tar.gz or .tgz, .tar.zst, .gz for one file), so `wget` saves the"
                " right name. HEAD answers the same headers, no body.",
    responses=ARCHIVE_ANSWERS,
    openapi_extra={"parameters": [
        query("format", "The format, when the URL does not end in its extension (a matching"
                        " extension is then dropped).", FORMAT), *OPTIONS_AND_PIN, *conditions()]})


def _body_schema() -> dict[str, Any]:
    """Return POST /archive's fields as a JSON schema (the same for JSON and forms)."""
    props: dict[str, Any] = {"format": {**FORMAT, "description": FORMAT_TEXT}}
    props.update({k: {**OPTION_DOCS[k][1], "description": OPTION_DOCS[k][0]} for k in OPTIONS})
    props.update(dict.fromkeys(SECRET_FIELDS, PASSWORD))
    return {"type": "object", "properties": props}


def _post_body() -> dict[str, Any]:
    json_body = _body_schema()
    json_body["properties"]["paths"] = {"type": "array", "items": {"type": "string"},
                                        "description": "Files and folders, relative to the root."}
    json_body["required"] = ["paths"]
    form = _body_schema()
    form["properties"]["path"] = {"type": "array", "items": {"type": "string"},
                                  "description": "A file or folder; repeat the field for more."}
    return {"required": True, "content": {"application/json": {"schema": json_body},
                                          "application/x-www-form-urlencoded": {"schema": form}}}


ARCHIVE_POST: dict[str, Any] = dict(
    DOWNLOAD, status_code=303, summary="Send a selection (one too long for a URL, or with a password)",
    description="Checks the selection (every path is stat'ed) and answers 303 with a GET URL"
                " holding it (`/archive?s=...`, signed when the request was); with a `password`,"
                " a signed URL naming a server-side record of it (`/archive?r=...`).",
    responses={303: {"description": "The archive's GET URL.", "headers": {
        "Location": {"description": "Where the archive downloads.", "schema": {"type": "string"}}}},
               **errors(400, 401, 403, 404, 413, 502, 503)},
    openapi_extra={"requestBody": _post_body(), "parameters": [
        query("grant", "The folder a signed page allows (set by the page's own form).",
              {"type": "string"})]})

FILE: dict[str, Any] = dict(
    DOWNLOAD, summary="Download one file",
    description="With Range, If-Range and conditional requests: a video seeks, a cut download"
                " resumes. HEAD answers the same headers, no body.",
    responses={**downloads(["*/*"], "The file, typed by its extension."),
               **errors(400, 401, 403, 404, 412, 416, 502, 503)},
    openapi_extra={"parameters": conditions()})

LIST: dict[str, Any] = dict(
    response_model=None, summary="List a folder",
    description="Its entries as JSON: folders first, then by name. Without a path, the root.",
    responses={200: {"model": Listing, "description": "The folder's entries."},
               **errors(400, 401, 403, 404, 502, 503)})

HEALTH: dict[str, Any] = dict(
    response_model=None, summary="Say the server is up", description="Always open.",
    responses={200: {"model": Health, "description": "The server answers."}},
    openapi_extra={"security": []})

SECURITY = {
    "token": {"type": "http", "scheme": "bearer",
              "description": "--token: `Authorization: Bearer TOKEN` (or `?token=` once: a"
                             " cookie is set)."},
    "signedLink": {"type": "apiKey", "in": "query", "name": "sig",
                   "description": "--secret: a link made by `zipserve sign`, with `?expires=`."},
}


def drop_validation_errors(schema: dict[str, Any]) -> None:
    """Given a generated description, remove FastAPI's 422 answers: refusals.py answers 400 instead."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)


def install_openapi(app: FastAPI) -> None:
    """Given the app, describe it at its openapi_url: its routes, the error body, who may ask."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=DESCRIPTION,
                                 routes=app.routes, servers=app.servers)
            drop_validation_errors(schema)
            schema.setdefault("components", {})["securitySchemes"] = SECURITY
            schema["security"] = [{}, {"token": []}, {"signedLink": []}]  # {}: an open server
            app.openapi_schema = schema
        return app.openapi_schema
    app.openapi = openapi  # type: ignore[method-assign]
