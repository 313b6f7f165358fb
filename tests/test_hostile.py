"""Hostile clients and a hostile tree, against the real server.

- A folder swapped for a symlink to an outside folder, thousands of times a
  second, while files, archives and listings of it are requested: no byte and
  no name from outside may appear in any answer (archives decompressed), and
  nothing may fail with a 500. The same race is checked at the fs layer.
- Clients that stop reading: memory held per stalled client, and the send
  timeout that drops them (stream slot, file handles and socket freed while the
  client still holds its end).
- 50 stalled downloads (more than anyio's 40 default threads) with /healthz
  still answering; the event loop's longest stall while archives stream.
- SIGTERM: a reading download finishes within the grace period, a stalled one
  is cut when it ends, and the process exits.
- One log line per archive, naming how it ended.

Figures are printed (run with -s to see them); only their shape is asserted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import zstandard
from starlette.testclient import TestClient

from tests.helpers import Serve, Server, metrics, rss_mib, stop_server, wait_until
from zipserve.core.limits import Budget
from zipserve.core.node import Node
from zipserve.errors import Forbidden, SourceChanged
from zipserve.sources.local.confine import Folders
from zipserve.sources.local.source import Local

MiB = 1 << 20
BIG = 48 * MiB  # far more than socket buffers: a client that stops reading stays in flight
STALLED = 16


# --- helpers ------------------------------------------------------------------------


def settled_rss(pid: int, seconds: float = 15.0) -> float:
    """Wait (bounded) until the process's RSS stops moving, then return it in MiB."""
    last, steady = rss_mib(pid), 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and steady < 3:
        time.sleep(0.25)
        now = rss_mib(pid)
        steady = steady + 1 if abs(now - last) < 0.5 else 0
        last = now
    return last


def stalled(port: int, target: str) -> socket.socket:
    """Send a GET from a socket with a tiny receive buffer that will never be read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


@pytest.fixture(scope="module")
def big_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "root"
    (root / "big").mkdir(parents=True)
    # Random bytes: compressed formats cannot squeeze them into the socket buffers.
    (root / "big" / "a.bin").write_bytes(os.urandom(BIG))
    (root / "small.txt").write_bytes(b"small\n")
    return root


# --- the symlink-swap race -----------------------------------------------------------

# Exchanges two names atomically (renameat2 RENAME_EXCHANGE), `rounds` times there and back.
SWAPPER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
rounds, pause = int(sys.argv[3]), float(sys.argv[4])
for n in range(2 * rounds):
    if libc.renameat2(-100, a, -100, b, 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE
        raise OSError(ctypes.get_errno(), "renameat2")
    time.sleep(pause)
print(rounds)
"""
ROUNDS = 12_000
RACE_TARGETS = [
    "/files/dir/f",
    "/archive/dir.tar",
    "/archive/dir.zip?compression=store",
    "/archive/dir.zip?compression=deflate",
    "/archive/dir.tar.gz",
    "/archive/dir.tar.zst",
    "/archive/dir/f.gz",
    "/archive?path=dir/f&path=top.txt&format=tar",
    "/api/list/dir",
    "/browse/dir",
]


@dataclass
class Race:
    root: Path
    outside: Path
    secret: bytes  # content only outside
    secret_name: str  # a file name only outside


@pytest.fixture
def race(tmp_path: Path) -> Race:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "dir").mkdir(parents=True)
    outside.mkdir()
    secret = b"ZS-SECRET-" + uuid.uuid4().hex.encode()
    secret_name = "zs-outside-name-" + uuid.uuid4().hex
    (root / "dir" / "f").write_bytes(b"inside, served\n" * 64)
    (root / "top.txt").write_bytes(b"top\n")
    (outside / "f").write_bytes(secret * 64)
    (outside / secret_name).write_bytes(secret)
    (root / "dir.swap").symlink_to(outside)
    return Race(root, outside, secret, secret_name)


