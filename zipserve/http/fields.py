"""Request fields: what GET and POST /archive select, read and checked before any planning.

A selection comes as ?s= (a packed link), as ?path=&format=&name=, as a form or
as JSON; every form ends as the same minimal dict of strings (see
`normalise_fields`), so the link a POST redirects to plans the same archive.
A password comes only in a form or JSON: a URL that carries one (a query or a
packed link) is refused, since URLs end up in logs, histories and Referer headers.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from zipserve.core import links
from zipserve.errors import BadRequest, TooLarge

FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
OPTIONS = ("name", "compression", "level", "names", "checksums", "encryption")
SECRET_FIELDS = ("password",)
IN_URL = ("a password never goes in a URL: POST it to /archive (a form field or JSON "
          '"password"), which answers with a link to a server-side record of it')


def selection_fields(request: Request) -> dict[str, Any]:
    """Given GET /archive, return its fields from ?s= or from ?path=&format=&name=; raise BadRequest."""
    q = request.query_params
    refuse_password(q)
    if "s" in q:
        fields = normalise_fields(links.unpack(q["s"]))
        refuse_password(fields)
        return fields
    return normalise_fields({"paths": q.getlist("path"), "format": q.get("format", "zip"),
                             **{key: q.get(key) for key in OPTIONS}})


def refuse_password(fields: Any) -> None:
    """Given a URL's query (or what a link packs), raise BadRequest if it carries a password."""
    if any(key in fields for key in SECRET_FIELDS):
        raise BadRequest(IN_URL)


async def posted_fields(request: Request, max_body: int) -> dict[str, Any]:
    """Given POST /archive (a form or JSON), return its fields; raise BadRequest or TooLarge."""
    body = await read_body(request, max_body)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return json_fields(body)
    if ctype in FORMS:
        return await form_fields(request, body)
    raise BadRequest("POST /archive takes a form or application/json")


async def read_body(request: Request, max_body: int) -> bytes:
    """Given a request, return its body; raise TooLarge as soon as it is over `max_body` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise TooLarge(f"request body is larger than {max_body} bytes")
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > max_body:
            raise TooLarge(f"request body is larger than {max_body} bytes")
    return body


def json_fields(body: bytes) -> dict[str, Any]:
    """Given a JSON body, return its fields; raise BadRequest unless it is one JSON object."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest('JSON body must be an object like {"paths": [...]}')
    return normalise_fields(data)


async def form_fields(request: Request, body: bytes) -> dict[str, Any]:
    """Given a form's request and its body (already read), return its fields."""
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}
    form = await Request(request.scope, replay).form()
    return normalise_fields({"paths": [v for v in form.getlist("path") if isinstance(v, str)],
                             "format": form.get("format") or "zip",
                             **{key: form.get(key) for key in (*OPTIONS, *SECRET_FIELDS)}})


def normalise_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Given raw selection fields, return them checked and minimal; raise BadRequest."""
    paths = data.get("paths", data.get("path"))
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise BadRequest("paths must be a list of strings")
    fmt = data.get("format") or "zip"
    if not isinstance(fmt, str):
        raise BadRequest("format must be a string")
    out: dict[str, Any] = {"paths": paths, "format": fmt}
    for key in (*OPTIONS, *SECRET_FIELDS):
        value = option(data.get(key))
        if value is not None:
            out[key] = value
    for value in [fmt, *(v for k, v in out.items() if k != "paths")]:
        check_text(value)
    return out


def option(value: Any) -> str | None:
    """Given an option's raw value, return it as a string, None when absent or empty; raise BadRequest."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | int):
        raise BadRequest("options must be strings")
    return str(value)


def check_text(value: str) -> None:
    """Given a field, raise BadRequest unless it is valid UTF-8 text (JSON may carry lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("fields must be valid UTF-8 text") from None
