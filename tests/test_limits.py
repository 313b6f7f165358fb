"""Limits, over the real server: every cap answers before the first body byte.

Each cap of issue 6 is a `serve` flag and a ZIPSERVE_* variable: files and
bytes per archive (413 naming the figure), archives in flight per process (503
with Retry-After, the counter back to zero after disconnects and errors), the
POST body, the number of `path` values, path length, folder depth (a tree 2,000
folders deep, and one whose paths outgrow the kernel's PATH_MAX), JSON nesting,
and Range parts (an "Apache Killer" header never gets more than the file).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import struct
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.helpers import Server, Site, build_tree, metrics, parse_byteranges, wait_until
from zipserve.cli import main

MiB = 1 << 20
MAX_FILES = 5
MAX_BYTES = 150_000  # docs/ (~113 KB) fits; photos/2024/ (250,000 bytes) does not
MAX_PATHS = 3
MAX_BODY = 600_000  # room for the 100,000-deep JSON bodies (up to 500,001 bytes)
MAX_DEPTH = 4
MAX_PATH_BYTES = 64
DEEP = 2000  # folders in the deep trees


# --- helpers ------------------------------------------------------------------------

def error_of(resp: httpx.Response) -> dict[str, str]:
    """Given an error answer, return its {"code", "message", ...} after checking its shape."""
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}
    return body["error"]


def stalled_download(port: int, target: str) -> socket.socket:
    """Start a GET whose client reads the head and then nothing more; return its socket."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        assert data, "connection closed before the head"
        head += data
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    return sock


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def archive_files(fmt: str, data: bytes) -> int:
    """Given a ZIP or tar body, return how many files (not folders) it holds."""
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return sum(not info.is_dir() for info in z.infolist())
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return sum(m.isfile() for m in t.getmembers())


def no_tracebacks(server: Server) -> bool:
    text = server.log_text()
    return "Traceback" not in text and "Exception in ASGI application" not in text


# --- the flags ----------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--max-files", "--max-bytes", "--max-streams", "--max-paths",
                                  "--max-body", "--max-depth", "--max-path-bytes",
                                  "--send-timeout", "--grace"])
