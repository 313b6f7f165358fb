"""What a server refuses of manifests and their links, on real servers over the local root and nginx:
hostile names (400 naming the entry), a size that disagrees with the source, a wrong crc32 for a
remote file (the stored ZIP is cut, never whole-looking), POST /manifest without the token, and
links that are unsigned, expired or altered; a link signed by one server works on another.
"""

from __future__ import annotations

import random
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from tests.helpers import CLI_ENV, TIMEOUT, Serve, Server
from tests.manifest_tools import fetch, link, manifest_of, members, post, write
from tests.origin import Origin, start_origin, stop_origin
from zipserve.core import signing
from zipserve.sources.http.objects import PART, WHOLE_READ

MTIME = 1_700_000_000
rng = random.Random(1311)
BIG = rng.randbytes(WHOLE_READ + 800_000)  # past the whole-read size: not held for its CRC
SMALL = rng.randbytes(40_000)  # fetched whole, ahead
SECRET, TOKEN = "manifest-secret", "manifest-token"
GOOD = {"source": "a.txt", "name": "good.txt"}


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    served = start_origin(tmp_path_factory.mktemp("origin"), {})
    write(served.www / "ok/big.bin", BIG, MTIME)
    write(served.www / "ok/small.bin", SMALL, MTIME)
    yield served
    stop_origin(served)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rroot")
    write(folder / "a.txt", b"local text\n" * 100, MTIME)
    write(folder / "b.bin", SMALL, MTIME)
    return folder


@pytest.fixture(scope="module")
def server(serve: Serve, root: Path, origin: Origin) -> Server:
    return serve(root, "--allow-url", f"{origin.base}/ok/")


# --- names and sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize(("names", "bad"), [
    (["../x.txt"], 1),
    (["a/../../x.txt"], 1),
    (["./x.txt"], 1),
    (["/etc/passwd"], 1),
    (["C:/Windows/x.txt"], 1),
    (["C:x.txt"], 1),
    (["a\x00b.txt"], 1),
    (["a\\b.txt"], 1),
    (["..\\..\\x.txt"], 1),
    (["a//b.txt"], 1),
    (["", ], 1),
    (["dup.txt", "dup.txt"], 2),
    (["caf\u00e9.txt", "cafe\u0301.txt"], 2),  # one name once NFC-normalised
    (["x/y.txt", "x"], 2),  # a file where a folder is
])
def test_hostile_names_are_refused_naming_the_entry(server: Server, names: list[str],
                                                    bad: int) -> None:
    entries = [GOOD, *({"source": "a.txt", "name": n} for n in names)]
    r = post(server, manifest_of(entries, "zip", "store"))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "bad_request"
    assert f"entries[{bad}]" in error["message"] + error.get("path", "")


def test_a_folder_entry_with_a_source_is_refused(server: Server) -> None:
    r = post(server, manifest_of([GOOD, {"source": "a.txt", "name": "folder/"}]))
    assert r.status_code == 400 and "entries[1]" in r.text


@pytest.mark.parametrize("source", ["b.bin", "web"])
def test_a_size_that_disagrees_with_the_source_is_refused(server: Server, origin: Origin,
                                                          source: str) -> None:
    where = f"{origin.base}/ok/small.bin" if source == "web" else source
    entries = [GOOD, {"source": where, "name": "x.bin", "size": len(SMALL) + 1}]
    r = post(server, manifest_of(entries, "zip", "store"))
    assert r.status_code == 400
    assert "entries[1] 'x.bin'" in r.json()["error"]["message"]
    assert str(len(SMALL)) in r.json()["error"]["message"]
    entries[1]["size"] = len(SMALL)
    assert post(server, manifest_of(entries, "zip", "store")).status_code == 201


@pytest.mark.parametrize("name", ["big.bin", "small.bin"])
def test_a_wrong_crc32_for_a_remote_file_cuts_the_stored_zip(server: Server, origin: Origin,
                                                             name: str, tmp_path: Path) -> None:
    entries = [GOOD, {"source": f"{origin.base}/ok/{name}", "name": "claimed.bin",
                      "crc32": "00000000"}, {"source": "a.txt", "name": "after.txt"}]
    answer = link(server, manifest_of(entries, "zip", "store"))
    out = tmp_path / "cut.zip"
    done = subprocess.run(["curl", "-sS", "-o", str(out), answer["url"]], capture_output=True,
                          timeout=TIMEOUT, env=CLI_ENV, check=False)
    assert done.returncode in (18, 56), done.stderr  # partial file / receive failure
    assert out.stat().st_size < answer["size"]


