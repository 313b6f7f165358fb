"""Manifest links resumed across two server processes, and objects replaced mid-stream.

Two servers share the secret and the record store: a download cut against
server A is finished by curl -C - or wget -c from server B, byte for byte,
for a link carrying its manifest and for one naming a stored manifest. An
origin's objects replaced while a slow client reads cut the connection: the
client never holds a whole-looking archive of two versions.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import CLI_ENV, TIMEOUT, Serve, Server, run, wait_until
from tests.manifest_tools import SIZED, link, manifest_of, members, replace, write
from tests.origin import Origin, start_origin, stop_origin

MiB = 1 << 20
MTIME = 1_700_000_000
SECRET, TOKEN = "resume-secret", "resume-token"
rng = random.Random(1317)
FILES = {f"ok/f{i:02d}.bin": rng.randbytes(rng.choice([1000, 200_000, 900_000, 2 * MiB]))
         for i in range(12)}


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Any:
    served = start_origin(tmp_path_factory.mktemp("origin"), {})
    for name, data in FILES.items():
        write(served.www / name, data, MTIME)
    yield served
    stop_origin(served)


@pytest.fixture(scope="module")
def pair(serve: Serve, origin: Origin, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Server, Server]:
    """Two servers on one root sharing the secret and the record store."""
    tmp = tmp_path_factory.mktemp("pair")
    write(tmp / "root/local.bin", rng.randbytes(3 * MiB), MTIME)
    write(tmp / "root/docs/note.txt", b"a local note\n" * 10, MTIME)
    args = ("--secret", SECRET, "--token", TOKEN, "--allow-url", f"{origin.base}/ok/",
            "--records", str(tmp / "records.sqlite3"))
    return serve(tmp / "root", *args), serve(tmp / "root", *args)


def entries(origin: Origin, stored: bool) -> list[dict[str, Any]]:
    """Return a manifest's entries over both sources; `stored`: names long enough to need the store."""
    def pad(i: int) -> str:  # names deflate cannot shrink
        return "-" + random.Random(i).randbytes(120).hex() if stored else ""
    out: list[dict[str, Any]] = [{"source": "local.bin", "name": f"Local/big{pad(98)}.bin"},
                                 {"source": "docs/note.txt", "name": f"Local/note{pad(99)}.txt"}]
    out += [{"source": f"{origin.base}/{name}", "name": f"Web/{i:02d}{pad(i)}.bin"}
            for i, name in enumerate(FILES)]
    return out


def cut_against(url: str, out: Path, keep: int) -> None:
    """Download the first `keep` bytes of a link into `out`, then hang up (as a dropped connection)."""
    with httpx.stream("GET", url, timeout=TIMEOUT) as r, out.open("wb") as f:
        assert r.status_code == 200
        for chunk in r.iter_raw(64 * 1024):
            f.write(chunk[:keep - f.tell()])
            if f.tell() >= keep:
                break


def resume_with(tool: str, out: Path, url: str) -> None:
    if tool == "curl":
        run("curl", "-sS", "--fail", "-C", "-", "-o", str(out), url)
    else:
        run("wget", "-q", "-c", "-O", str(out), url)


@pytest.mark.parametrize("tool", ["curl", "wget"])
@pytest.mark.parametrize("stored", [False, True], ids=["inline", "stored"])
@pytest.mark.parametrize(("fmt", "compression"), SIZED)
def test_a_download_cut_on_one_server_resumes_on_another_byte_for_byte(
        pair: tuple[Server, Server], origin: Origin, tmp_path: Path, tool: str, stored: bool,
        fmt: str, compression: str | None) -> None:
    a, b = pair
    answer = link(a, manifest_of(entries(origin, stored), fmt, compression), token=TOKEN)
    assert ("/manifest/sha256/" in answer["path"]) == stored
    assert "sig=" in answer["url"] and "etag=" in answer["url"]
    whole = httpx.get(answer["url"], timeout=TIMEOUT).content
    assert len(whole) == answer["size"]
    out = tmp_path / f"download.{fmt}"
    cut_against(answer["url"], out, keep=random.Random(tool + fmt).randrange(1, len(whole)))
    assert 0 < out.stat().st_size < len(whole)
    resume_with(tool, out, b.url + answer["path"])
    assert out.read_bytes() == whole
    assert len(members(fmt, whole)) == len(entries(origin, stored))


def test_a_stored_manifest_is_found_by_a_server_that_did_not_store_it(
        pair: tuple[Server, Server], origin: Origin) -> None:
    a, b = pair
    answer = link(b, manifest_of(entries(origin, True), "tar"), token=TOKEN)
    assert "/manifest/sha256/" in answer["path"]
    r = httpx.get(a.url + answer["path"], timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["etag"] == answer["etag"]


# --- an origin object replaced mid-stream -------------------------------------------------------

PARTS = 48  # 1 MiB objects: each is fetched ahead whole, in a request of its own
LATE = range(36, PARTS)  # replaced once the client has its first MiB: past any read-ahead then


@pytest.fixture
def slow_site(server_factory: Serve, tmp_path: Path) -> Any:
    (tmp_path / "o").mkdir()
    served = start_origin(tmp_path / "o", {})
    for i in range(PARTS):
        write(served.www / f"ok/p{i:02d}.bin", rng.randbytes(MiB), MTIME)
    (tmp_path / "root").mkdir()
    server = server_factory(tmp_path / "root", "--allow-url", f"{served.base}/ok/")
    yield server, served
    stop_origin(served)


@pytest.mark.parametrize(("fmt", "compression"), [("zip", "store"), ("tar", None),
                                                  ("tar.gz", None)])
def test_objects_replaced_while_a_slow_client_reads_cut_the_connection(
        slow_site: tuple[Server, Origin], tmp_path: Path, fmt: str, compression: str | None) -> None:
    server, served = slow_site
    parts = [{"source": f"{served.base}/ok/p{i:02d}.bin", "name": f"parts/{i:02d}.bin"}
             for i in range(PARTS)]
    answer = link(server, manifest_of(parts, fmt, compression))
    out = tmp_path / f"slow.{fmt}"
    client = subprocess.Popen(["curl", "-sS", "--limit-rate", "4M", "-o", str(out), answer["url"]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CLI_ENV)
    try:
        assert wait_until(lambda: out.exists() and out.stat().st_size >= MiB, TIMEOUT)
        for i in LATE:
            replace(served.www / f"ok/p{i:02d}.bin", rng.randbytes(MiB), MTIME + 60)
        _, err = client.communicate(timeout=TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode in (18, 56), err  # partial file / receive failure
    size = out.stat().st_size
    assert size < PARTS * MiB
    if answer["size"] is not None:
        assert size < answer["size"]
    changed = [line for line in served.settled() if "/ok/p36.bin" in line and " GET " in line]
    assert changed and changed[-1].endswith((" 412", " 200")), changed