def swap(race: Race) -> None:
    """Exchange root/dir and the symlink root/dir.swap (atomic, as the race does)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    a, b = str(race.root / "dir").encode(), str(race.root / "dir.swap").encode()
    if libc.renameat2(-100, a, -100, b, 2) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def readable_forms(target: str, body: bytes) -> bytes:
    """Given an answer's body (maybe cut short), return it plus everything it decompresses to."""
    forms = [body]
    if ".gz" in target:
        forms.append(inflate_partly(body, 31))
    elif ".zst" in target:
        with contextlib.suppress(zstandard.ZstdError):  # an error answer is JSON
            forms.append(zstandard.ZstdDecompressor().decompressobj().decompress(body))
    elif ".zip" in target:
        forms += zip_payloads(body)
    return b"".join(forms)


def inflate_partly(data: bytes, wbits: int) -> bytes:
    """Given deflate data (gzip with wbits 31, raw with -15), maybe cut, return what it gives."""
    try:
        return zlib.decompressobj(wbits).decompress(data)
    except zlib.error:  # not deflate at all: an error answer
        return b""


def zip_payloads(body: bytes) -> list[bytes]:
    """Given ZIP bytes (maybe cut short), return each entry's data inflated as far as it goes."""
    out = []
    pos = body.find(b"PK\x03\x04")
    while pos != -1 and pos + 30 <= len(body):
        method, = struct.unpack_from("<H", body, pos + 8)
        name_len, extra_len = struct.unpack_from("<HH", body, pos + 26)
        data = body[pos + 30 + name_len + extra_len:]
        if method == 8:
            out.append(inflate_partly(data, -15))
        pos = body.find(b"PK\x03\x04", pos + 4)
    return out


