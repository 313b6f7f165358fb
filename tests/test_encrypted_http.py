"""Encrypted ZIPs over HTTP: a password only in a POST, kept in a record behind a signed link.

A real server with --secret and --token: the application POSTs a selection
with its password (bearer token), gets 303 to a signed GET link naming a
record, and anyone with the link downloads the archive, which 7z, bsdtar and
pyzipper decrypt to the tree byte for byte. The stored one is sized: ranges
are slices, `curl -C -` resumes from a cut. No URL and no log line holds the
password, and a GET that carries one is refused.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pyzipper  # type: ignore[import-untyped]

from tests.helpers import CLI_ENV, MTIME, TIMEOUT, Serve, Site, build_tree, need_tool
from zipserve.core import links

PASSWORD = "s3same-\u00e9t\u00e9-ZZ"  # distinctive, so a search of logs and URLs cannot miss it
SECRET = "secret for encrypted links"
TOKEN = "token-for-posting"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def site(serve: Serve, tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = build_tree(tmp_path_factory.mktemp("tree"))
    (root / "big.bin").write_bytes(os.urandom(2_500_000))  # several read chunks and AES blocks
    os.utime(root / "big.bin", (MTIME, MTIME))
    return Site(serve(root, "--secret", SECRET, "--token", TOKEN), root)


@pytest.fixture(scope="module")
def http(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=TIMEOUT) as client:
        yield client


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def post(http: httpx.Client, compression: str, password: str = PASSWORD) -> str:
    """POST the whole tree with a password as JSON; return the 303's link (checked to hold no field)."""
    fields = {"paths": ["."], "format": "zip", "compression": compression, "password": password}
    r = http.post("/archive", headers=AUTH, json=fields)
    assert r.status_code == 303, r.text
    link = r.headers["location"]
    query = parse_qs(urlsplit(link).query)
    assert set(query) <= {"r", "etag", "expires", "sig"} and links.RECORD_KEY.match(query["r"][0])
    assert password not in link and "compression" not in link
    return link


@pytest.fixture(scope="module", params=["store", "deflate"])
def download(request: pytest.FixtureRequest, http: httpx.Client) -> tuple[str, httpx.Response]:
    link = post(http, request.param)
    return link, httpx.get(http.base_url.join(link), timeout=TIMEOUT)  # no token: the link is signed


def test_link_downloads_without_the_token(download: tuple[str, httpx.Response]) -> None:
    link, r = download
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    sized = "etag=" in link
    assert ("content-length" in r.headers) == sized
    if sized:
        assert int(r.headers["content-length"]) == len(r.content)
        assert parse_qs(urlsplit(link).query)["etag"] == [r.headers["etag"]]


def test_7z_extracts_the_tree(download: tuple[str, httpx.Response], site: Site, tmp_path: Path) -> None:
    need_tool("7z")
    path, out = tmp_path / "a.zip", tmp_path / "x"
    path.write_bytes(download[1].content)
    subprocess.run(["7z", "x", "-y", f"-p{PASSWORD}", f"-o{out}", str(path)], check=True,
                   capture_output=True, env=CLI_ENV)
    assert files_of(out) == files_of(site.root)


def test_bsdtar_extracts_the_tree(download: tuple[str, httpx.Response], site: Site,
                                  tmp_path: Path) -> None:
    need_tool("bsdtar")
    path, out = tmp_path / "a.zip", tmp_path / "x"
    path.write_bytes(download[1].content)
    out.mkdir()
    subprocess.run(["bsdtar", "-xf", str(path), "--passphrase", PASSWORD, "-C", str(out)], check=True,
                   capture_output=True, env=CLI_ENV)
    assert files_of(out) == files_of(site.root)


def test_pyzipper_reads_the_tree_and_refuses_a_wrong_password(download: tuple[str, httpx.Response],
                                                              site: Site) -> None:
    with pyzipper.AESZipFile(io.BytesIO(download[1].content)) as zf:
        zf.setpassword(PASSWORD.encode())
        assert {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()} == files_of(site.root)
        zf.setpassword(b"wrong")
        with pytest.raises(RuntimeError, match="[Bb]ad password"):
            zf.read("big.bin")


