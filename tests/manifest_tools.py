"""What the manifest tests share: asking for a link, reading archives back by the manifest's names.

Plain functions (fixtures live in the test modules): POST a manifest to a
real server, read any format's members in order with the standard library,
and replace a file the way a deploy would (a new inode, a new mtime).
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import zstandard

from tests.helpers import TIMEOUT, Server

# Each format a manifest may ask for, as (format, compression) and the archive's extension.
FORMATS = [("zip", "store"), ("zip", "auto"), ("tar", None), ("tar.gz", None), ("tar.zst", None)]
SIZED = [("zip", "store"), ("tar", None)]  # whose bytes are a function of the files: Range, ETag


@dataclass(frozen=True)
class Member:
    """One archive member as a reader sees it: name ('/' after a folder's), bytes, mtime (seconds)."""

    name: str
    data: bytes
    mtime: int


def post(server: Server | str, manifest: dict[str, Any], *, token: str | None = None,
         **query: str) -> httpx.Response:
    """Given a server, a manifest and POST /manifest's query, return the server's answer."""
    base = server if isinstance(server, str) else server.url
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{base}/manifest", json=manifest, params=query, headers=headers,
                      timeout=TIMEOUT)


def link(server: Server | str, manifest: dict[str, Any], *, token: str | None = None,
         **query: str) -> dict[str, Any]:
    """Given a server and a manifest it accepts, return POST /manifest's JSON (url, size, etag, ...)."""
    r = post(server, manifest, token=token, **query)
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


def fetch(url: str, **headers: str) -> httpx.Response:
    """Given a link, return the answer to GET it (whole body read)."""
    return httpx.get(url, headers=headers, timeout=TIMEOUT)


def manifest_of(entries: list[dict[str, Any]], fmt: str = "zip", compression: str | None = None,
                **fields: Any) -> dict[str, Any]:
    """Given entries and a format, return a manifest (compression only when given)."""
    out: dict[str, Any] = {"format": fmt, "entries": entries, **fields}
    if compression is not None:
        out["compression"] = compression
    return out


def members(fmt: str, data: bytes) -> list[Member]:
    """Given an archive's format and bytes, return its members in the order they lie."""
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            assert z.testzip() is None
            return [Member(i.filename, z.read(i), zip_seconds(i)) for i in z.infolist()]
    if fmt == "tar.zst":
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        fmt = "tar"
    mode = {"tar": "r:", "tar.gz": "r:gz"}[fmt]
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as t:
        for info in t.getmembers():
            f = t.extractfile(info) if info.isfile() else None
            name = info.name + "/" if info.isdir() else info.name
            out.append(Member(name, f.read() if f is not None else b"", int(info.mtime)))
    return out


def zip_seconds(info: zipfile.ZipInfo) -> int:
    """Given a ZIP member, return its DOS time as POSIX seconds, read as UTC."""
    import calendar
    return calendar.timegm((*info.date_time, 0, 0, 0))


def replace(path: Path, data: bytes, mtime: int) -> None:
    """Replace a file with new content (a new inode, as a deploy would), with the given mtime."""
    new = path.with_name(path.name + ".new")
    new.write_bytes(data)
    os.utime(new, (mtime, mtime))
    os.replace(new, path)


def write(path: Path, data: bytes, mtime: int) -> Path:
    """Write a file (its folders made) with the given mtime; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path