def test_symlink_swap_race_never_leaks_from_outside(race: Race, server_factory: Serve) -> None:
    server = server_factory(race.root)
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(race.root / "dir"), str(race.root / "dir.swap"),
         str(ROUNDS), "0.0002"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    outcomes: Counter[str] = Counter()
    leaks: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 60

    def client(offset: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            n = offset
            while swapper.poll() is None and time.monotonic() < deadline:
                target = RACE_TARGETS[n % len(RACE_TARGETS)]
                n += 1
                try:
                    resp = http.get(target)
                    outcome, body = str(resp.status_code), resp.content
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    outcome, body = "cut", b""  # aborted mid-body: what arrived is checked below
                seen = readable_forms(target, body)
                with lock:
                    outcomes[outcome] += 1
                    if race.secret in seen or race.secret_name.encode() in seen:
                        leaks.append(f"{target} {outcome}")

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out, err = swapper.communicate(timeout=60)
    finally:
        swapper.kill()
        swapper.wait()
        stop_server(server)
    assert swapper.returncode == 0, err.decode()
    rounds = int(out)
    requests = sum(outcomes.values())
    print(f"\nsymlink-swap race: {rounds} rounds, {requests} requests {dict(outcomes)},"
          f" escapes: {len(leaks)}")
    assert rounds >= 10_000
    assert leaks == []
    assert not any(o.startswith("5") for o in outcomes), outcomes
    # The race was really run: some answers saw the folder, some the symlink.
    assert outcomes["200"] > 0
    assert outcomes["403"] + outcomes["404"] + outcomes["cut"] > 0
    assert "Traceback" not in server.log_text()


@pytest.mark.parametrize("in_folder", [False, True], ids=["by-path", "in-folder"])
@pytest.mark.parametrize("outside_file", ["another file", "a hard link to the same file"])
def test_file_swapped_between_stat_and_read_raises_source_changed(race: Race, outside_file: str,
                                                                  in_folder: bool) -> None:
    # in-folder: as a body reads (confine.Folders), the folder checked once for all its files.
    if outside_file != "another file":  # same inode: only the /proc check can tell
        (race.outside / "f").unlink()
        os.link(race.root / "dir" / "f", race.outside / "f")
    root = Local(race.root)
    node = root.stat(("dir", "f"))
    swap(race)
    folders = Folders(root) if in_folder else None
    with pytest.raises(SourceChanged, match="outside the root|replaced"):
        list(root.read(node, 0, node.size, 1 << 16, folders))
    if folders is not None:
        folders.close()


def test_symlinked_file_read_in_its_folder_gets_the_full_check(race: Race) -> None:
    """A symlink is never opened through a checked folder: inside, it is read; outside, refused."""
    (race.root / "inside-link").symlink_to("top.txt")
    (race.root / "outside-link").symlink_to(race.outside / race.secret_name)
    root = Local(race.root)
    folders = Folders(root)
    inside = root.stat(("inside-link",))
    assert b"".join(root.read(inside, 0, inside.size, 1 << 16, folders)) == b"top\n"
    # As if the planning stat had lost a race and seen the file outside:
    st = os.stat(race.outside / race.secret_name)
    outside = Node(("outside-link",), "file", st.st_size, st.st_mtime_ns, 0o644, st.st_dev,
                   st.st_ino, st.st_ctime_ns)
    with pytest.raises(SourceChanged, match="outside the root"):
        list(root.read(outside, 0, outside.size, 1 << 16, folders))
    folders.close()


def test_folder_swapped_between_stat_and_walk_lists_nothing_outside(race: Race) -> None:
    root = Local(race.root)
    node = root.stat(("dir",))
    swap(race)
    with pytest.raises(Forbidden):
        list(root.walk(node, Budget(100, 1 << 30, 10)))
    with pytest.raises(Forbidden):
        root.children(node)


def test_folder_swapped_back_is_walked_again(race: Race) -> None:
    root = Local(race.root)
    node = root.stat(("dir",))
    swap(race)
    swap(race)
    assert [n.path for n in root.walk(node, Budget(100, 1 << 30, 10))] == [("dir",),
                                                                          ("dir", "f")]


@pytest.mark.parametrize("target", ["/files/loop", "/archive/loop.zip", "/api/list/loop",
                                    "/files/ping/x", "/archive/ping.tar"])
def test_symlink_loop_in_the_request_path_is_404_not_500(tree: Path, client: TestClient,
                                                         target: str) -> None:
    (tree / "loop").symlink_to("loop")
    (tree / "ping").symlink_to("pong")
    (tree / "pong").symlink_to("ping")
    resp = client.get(target)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


# --- clients that stop reading ---------------------------------------------------------

STALL_TARGETS = {
    "files": "/files/big/a.bin",
    "tar": "/archive/big.tar",
    "zip-store": "/archive/big.zip?compression=store",
    "zip-deflate": "/archive/big.zip?compression=deflate",
    "tar.gz": "/archive/big.tar.gz",
    "tar.zst": "/archive/big.tar.zst",
}
# MiB a stalled client may hold: a few 1 MiB chunks (the one in the socket's buffer, the
# one waiting to be sent, the one read ahead) and, for deflate, the 256 KiB blocks in the
# compression pipeline; zstd's own worker threads keep a window-sized job each
# (compress.zstd._parameters). All far below the 48 MiB a buffered body would take.
RSS_BOUND = {"files": 6, "tar": 6, "zip-store": 6, "zip-deflate": 12, "tar.gz": 12,
             "tar.zst": 32}


@pytest.mark.parametrize("fmt", list(STALL_TARGETS))
def test_memory_per_stalled_client_is_bounded(big_root: Path, server_factory: Serve,
                                              fmt: str) -> None:
    server = server_factory(big_root)
    target = STALL_TARGETS[fmt]
    socks: list[socket.socket] = []
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http, \
                http.stream("GET", target) as resp:  # warm pools and caches first
            assert sum(len(c) for c in resp.iter_raw()) >= BIG
        before = settled_rss(server.proc.pid)
        socks = [stalled(server.port, target) for _ in range(STALLED)]
        if fmt != "files":
            assert wait_until(lambda: metrics(server.url)["zipserve_streams_in_flight"] == STALLED)
        after = settled_rss(server.proc.pid)
    finally:
        close_all(socks)
        stop_server(server)
    per_client = (after - before) / STALLED
    print(f"\nstalled {fmt}: RSS {before:.0f} -> {after:.0f} MiB for {STALLED} clients,"
          f" {per_client:.1f} MiB each")
    assert per_client < RSS_BOUND[fmt]


def test_stalled_clients_are_dropped_after_the_send_timeout(big_root: Path,
                                                            server_factory: Serve) -> None:
    server = server_factory(big_root, "--send-timeout", "2")
    targets = [t for name, t in STALL_TARGETS.items() if name != "files"]
    socks: list[socket.socket] = []
    try:
        fds_before = server.open_fds()
        gone_before = metrics(server.url)["zipserve_archives_total:client_gone"]
        socks = [stalled(server.port, targets[n % len(targets)]) for n in range(STALLED)]
        assert wait_until(lambda: metrics(server.url)["zipserve_streams_in_flight"] == STALLED)

        def dropped() -> bool:
            m = metrics(server.url)
            return (m["zipserve_streams_in_flight"] == 0
                    and m["zipserve_archives_total:client_gone"] - gone_before == STALLED)
        assert wait_until(dropped, 30)
        # The clients still hold their ends, unread: the server's sockets are closed anyway.
        assert wait_until(lambda: server.open_fds() <= fds_before, 10)
        for sock in socks:
            assert reset_or_ended(sock)
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    finally:
        close_all(socks)
        stop_server(server)


def reset_or_ended(sock: socket.socket, whole: int = BIG) -> bool:
    """Read what the server managed to send; return whether the connection ended short of whole."""
    got = 0
    sock.settimeout(10)
    try:
        while data := sock.recv(1 << 20):
            got += len(data)
            if got >= whole:
                return False
    except ConnectionResetError:
        pass
    return True


def test_healthz_answers_while_50_downloads_are_stalled(big_root: Path,
                                                        server_factory: Serve) -> None:
    """More streams than anyio's 40 default threads: the event loop keeps answering."""
    server = server_factory(big_root)
    socks: list[socket.socket] = []
    try:
        socks = [stalled(server.port, "/archive/big.tar") for _ in range(50)]
        assert wait_until(lambda: metrics(server.url)["zipserve_streams_in_flight"] == 50, 30)
        with httpx.Client(base_url=server.url, timeout=2) as http:
            for _ in range(20):
                assert http.get("/healthz").status_code == 200
            assert http.get("/files/small.txt").content == b"small\n"
            assert http.get("/archive/small.txt.tar").status_code == 200
        close_all(socks)
        socks = []
        assert wait_until(lambda: metrics(server.url)["zipserve_streams_in_flight"] == 0)
    finally:
        close_all(socks)
        stop_server(server)


def test_event_loop_keeps_answering_while_archives_stream(big_root: Path,
                                                          server_factory: Serve) -> None:
    """/healthz every 10 ms while tar.gz, deflated zip and tar.zst stream to curl: the worst wait."""
    server = server_factory(big_root)
    targets = ["/archive/big.tar.gz", "/archive/big.zip?compression=deflate",
               "/archive/big.tar.zst"]
    downloads: list[subprocess.Popen[bytes]] = []
    latencies: list[float] = []
    idle: list[float] = []  # the same polls with nothing streaming: this machine's noise
    try:
        with httpx.Client(base_url=server.url, timeout=2) as http:
            for _ in range(POLLS // 3):
                start = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                idle.append(time.perf_counter() - start)
                time.sleep(0.01)
            deadline = time.monotonic() + 30
            while len(latencies) < POLLS and time.monotonic() < deadline:
                for n, d in enumerate(downloads):  # keep every format streaming
                    if d.poll() is not None:
                        assert d.returncode == 0
                        downloads[n] = curl(server.url + targets[n])
                if not downloads:
                    downloads = [curl(server.url + target) for target in targets]
                start = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - start)
                time.sleep(0.01)
    finally:
        for d in downloads:
            d.kill()
            d.wait()
        stop_server(server)
    print(f"\nevent loop, /healthz every 10 ms: idle {spread(idle)}; while 3 archives stream"
          f" {spread(latencies)}")
    assert len(latencies) == POLLS  # every poll answered within its 2 s timeout


POLLS = 150


def spread(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    n = len(ordered)
    return (f"{n} polls, longest {ordered[-1] * 1000:.1f} ms, p99"
            f" {ordered[n * 99 // 100] * 1000:.1f} ms, median {ordered[n // 2] * 1000:.1f} ms")


def curl(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["curl", "-sS", "-o", os.devnull, url])


# --- SIGTERM -----------------------------------------------------------------------------

def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError as exc:
        return exc.errno == errno.ECONNREFUSED
    return False


def test_sigterm_lets_a_reading_download_finish_then_exits(big_root: Path,
                                                           server_factory: Serve) -> None:
    server = server_factory(big_root, "--grace", "20")
    got = 0
    try:
        with httpx.Client(timeout=30) as http, \
                http.stream("GET", server.url + "/archive/big.tar") as resp:
            chunks = resp.iter_raw(256 * 1024)
            got += len(next(chunks))
            server.proc.send_signal(signal.SIGTERM)
            assert wait_until(lambda: refused(server.port))  # no new connections
            for chunk in chunks:  # slow but steady: about 25 MiB/s
                got += len(chunk)
                time.sleep(0.01)
        assert got == int(resp.headers["content-length"])
        # uvicorn re-raises the SIGTERM it caught once it has shut down: -15 is a clean exit.
        assert server.proc.wait(25) in (0, -signal.SIGTERM)
    finally:
        stop_server(server)
    log = server.log_text()
    assert '"outcome": "complete"' in log
    assert "Finished server process" in log


def test_sigterm_cuts_a_stalled_download_after_the_grace(big_root: Path,
                                                        server_factory: Serve) -> None:
    server = server_factory(big_root, "--grace", "2")
    sock = stalled(server.port, "/archive/big.tar")
    try:
        assert wait_until(lambda: metrics(server.url)["zipserve_streams_in_flight"] == 1)
        server.proc.send_signal(signal.SIGTERM)
        # Well before the 30 s default: the grace period is the one given.
        server.proc.wait(15)
        assert reset_or_ended(sock)
    finally:
        sock.close()
        stop_server(server)
    assert "timeout graceful shutdown exceeded" in server.log_text()


# --- one log line per archive ---------------------------------------------------------------

def archive_lines(server: Server) -> list[dict[str, object]]:
    return [json.loads(line.split("archive ", 1)[1]) for line in server.log_text().splitlines()
            if re.match(r"^\w+:\s+archive \{", line)]


def test_one_log_line_per_archive_with_its_outcome(big_root: Path, tmp_path: Path,
                                                   server_factory: Serve) -> None:
    root = tmp_path / "root"
    (root / "case").mkdir(parents=True)
    os.link(big_root / "big" / "a.bin", root / "case" / "a.bin")
    (root / "case" / "b.bin").write_bytes(os.urandom(MiB))
    (root / "ok.txt").write_bytes(b"ok\n")
    server = server_factory(root)
    try:
        assert httpx.get(server.url + "/archive/ok.txt.zip", timeout=30).status_code == 200
        gone = stalled(server.port, "/archive/case.tar")
        assert wait_until(lambda: metrics(server.url)["zipserve_streams_in_flight"] == 1)
        close_all([gone])
        assert wait_until(lambda: len(archive_lines(server)) == 2)
        broken = stalled(server.port, "/archive/case.tar")
        assert wait_until(lambda: metrics(server.url)["zipserve_streams_in_flight"] == 1)
        os.truncate(root / "case" / "b.bin", 10)  # after 48 MiB of a.bin: the stream breaks
        assert reset_or_ended(broken, BIG + MiB)
        broken.close()
        assert wait_until(lambda: len(archive_lines(server)) == 3)
        assert httpx.get(server.url + "/archive/none.zip", timeout=30).status_code == 404
        time.sleep(0.5)  # room for a stray line
    finally:
        stop_server(server)
    lines = archive_lines(server)
    assert [line["outcome"] for line in lines] == ["complete", "client_gone", "failed"], lines
    assert [line["name"] for line in lines] == ["ok.txt.zip", "case.tar", "case.tar"]
    assert "case/b.bin" in str(lines[2]["error"])
    for line in lines:
        assert {"format", "entries", "bytes_sent", "seconds", "status"} <= set(line)

