"""--token and --secret over the app: who gets in, and what they are told."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from zipserve.cli import main
from zipserve.core.signing import sign_url
from zipserve.http.app import create_app
from zipserve.settings import Settings

TOKEN = "tok-123"
SECRET = "sec-456"


@pytest.fixture
def app_client(tree: Path, tmp_path: Path):
    def make(**kw: str) -> TestClient:
        return TestClient(create_app(Settings(root=tree, crc_cache=None, **kw)),
                          follow_redirects=False)
    return make


def local(url: str) -> str:
    split = urlsplit(url)
    return split.path + "?" + split.query


def test_open_server_needs_nothing(app_client):
    assert app_client().get("/api/list").status_code == 200


@pytest.mark.parametrize("path", ["/", "/api/list", "/files/top.txt", "/archive/docs.zip",
                                  "/metrics", "/browse/docs"])
def test_token_server_refuses_without_token(app_client, path):
    r = app_client(token=TOKEN).get(path)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_healthz_stays_open(app_client):
    assert app_client(token=TOKEN, secret=SECRET).get("/healthz").status_code == 200


def test_bearer_token_lets_in(app_client):
    c = app_client(token=TOKEN)
    assert c.get("/files/top.txt", headers={"Authorization": f"Bearer {TOKEN}"}).text == \
        "top level\n"


def test_wrong_token_is_refused(app_client):
    r = app_client(token=TOKEN).get("/files/top.txt", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_token_in_query_sets_cookie_and_redirects_without_it(app_client):
    c = app_client(token=TOKEN)
    r = c.get(f"/api/list/docs?x=1&token={TOKEN}")
    assert r.status_code == 303
    assert r.headers["location"] == "/api/list/docs?x=1"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert c.get("/api/list/docs").status_code == 200  # the cookie carries on


def test_wrong_token_in_query_is_refused(app_client):
    assert app_client(token=TOKEN).get("/api/list?token=nope").status_code == 401


def test_signed_archive_link_downloads_with_get_and_head(app_client):
    c = app_client(secret=SECRET)
    url = sign_url(SECRET, "/archive/docs.zip", [("compression", "store")],
                   expires=int(time.time()) + 600)
    assert c.head(local(url)).status_code == 200
    names = zipfile.ZipFile(io.BytesIO(c.get(local(url)).content)).namelist()
    assert "docs/readme.txt" in names


def test_signed_link_is_refused_once_changed(app_client):
    c = app_client(secret=SECRET)
    url = sign_url(SECRET, "/archive/docs.zip", [], expires=int(time.time()) + 600)
    assert c.get(local(url).replace("docs.zip", "photos.zip")).status_code == 401


def test_expired_link_says_expired(app_client):
    c = app_client(secret=SECRET)
    url = sign_url(SECRET, "/files/top.txt", [], expires=int(time.time()) - 5)
    r = c.get(local(url))
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]


def test_post_needs_the_token_even_with_a_secret(app_client):
    c = app_client(secret=SECRET, token=TOKEN)
    assert c.post("/archive", data={"path": "docs"}).status_code == 401
    ok = c.post("/archive", data={"path": "docs"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 303


def test_metrics_needs_the_token_not_a_signature(app_client):
    c = app_client(secret=SECRET, token=TOKEN)
    url = sign_url(SECRET, "/metrics", [], expires=int(time.time()) + 600)
    assert c.get(local(url)).status_code == 401


def test_post_under_a_signed_grant_gets_a_signed_download(app_client):
    c = app_client(secret=SECRET)
    action = sign_url(SECRET, "/archive", [("grant", "docs")], method="POST",
                      expires=int(time.time()) + 600)
    r = c.post(local(action), data={"path": ["docs/readme.txt", "docs/notes"],
                                    "compression": "store"})
    assert r.status_code == 303
    download = c.get(r.headers["location"])
    assert download.status_code == 200
    assert sorted(zipfile.ZipFile(io.BytesIO(download.content)).namelist())[0] == "notes/"


def test_post_under_a_grant_cannot_leave_its_folder(app_client):
    c = app_client(secret=SECRET)
    action = sign_url(SECRET, "/archive", [("grant", "docs")], method="POST",
                      expires=int(time.time()) + 600)
    assert c.post(local(action), data={"path": "photos"}).status_code == 403


def test_cli_sign_prints_a_working_pinned_link(app_client, tree):
    result = CliRunner().invoke(main, ["sign", "docs", "--secret", SECRET, "--root", str(tree),
                                       "--compression", "store", "--expires", "10m"])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert "etag=" in url
    r = app_client(secret=SECRET).get(local(url))
    assert r.status_code == 200
    assert r.headers["etag"].strip('"') in url


def test_cli_signed_pin_fails_once_files_change(app_client, tree):
    url = CliRunner().invoke(main, ["sign", "docs", "--secret", SECRET, "--root", str(tree),
                                    "--compression", "store"]).output.strip()
    (tree / "docs" / "readme.txt").write_text("changed")
    assert app_client(secret=SECRET).get(local(url)).status_code == 412


def test_tokens_never_reach_the_access_log(tree, server_factory):
    import httpx

    srv = server_factory(tree, "--token", TOKEN)
    httpx.get(f"{srv.url}/api/list?token={TOKEN}", follow_redirects=False)
    httpx.get(f"{srv.url}/api/list", headers={"Authorization": f"Bearer {TOKEN}"})
    deadline = time.monotonic() + 5
    while "/api/list" not in srv.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "/api/list" in srv.log_text()
    assert TOKEN not in srv.log_text()