def test_a_form_post_gives_the_same_link_as_json(http: httpx.Client) -> None:
    r = http.post("/archive", headers=AUTH, data={"path": ".", "format": "zip", "compression": "store",
                                                    "password": PASSWORD})
    assert r.status_code == 303
    assert parse_qs(urlsplit(r.headers["location"]).query)["r"] == \
        parse_qs(urlsplit(post(http, "store")).query)["r"]


def test_random_ranges_of_the_stored_archive_are_slices(http: httpx.Client) -> None:
    link = post(http, "store")
    whole = httpx.get(http.base_url.join(link), timeout=TIMEOUT).content
    rng = random.Random(15)
    for _ in range(25):
        a, b = sorted(rng.sample(range(len(whole)), 2))
        r = httpx.get(http.base_url.join(link), headers={"Range": f"bytes={a}-{b}"}, timeout=TIMEOUT)
        assert r.status_code == 206 and r.content == whole[a: b + 1], (a, b)


def test_if_range_with_the_etag_gives_the_slice(http: httpx.Client) -> None:
    link = post(http, "store")
    head = httpx.head(http.base_url.join(link), timeout=TIMEOUT)
    r = httpx.get(http.base_url.join(link), timeout=TIMEOUT,
                  headers={"Range": "bytes=1000-", "If-Range": head.headers["etag"]})
    size = int(head.headers["content-length"])
    assert r.status_code == 206 and int(r.headers["content-length"]) == size - 1000


def test_curl_resumes_a_cut_download_byte_identical(http: httpx.Client, tmp_path: Path) -> None:
    need_tool("curl")
    url = str(http.base_url.join(post(http, "store")))
    whole = httpx.get(url, timeout=TIMEOUT).content
    out = tmp_path / "cut.zip"
    out.write_bytes(whole[: len(whole) // 3 + 7])  # cut inside an entry's ciphertext
    subprocess.run(["curl", "-sS", "-f", "-C", "-", "-o", str(out), url], check=True, timeout=TIMEOUT)
    assert out.read_bytes() == whole


def test_another_password_gives_another_etag(http: httpx.Client) -> None:
    first, second = post(http, "store"), post(http, "store", "another password")
    etags = {httpx.head(http.base_url.join(link), timeout=TIMEOUT).headers["etag"]
             for link in (first, second)}
    plain = http.head("/archive?path=.&format=zip&compression=store", headers=AUTH).headers["etag"]
    assert len(etags | {plain}) == 3


@pytest.mark.parametrize("url", [
    "/archive?path=.&format=zip&password=" + PASSWORD,
    "/archive/docs.zip?password=" + PASSWORD,
    "/archive?s=" + links.pack({"paths": ["."], "format": "zip", "password": PASSWORD}),
])
def test_a_get_carrying_a_password_is_refused(http: httpx.Client, url: str) -> None:
    r = http.get(url, headers=AUTH)
    assert r.status_code == 400 and "never goes in a URL" in r.json()["error"]["message"]
    assert PASSWORD not in r.text


def test_an_unknown_record_is_not_found(http: httpx.Client) -> None:
    r = http.get("/archive?r=" + "0" * 64, headers=AUTH)
    assert r.status_code == 404


def test_the_password_is_in_no_log_line(http: httpx.Client, site: Site) -> None:
    post(http, "store")
    http.get("/archive?path=docs&format=zip&password=" + PASSWORD, headers=AUTH)  # refused, but logged
    log = site.server.log_text()
    assert "/archive?path=docs&format=zip&password=[redacted]" in log  # the access log saw it
    assert PASSWORD not in log and PASSWORD.encode("utf-8").hex() not in log
    assert "s3same" not in log  # nor any percent-encoded form of it


def test_a_server_without_secret_refuses_passwords(server_factory: Serve, tree: Path) -> None:
    srv = server_factory(tree)
    r = httpx.post(srv.url + "/archive", json={"paths": ["."], "format": "zip", "password": "pw"},
                   timeout=TIMEOUT)
    assert r.status_code == 400 and "--secret" in r.json()["error"]["message"]


def test_the_record_store_holds_no_password(http: httpx.Client, site: Site) -> None:
    post(http, "store")
    kept = b"".join(p.read_bytes() for p in site.server.log.parent.glob("records.sqlite3*"))
    assert kept and PASSWORD.encode("utf-8") not in kept and b"s3same" not in kept