def test_every_limit_is_a_serve_flag(flag: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert re.search(rf"^\s+{flag} \w+\s+.*\[default: \d", result.output, re.M), result.output


# --- one server with small limits ------------------------------------------------------

@pytest.fixture(scope="module")
def limited(serve: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> Server:
    root = build_tree(tmp_path_factory.mktemp("limits") / "root")
    (root / "many").mkdir()
    for i in range(MAX_FILES + 1):
        (root / "many" / f"{i}.txt").write_bytes(b"tiny\n")
    (root / "exact").mkdir()  # as many files as the cap allows in one archive
    for i in range(MAX_FILES):
        (root / "exact" / f"{i}.txt").write_bytes(b"tiny\n")
    deep = root / "deep"
    (deep / "1" / "2" / "3" / "4" / "5").mkdir(parents=True)
    (deep / "1" / "2" / "3" / "4" / "5" / "leaf.txt").write_bytes(b"deep\n")
    return serve(root, "--max-files", str(MAX_FILES), "--max-bytes", str(MAX_BYTES),
                 "--max-paths", str(MAX_PATHS), "--max-body", str(MAX_BODY), "--max-depth",
                 str(MAX_DEPTH), "--max-path-bytes", str(MAX_PATH_BYTES))


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_max_files_is_per_archive(limited: Server, fmt: str) -> None:
    # Each archive holds exactly MAX_FILES files, and the three together three times as many:
    # a cap counted per process, per connection or per format would refuse the second.
    with httpx.Client(base_url=limited.url, timeout=30) as client:
        for _ in range(3):
            resp = client.get(f"/archive/exact.{fmt}")
            assert resp.status_code == 200, resp.text
            assert archive_files(fmt, resp.content) == MAX_FILES


def test_selection_within_every_limit_is_served(limited: Server) -> None:
    resp = httpx.get(limited.url + "/archive/docs.zip", timeout=30)
    assert resp.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(resp.content)).namelist()
    assert "docs/notes/long.txt" in names


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz"])
def test_more_files_than_max_files_is_413_naming_the_limit(limited: Server, fmt: str) -> None:
    resp = httpx.get(f"{limited.url}/archive/many.{fmt}", timeout=30)
    assert resp.status_code == 413
    error = error_of(resp)
    assert error["code"] == "too_large"
    assert f"more than {MAX_FILES} files" in error["message"]
    assert "--max-files" in error["message"]


@pytest.mark.parametrize("target", ["/archive/photos/2024.zip", "/archive/photos/2024.tar",
                                    "/archive/photos.tar.zst"])
def test_more_bytes_than_max_bytes_is_413_naming_the_limit(limited: Server, target: str) -> None:
    resp = httpx.get(limited.url + target, timeout=30)
    assert resp.status_code == 413
    error = error_of(resp)
    assert f"larger than {MAX_BYTES} bytes" in error["message"]
    assert "--max-bytes" in error["message"]


def test_max_bytes_is_checked_on_head_too(limited: Server) -> None:
    resp = httpx.head(limited.url + "/archive/photos/2024.tar", timeout=30)
    assert resp.status_code == 413
    assert resp.content == b""


PATH_VALUES = ["top.txt", "docs/readme.txt", "docs/script.sh", "photos/2024/dog.png"]


def test_max_paths_values_are_served(limited: Server) -> None:
    query = "&".join(f"path={p}" for p in PATH_VALUES[:MAX_PATHS])
    resp = httpx.get(f"{limited.url}/archive?{query}&format=tar", timeout=30)
    assert resp.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
        assert len(tar.getnames()) == MAX_PATHS


@pytest.mark.parametrize("how", ["query", "json", "form"])
def test_more_path_values_than_max_paths_is_413(limited: Server, how: str) -> None:
    paths = PATH_VALUES[: MAX_PATHS + 1]
    with httpx.Client(base_url=limited.url, timeout=30) as client:
        if how == "query":
            resp = client.get("/archive", params=[("path", p) for p in paths])
        elif how == "json":
            resp = client.post("/archive", json={"paths": paths, "format": "zip"})
        else:
            resp = client.post("/archive", data={"path": paths, "format": "zip"})
    assert resp.status_code == 413
    error = error_of(resp)
    assert f"more than {MAX_PATHS} paths" in error["message"]
    assert "--max-paths" in error["message"]


def test_body_over_max_body_with_content_length_is_413(limited: Server) -> None:
    body = json.dumps({"paths": ["top.txt"], "name": "x" * MAX_BODY}).encode()
    resp = httpx.post(limited.url + "/archive", content=body,
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 413
    assert str(MAX_BODY) in error_of(resp)["message"]


def test_chunked_body_over_max_body_is_413(limited: Server) -> None:
    """No Content-Length to refuse up front: the cap holds while the body is read."""
    def chunks() -> Iterator[bytes]:
        yield b'{"paths": ["top.txt"], "name": "'
        for _ in range(MAX_BODY // 10_000 + 2):
            yield b"x" * 10_000
        yield b'"}'
    resp = httpx.post(limited.url + "/archive", content=chunks(),
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.request.headers.get("transfer-encoding") == "chunked"
    assert resp.status_code == 413
    assert str(MAX_BODY) in error_of(resp)["message"]


def test_body_at_max_body_is_read(limited: Server) -> None:
    head = b'{"paths": ["top.txt"], "format": "zip", "name": "'
    body = head + b"n" * (MAX_BODY - len(head) - 2) + b'"}'
    assert len(body) == MAX_BODY
    resp = httpx.post(limited.url + "/archive", content=body, timeout=30,
                      headers={"Content-Type": "application/json"}, follow_redirects=False)
    assert resp.status_code == 303


LONG_PATH = "docs/" + "n" * (MAX_PATH_BYTES - 4)  # MAX_PATH_BYTES + 1 bytes


@pytest.mark.parametrize("how", ["files", "archive", "query", "json"])
def test_path_longer_than_max_path_bytes_is_refused(limited: Server, how: str) -> None:
    assert len(LONG_PATH.encode()) == MAX_PATH_BYTES + 1
    with httpx.Client(base_url=limited.url, timeout=30) as client:
        if how == "files":
            resp = client.get("/files/" + LONG_PATH)
        elif how == "archive":
            resp = client.get(f"/archive/{LONG_PATH}.zip")
        elif how == "query":
            resp = client.get("/archive", params={"path": LONG_PATH})
        else:
            resp = client.post("/archive", json={"paths": [LONG_PATH]})
    assert resp.status_code == 400
    assert f"longer than {MAX_PATH_BYTES} bytes" in error_of(resp)["message"]


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz"])
def test_folders_deeper_than_max_depth_are_413(limited: Server, fmt: str) -> None:
    resp = httpx.get(f"{limited.url}/archive/deep.{fmt}", timeout=30)
    assert resp.status_code == 413
    error = error_of(resp)
    assert f"deeper than {MAX_DEPTH} levels" in error["message"]
    assert "--max-depth" in error["message"]


def test_folders_at_max_depth_are_served(limited: Server) -> None:
    # The selected folder is level 1: 2/3/4/5 are four levels.
    resp = httpx.get(limited.url + "/archive/deep/1/2.tar", timeout=30)
    assert resp.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
        assert "2/3/4/5/leaf.txt" in tar.getnames()


NESTING = 100_000


@pytest.mark.parametrize("shape", ["array", "object", "in-paths"])
def test_deeply_nested_json_is_400(limited: Server, shape: str) -> None:
    if shape == "array":
        body = "[" * NESTING + "]" * NESTING
    elif shape == "object":
        body = '{"":' * NESTING + "1" + "}" * NESTING
    else:
        body = '{"paths": ' + "[" * NESTING + "]" * NESTING + "}"
    assert len(body) <= MAX_BODY
    resp = httpx.post(limited.url + "/archive", content=body.encode(), timeout=30,
                      headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "bad_request"
    assert httpx.get(limited.url + "/healthz", timeout=10).status_code == 200
    assert no_tracebacks(limited)


# --- Range parts (Apache Killer, CVE-2011-3192) ----------------------------------------

KILLER = "bytes=0-," + ",".join(f"5-{i}" for i in range(1300))
RANGE_TARGETS = ["/files/photos/2024/cat.jpg", "/archive/docs.zip?compression=store"]


@pytest.mark.parametrize("target", RANGE_TARGETS)
@pytest.mark.parametrize("header", [
    pytest.param(KILLER, id="1301-parts"),  # over the 100-part cap: Range is ignored
    pytest.param("bytes=" + ",".join(["0-"] * 100), id="100-whole"),  # 100 times the bytes
    # 100 overlapping spans of 5,001 bytes: more than the whole, which is sent instead
    pytest.param("bytes=" + ",".join(f"{i}-{i + 5000}" for i in range(0, 100 * 100, 100)),
                 id="100-overlapping"),
    pytest.param("bytes=" + ",".join(f"{i}-" for i in range(101)), id="101-parts"),  # over the cap
])
def test_hostile_range_header_gets_the_representation_once(limited: Server, target: str,
                                                           header: str) -> None:
    with httpx.Client(base_url=limited.url, timeout=30) as client:
        whole = client.get(target).content
        resp = client.get(target, headers={"Range": header})
    assert resp.status_code == 200
    assert resp.content == whole


@pytest.mark.parametrize("target", RANGE_TARGETS)
def test_100_disjoint_ranges_are_100_parts(limited: Server, target: str) -> None:
    header = "bytes=" + ",".join(f"{i * 1000}-{i * 1000 + 9}" for i in range(100))
    with httpx.Client(base_url=limited.url, timeout=30) as client:
        whole = client.get(target).content
        resp = client.get(target, headers={"Range": header})
    assert resp.status_code == 206
    parts = [body for _, body in parse_byteranges(resp)]
    assert parts == [whole[i * 1000: i * 1000 + 10] for i in range(100)]


# --- ZIPSERVE_* variables ----------------------------------------------------------------

@pytest.fixture(scope="module")
def from_env(serve: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> Server:
    root = build_tree(tmp_path_factory.mktemp("env") / "root")
    return serve(root, env={"ZIPSERVE_MAX_FILES": "2", "ZIPSERVE_MAX_PATHS": "1",
                            "ZIPSERVE_MAX_PATH_BYTES": "10", "ZIPSERVE_MAX_BODY": "100"})


@pytest.mark.parametrize("variable, request_args, status, figure", [
    ("ZIPSERVE_MAX_FILES", ("GET", "/archive/docs.zip", None), 413, "more than 2 files"),
    ("ZIPSERVE_MAX_PATHS", ("GET", "/archive?path=top.txt&path=docs", None), 413,
     "more than 1 paths"),
    ("ZIPSERVE_MAX_PATH_BYTES", ("GET", "/files/docs/readme.txt", None), 400,
     "longer than 10 bytes"),
    ("ZIPSERVE_MAX_BODY", ("POST", "/archive", {"paths": ["top.txt"], "name": "n" * 100}), 413,
     "larger than 100 bytes"),
])
def test_limit_set_by_environment_variable(from_env: Server, variable: str,
                                           request_args: tuple[str, str, object], status: int,
                                           figure: str) -> None:
    method, target, body = request_args
    resp = httpx.request(method, from_env.url + target, json=body, timeout=30)
    assert resp.status_code == status, variable
    assert figure in error_of(resp)["message"]


def test_pack_reads_the_same_variables(tree: Path) -> None:
    result = CliRunner().invoke(main, ["pack", str(tree), "docs", "--no-crc-cache", "-o",
                                       os.devnull], env={"ZIPSERVE_MAX_FILES": "2"})
    assert result.exit_code != 0
    assert "more than 2 files" in result.output


def test_environment_limits_leave_small_requests_alone(from_env: Server) -> None:
    assert httpx.get(from_env.url + "/archive/top.txt.zip", timeout=30).status_code == 200


# --- --max-streams ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def busy(serve: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("streams") / "root"
    (root / "big").mkdir(parents=True)
    # Far more than socket buffers hold, so a client that stops reading keeps its stream open.
    (root / "big" / "a.bin").write_bytes(os.urandom(24 * MiB))
    (root / "big" / "b.bin").write_bytes(os.urandom(1 * MiB))
    (root / "small.txt").write_bytes(b"small\n")
    return Site(serve(root, "--max-streams", "2"), root)


def test_archives_past_max_streams_get_503_with_retry_after(busy: Site) -> None:
    url = busy.server.url
    held = [stalled_download(busy.server.port, t) for t in ("/archive/big.tar",
                                                           "/archive/big.zip")]
    try:
        assert metrics(url)["zipserve_streams_in_flight"] == 2
        resp = httpx.get(url + "/archive/small.txt.zip", timeout=30)
        assert resp.status_code == 503
        assert resp.headers["retry-after"].isdigit()
        error = error_of(resp)
        assert error["code"] == "busy"
        assert "more than 2 archives" in error["message"]
    finally:
        for sock in held:
            reset(sock)
    assert wait_until(lambda: metrics(url)["zipserve_streams_in_flight"] == 0)


def test_head_and_single_files_are_not_counted_as_streams(busy: Site) -> None:
    url = busy.server.url
    held = [stalled_download(busy.server.port, "/archive/big.tar") for _ in range(2)]
    try:
        assert httpx.head(url + "/archive/small.txt.tar", timeout=30).status_code == 200
        assert httpx.get(url + "/files/small.txt", timeout=30).content == b"small\n"
    finally:
        for sock in held:
            reset(sock)
    assert wait_until(lambda: metrics(url)["zipserve_streams_in_flight"] == 0)


def test_stream_counter_returns_to_zero_after_disconnects(busy: Site) -> None:
    url = busy.server.url
    for round_ in range(5):
        held = [stalled_download(busy.server.port, t) for t in ("/archive/big.tar.gz",
                                                               "/archive/big.zip")]
        for n, sock in enumerate(held):
            reset(sock) if (round_ + n) % 2 else sock.close()
        assert wait_until(lambda: metrics(url)["zipserve_streams_in_flight"] == 0)
    # Both slots are free again: two whole archives at once.
    with httpx.Client(timeout=60) as a, httpx.Client(timeout=60) as b, \
            a.stream("GET", url + "/archive/big.tar") as ra, \
            b.stream("GET", url + "/archive/big.zip") as rb:
        assert (ra.status_code, rb.status_code) == (200, 200)
        assert sum(len(c) for c in ra.iter_raw()) > 25 * MiB
        assert sum(len(c) for c in rb.iter_raw()) > 25 * MiB
    assert metrics(url)["zipserve_streams_in_flight"] == 0


def test_stream_counter_returns_to_zero_after_a_failed_stream(busy: Site) -> None:
    url = busy.server.url
    victim = busy.root / "big" / "b.bin"
    original = victim.read_bytes()
    failed = metrics(url)["zipserve_archives_total:failed"]
    sock = stalled_download(busy.server.port, "/archive/big.tar")
    try:
        os.truncate(victim, 1000)  # b.bin comes after 24 MiB of a.bin: the stream breaks
        sock.settimeout(30)
        while sock.recv(1 << 20):
            pass  # the server cuts the transfer
    finally:
        sock.close()
        victim.write_bytes(original)
    assert wait_until(lambda: metrics(url)["zipserve_archives_total:failed"] == failed + 1)
    assert metrics(url)["zipserve_streams_in_flight"] == 0


@pytest.mark.parametrize(("extra", "status"), [
    ({"params": {"etag": "not-current"}}, 412),  # a pinned snapshot that is gone
    ({"headers": {"Range": "bytes=999999999-"}}, 416),  # past the end
    ({"headers": {"If-None-Match": "*"}}, 304),
])
def test_answers_without_a_body_take_no_stream_slot(busy: Site, extra: dict[str, dict[str, str]],
                                                    status: int) -> None:
    url = busy.server.url + "/archive/big.zip?compression=store"
    for _ in range(5):  # more than --max-streams: a leak would show as a 503
        assert httpx.get(url, timeout=30, **extra).status_code == status  # type: ignore[arg-type]
    assert metrics(busy.server.url)["zipserve_streams_in_flight"] == 0
    resp = httpx.get(busy.server.url + "/archive/small.txt.zip", timeout=30)
    assert resp.status_code == 200


# --- trees 2,000 folders deep ----------------------------------------------------------

def make_chain(base: Path, name: str, depth: int, leaf: bytes) -> None:
    """Given a folder, nest `depth` folders called `name` in it and put leaf.txt at the bottom.

    Relative to an open folder each step: the full path soon passes PATH_MAX.
    """
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        out = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, leaf)
        os.close(out)
    finally:
        os.close(fd)


def remove_deep(path: Path) -> None:
    """Given a folder too deep for shutil.rmtree (paths past PATH_MAX), remove it bottom-up."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    names: list[str] = []
    while True:
        sub = None
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                sub = entry.name
            else:
                os.unlink(entry.name, dir_fd=fd)
        if sub is not None:
            names.append(sub)
            child = os.open(sub, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        elif names:
            child = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.rmdir(names.pop(), dir_fd=child)
        else:
            os.close(fd)
            break
        os.close(fd)
        fd = child
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def deep_root() -> Iterator[Path]:
    # A short root, so 2,000 one-letter folders (4,000 bytes) stay under PATH_MAX (4,096).
    root = Path(tempfile.mkdtemp(prefix="zs-deep-", dir="/tmp"))
    try:
        assert len(str(root)) + len("/short") + 2 * DEEP + len("/leaf.txt") < 4095
        (root / "short").mkdir()
        make_chain(root / "short", "d", DEEP, b"the bottom of 2,000 folders\n")
        (root / "long").mkdir()  # 2,000 x "ddd/": 8,000 bytes, past PATH_MAX
        make_chain(root / "long", "ddd", DEEP, b"never reachable by path\n")
        yield root
    finally:
        remove_deep(root)


@pytest.fixture(scope="module")
def deep_default(deep_root: Path, serve: Callable[..., Server]) -> Server:
    return serve(deep_root)


@pytest.fixture(scope="module")
def deep_3000(deep_root: Path, serve: Callable[..., Server]) -> Server:
    return serve(deep_root, "--max-depth", "3000")


def test_2000_deep_tree_is_413_under_the_default_max_depth(deep_default: Server) -> None:
    server = deep_default
    resp = httpx.get(server.url + "/archive/short.zip", timeout=60)
    assert resp.status_code == 413
    error = error_of(resp)
    assert "deeper than 256 levels (--max-depth)" in error["message"]
    assert error["path"].startswith("short/d/d/")
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_2000_deep_tree_is_served_with_max_depth_3000(deep_3000: Server, fmt: str) -> None:
    server = deep_3000
    resp = httpx.get(f"{server.url}/archive/short.{fmt}", timeout=120)
    assert resp.status_code == 200
    leaf = "short/" + "d/" * DEEP + "leaf.txt"
    if fmt == "zip":
        archive = zipfile.ZipFile(io.BytesIO(resp.content))
        assert len(archive.namelist()) == DEEP + 2  # short/, 2,000 folders, the leaf
        assert archive.read(leaf) == b"the bottom of 2,000 folders\n"
    else:
        with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
            member = tar.extractfile(leaf)
            assert member is not None
            assert member.read() == b"the bottom of 2,000 folders\n"


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz"])
def test_tree_past_path_max_is_a_clean_413_not_a_partial_archive(
        deep_root: Path, deep_3000: Server, fmt: str) -> None:
    """Leaving the unreachable part out would send an archive that looks whole but is not."""
    server = deep_3000
    resp = httpx.get(f"{server.url}/archive/long.{fmt}", timeout=60)
    assert resp.status_code == 413
    error = error_of(resp)
    assert "longer than the system's limit of 4096 bytes" in error["message"]
    assert len(error["path"]) <= 203  # cut for the message, never the host path
    assert str(deep_root) not in resp.text
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    assert no_tracebacks(server)


def test_request_path_past_path_max_is_413_not_500(deep_root: Path, deep_default: Server
                                                   ) -> None:
    """Under --max-path-bytes, but the root's own path pushes it past the kernel's limit."""
    server = deep_default
    rel = "long/" + "ddd/" * 1020 + "leaf.txt"  # 4,093 bytes, over 4,100 with the root
    assert len(rel.encode()) <= 4096 < len(str(deep_root)) + 1 + len(rel)
    resp = httpx.get(server.url + "/files/" + rel, timeout=30)
    assert resp.status_code == 413
    assert "system's limit" in error_of(resp)["message"]
    assert no_tracebacks(server)