@pytest.mark.parametrize("name", ["big.bin", "small.bin"])
def test_a_wrong_crc32_claim_never_reaches_another_manifests_archive(
        server: Server, origin: Origin, name: str) -> None:
    source = f"{origin.base}/ok/{name}"
    data = BIG if name == "big.bin" else SMALL
    right = f"{zlib.crc32(data):08x}"
    wrong = link(server, manifest_of([{"source": source, "name": "x", "crc32": "00000000"}],
                                     "zip", "store"))
    # Only the first header asked for: the claimed CRC is sent in it, no byte of data checked.
    fetch(wrong["url"], Range="bytes=0-99")
    plain = fetch(link(server, manifest_of([{"source": source, "name": "x"}], "zip", "store"))["url"])
    claimed = fetch(link(server, manifest_of([{"source": source, "name": "x", "crc32": right}],
                                             "zip", "store"))["url"])
    assert plain.status_code == claimed.status_code == 200
    assert plain.content == claimed.content
    assert members("zip", plain.content)[0].data == data


def test_a_wrong_crc32_for_a_local_file_is_ignored_its_bytes_decide(server: Server) -> None:
    entries = [{"source": "b.bin", "name": "b.bin", "crc32": "00000000"}]
    answer = link(server, manifest_of(entries, "zip", "store"))
    got = members("zip", fetch(answer["url"]).content)  # zipfile checks each CRC
    assert got[0].data == SMALL


# --- the token, the secret, and links -----------------------------------------------------------


@pytest.fixture(scope="module")
def pair(serve: Serve, root: Path, origin: Origin) -> tuple[Server, Server]:
    """Two servers sharing the secret: A also wants the token; B knows only the secret."""
    allow = ("--allow-url", f"{origin.base}/ok/")
    return (serve(root, "--token", TOKEN, "--secret", SECRET, *allow),
            serve(root, "--secret", SECRET, *allow))


def signed_entries(origin: Origin) -> list[dict[str, Any]]:
    return [{"source": f"{origin.base}/ok/small.bin", "name": "Remote/small.bin"},
            {"source": "a.txt", "name": "Local/a.txt"}]


def test_post_manifest_needs_the_token(pair: tuple[Server, Server], origin: Origin) -> None:
    a, _ = pair
    manifest = manifest_of(signed_entries(origin), "zip", "store")
    assert post(a, manifest).status_code == 401
    assert post(a, manifest, token="not-" + TOKEN).status_code == 401
    assert post(a, manifest, token=TOKEN).status_code == 201


def test_a_link_signed_by_one_server_works_on_another(pair: tuple[Server, Server],
                                                      origin: Origin) -> None:
    a, b = pair
    answer = link(a, manifest_of(signed_entries(origin), "tar"), token=TOKEN)
    assert "sig=" in answer["url"] and answer["expires"] > time.time()
    on_a = fetch(answer["url"])
    on_b = fetch(b.url + answer["path"])
    assert on_a.status_code == on_b.status_code == 200
    assert on_a.content == on_b.content and on_b.headers["etag"] == answer["etag"]
    assert [m.data for m in members("tar", on_b.content)] == [SMALL, b"local text\n" * 100]


def altered(url: str) -> list[str]:
    """Given a signed link, return variants of it a server must refuse."""
    parts = urlsplit(url)
    path, query = unquote(parts.path), parse_qsl(parts.query)
    token = path.split("/")[2]
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    base = f"{parts.scheme}://{parts.netloc}"
    plain = [(k, v) for k, v in query if k not in ("expires", "sig")]
    expires = int(dict(query)["expires"])
    return [
        url.replace(token, flipped),  # another manifest
        url.replace("etag=", "etag=x"),  # another pin
        url.replace(f"expires={expires}", f"expires={expires + 1}"),  # a longer life
        base + path + "?" + "&".join(f"{k}={v}" for k, v in plain),  # unsigned
        signing.sign_url(SECRET, path, plain, expires=int(time.time()) - 5, base_url=base),  # expired
        signing.sign_url("another-secret", path, plain, expires=expires, base_url=base),
    ]


def test_expired_unsigned_or_altered_links_are_refused(pair: tuple[Server, Server],
                                                       origin: Origin) -> None:
    a, b = pair
    answer = link(a, manifest_of(signed_entries(origin), "zip", "store"), token=TOKEN, expires="60")
    assert answer["expires"] <= time.time() + 61
    for server in (a, b):
        url = server.url + answer["path"]
        assert fetch(url).status_code == 200
        for bad in altered(url):
            assert fetch(bad).status_code == 401, bad


@pytest.mark.parametrize("claimed", [True, False])
def test_a_right_crc32_claim_spares_reading_a_big_object_for_its_header(
        server_factory: Serve, root: Path, origin: Origin, claimed: bool) -> None:
    fresh = server_factory(root, "--allow-url", f"{origin.base}/ok/")  # its CRC cache is cold
    entry: dict[str, Any] = {"source": f"{origin.base}/ok/big.bin", "name": "big.bin"}
    if claimed:
        entry["crc32"] = f"{zlib.crc32(BIG):08x}"
    answer = link(fresh, manifest_of([entry], "zip", "store"))
    before = len(origin.settled())
    assert members("zip", fetch(answer["url"]).content)[0].data == BIG
    gets = [line for line in origin.settled()[before:] if " GET /ok/big.bin " in line]
    parts = -(-len(BIG) // PART)  # its data: a GET per part
    assert len(gets) == parts + (0 if claimed else 1), gets  # unclaimed: one more, for its CRC
