"""The README's embedding example, run as written under uvicorn: a mounted zipserve, an ArchiveResponse
from the app's own route and a link made in process, each checked with real clients."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, need_tool, run
from zipserve.core.signing import sign_url

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
SECRET = "change-me"  # the README example's


def readme_example() -> str:
    """Return the Python block of the README's "Inside your own FastAPI or Starlette app" section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Inside your own FastAPI or Starlette app", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README's embedding section has no python block"
    return match[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run the README's app.py with uvicorn from the repository (where fixtures/ is); yield its URL."""
    tmp = tmp_path_factory.mktemp("embed")
    (tmp / "app.py").write_text(readme_example())
    port = free_port()
    log = tmp / "uvicorn.log"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache")}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(tmp), "app:app",
                                 "--host", "127.0.0.1", "--port", str(port)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/dl/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the README's app did not start:\n" + log.read_text())
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_mounted_app_serves_folders_under_its_prefix(app_url: str) -> None:
    # The example's app has a secret: its routes take links signed over the path inside the app.
    expires = int(time.time()) + 600
    assert httpx.get(app_url + "/dl/archive/docs.zip", timeout=30).status_code == 401
    link = sign_url(SECRET, "/archive/docs.zip", [("compression", "store")], expires=expires)
    r = httpx.get(app_url + "/dl" + link, timeout=30)
    assert r.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert "docs/readme.txt" in names
    # A signed page's links and form stay under the prefix, signed the same way.
    page = httpx.get(app_url + "/dl" + sign_url(SECRET, "/browse/docs", expires=expires),
                     timeout=30)
    assert page.status_code == 200
    assert 'action="/dl/archive?' in page.text and 'href="/dl/files/docs/readme.txt?' in page.text
    file_href = re.search(r'href="(/dl/files/docs/readme.txt\?[^"]+)"', page.text)
    assert file_href is not None
    got = httpx.get(app_url + file_href[1].replace("&amp;", "&"), timeout=30)
    assert got.status_code == 200 and got.content == (FIXTURES / "docs/readme.txt").read_bytes()


def test_an_archive_response_is_sized_and_answers_ranges(app_url: str) -> None:
    r = httpx.get(app_url + "/selected.zip", timeout=30)
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["etag"].startswith('"zs')
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert z.namelist() == ["Read me first.txt", "Pictures/card.jpg"]
    assert z.read("Read me first.txt") == (FIXTURES / "docs/readme.txt").read_bytes()
    assert z.read("Pictures/card.jpg") == (FIXTURES / "photos/2024/test-card.jpg").read_bytes()
    part = httpx.get(app_url + "/selected.zip", headers={"Range": "bytes=100-999",
                                                         "If-Range": r.headers["etag"]}, timeout=30)
    assert part.status_code == 206 and part.content == r.content[100:1000]
    stale = httpx.get(app_url + "/selected.zip", headers={"Range": "bytes=100-999",
                                                          "If-Range": '"other"'}, timeout=30)
    assert stale.status_code == 200 and stale.content == r.content


def test_a_link_made_in_process_is_signed_and_resumes_with_curl(app_url: str, tmp_path: Path) -> None:
    need_tool("curl")
    link = httpx.get(app_url + "/link", timeout=30).json()["url"]
    assert link.startswith("/dl/manifest/") and "sig=" in link and "etag=" in link
    unsigned = link.split("?", 1)[0]
    assert httpx.get(app_url + unsigned, timeout=30).status_code == 401
    whole = httpx.get(app_url + link, timeout=30)
    assert whole.status_code == 200
    z = zipfile.ZipFile(io.BytesIO(whole.content))
    assert z.namelist() == ["Long.txt", "Rates/€.txt"]
    assert z.read("Rates/€.txt") == (FIXTURES / "docs/€ rates.txt").read_bytes()
    out = tmp_path / "notes.zip"
    out.write_bytes(whole.content[: len(whole.content) // 2])
    run("curl", "-sS", "-f", "-C", "-", "-o", out, app_url + link)
    assert out.read_bytes() == whole.content


def test_an_archive_response_refuses_a_bad_entry_as_json(tmp_path: Path) -> None:
    # In process: the same Response from a route of a Starlette app of our own.
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

    import zipserve

    served = zipserve.asgi(root=FIXTURES, crc_cache=None)

    async def bad(_request: object) -> zipserve.ArchiveResponse:
        return zipserve.ArchiveResponse(entries=[{"source": "../etc/passwd", "name": "p"}],
                                        app=served)

    async def missing(_request: object) -> zipserve.ArchiveResponse:
        return zipserve.ArchiveResponse(entries=[{"source": "docs/none.txt", "name": "n.txt"}],
                                        app=served)

    with TestClient(Starlette(routes=[Route("/bad", bad), Route("/missing", missing)])) as c:
        r = c.get("/bad")
        assert r.status_code == 400 and "'..'" in r.json()["error"]["message"]
        r = c.get("/missing")
        assert r.status_code == 404
        assert [m["name"] for m in r.json()["error"]["missing"]] == ["n.txt"]
