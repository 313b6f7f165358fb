"""Clients that leave mid-download: every source is closed at once, nothing leaks.

Against the real server: hundreds of downloads in every format are started,
read a little and dropped (half with a reset, half with a plain close). The
server process must come back to the file descriptors it had before, report no
stream in flight, count each as `client_gone`, and stop reading the disk as
soon as the client is gone (Starlette's StreamingResponse would keep going).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.helpers import Server, Site, metrics, rchar, wait_until

MiB = 1 << 20

# Each format of issue 2, as the URL that streams it: (name, target, counted in /metrics).
DOWNLOADS = [
    ("zip-store", "/archive/big.zip?compression=store", True),
    ("zip-deflate", "/archive/big.zip?compression=deflate", True),
    ("tar", "/archive/big.tar", True),
    ("tar.gz", "/archive/big.tar.gz", True),
    ("tar.zst", "/archive/big.tar.zst", True),
    ("gz", "/archive/big/a.bin.gz", True),
    ("files", "/files/big/a.bin", False),
]
ROUNDS = 30  # downloads per format: 7 x 30 = 210 disconnects
BATCH = 21  # downloads open at once
SMALL_RCVBUF = 16 * 1024
HUGE = 64 * MiB  # keeps what the server can push before it must wait small


def text_block(size: int) -> bytes:
    line = b"2024-05-01T12:00:00Z GET /api/items/%06d 200 1234 ms=17 user=someone\n"
    out = b"".join(line % i for i in range(size // len(line) + 1))
    return out[:size]


@pytest.fixture(scope="module")
def site(serve: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> Site:
    """Files far bigger than the socket buffers, served by a real zipserve."""
    root = tmp_path_factory.mktemp("disconnect") / "root"
    big = root / "big"
    big.mkdir(parents=True)
    # Every download is far larger than what the socket buffers can hold (4 MiB of
    # send buffer here), so none can finish while its client is not reading.
    (big / "a.bin").write_bytes(os.urandom(16 * MiB))
    (big / "b.log").write_bytes(text_block(4 * MiB))
    (big / "c.bin").write_bytes(os.urandom(4 * MiB))
    # Random, so compressed formats also need the whole file to finish (zeros would
    # compress into the socket buffers).
    (root / "huge.bin").write_bytes(os.urandom(HUGE))
    return Site(serve(root), root)


# --- helpers -----------------------------------------------------------------------

def open_download(port: int, target: str, *, rcvbuf: int = SMALL_RCVBUF) -> socket.socket:
    """Send a GET for target on a fresh socket and return the socket, unread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def read_a_little(sock: socket.socket, body_bytes: int) -> bytes:
    """Read the head and at least body_bytes of the body (bounded by the socket timeout)."""
    got = b""
    while b"\r\n\r\n" not in got or len(got) - got.index(b"\r\n\r\n") - 4 < body_bytes:
        data = sock.recv(64 * 1024)
        if not data:
            break
        got += data
    return got


def drop(sock: socket.socket, reset: bool) -> None:
    """Close abruptly: with reset, an RST (SO_LINGER 0) instead of a FIN."""
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def settled_rchar(server: Server, seconds: float = 5.0) -> int:
    """Wait (bounded) until the server stops reading, then return rchar."""
    last = rchar(server)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = rchar(server)
        if now - last < 64 * 1024:  # only the odd small socket read
            return now
        last = now
    raise AssertionError("the server kept reading while its client was stalled")


def warm_up(server: Server) -> None:
    """Download every format once in full, so pools and caches exist before the baseline."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _name, target, _counted in DOWNLOADS:
            with client.stream("GET", target) as resp:
                assert resp.status_code == 200
                for _ in resp.iter_raw():
                    pass


# --- a burst of dropped downloads, measured once per module --------------------------

@dataclass
class Burst:
    dropped: int
    archives: int
    fds_before: int
    fds_after: int
    before: dict[str, float]
    after: dict[str, float]
    heads: list[bytes]


@pytest.fixture(scope="module")
def burst(site: Site) -> Burst:
    server = site.server
    warm_up(server)
    assert wait_until(lambda: metrics(server.url)["zipserve_streams_in_flight"] == 0)
    fds_before = server.open_fds()
    before = metrics(server.url)
    plan = [(name, target, counted) for _ in range(ROUNDS) for name, target, counted in DOWNLOADS]
    heads: list[bytes] = []
    for i in range(0, len(plan), BATCH):
        socks = [open_download(server.port, target) for _name, target, _c in plan[i:i + BATCH]]
        try:
            heads += [read_a_little(sock, 8 * 1024) for sock in socks]
        finally:
            for n, sock in enumerate(socks):
                drop(sock, reset=n % 2 == 0)
    archives = sum(1 for _n, _t, counted in plan if counted)

    def settled() -> bool:
        return (metrics(server.url)["zipserve_streams_in_flight"] == 0
                and server.open_fds() <= fds_before)
    wait_until(settled)
    return Burst(len(plan), archives, fds_before, server.open_fds(), before, metrics(server.url),
                 heads)


def test_burst_reached_the_bodies(burst: Burst) -> None:
    assert burst.dropped >= 200
    # Every download had started its body: a 200 head and body bytes after it.
    for head in burst.heads:
        assert head.startswith(b"HTTP/1.1 200 "), head[:100]
        assert len(head) - head.index(b"\r\n\r\n") - 4 >= 8 * 1024


def test_open_fds_return_to_baseline_after_disconnects(burst: Burst) -> None:
    print(f"\ndisconnect: {burst.dropped} dropped mid-stream, fds {burst.fds_before} ->"
          f" {burst.fds_after}, leaked fds: {max(0, burst.fds_after - burst.fds_before)}")
    assert burst.fds_after <= burst.fds_before


def test_streams_in_flight_return_to_zero(burst: Burst) -> None:
    assert burst.after["zipserve_streams_in_flight"] == 0


def test_every_dropped_archive_is_counted_as_client_gone(burst: Burst) -> None:
    gone = burst.after["zipserve_archives_total:client_gone"] - burst.before.get(
        "zipserve_archives_total:client_gone", 0)
    failed = burst.after["zipserve_archives_total:failed"] - burst.before.get(
        "zipserve_archives_total:failed", 0)
    assert gone == burst.archives
    assert failed == 0


def test_server_still_serves_after_the_burst(site: Site, burst: Burst) -> None:
    resp = httpx.get(site.server.url + "/files/big/c.bin", timeout=30)
    assert resp.status_code == 200
    assert resp.content == (site.root / "big" / "c.bin").read_bytes()


# --- the source stops at once -------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/files/huge.bin",
    "/archive/huge.bin.zip?compression=store",
    "/archive/huge.bin.tar",
    "/archive/huge.bin.tar.gz",
    "/archive/huge.bin.gz",
])
def test_server_stops_reading_when_the_client_leaves(site: Site, target: str) -> None:
    server = site.server
    sock = open_download(server.port, target, rcvbuf=64 * 1024)
    try:
        head = read_a_little(sock, 1 * MiB)
        assert head.startswith(b"HTTP/1.1 200 ")
        # The client stalls: the server fills the socket buffers, then waits.
        at_drop = settled_rchar(server)
    finally:
        drop(sock, reset=True)
    wait_until(lambda: metrics(server.url)["zipserve_streams_in_flight"] == 0)
    time.sleep(0.5)  # room for a body that was not closed to go on reading
    read_after = rchar(server) - at_drop
    print(f"\ndisconnect {target}: read after the client left: {read_after} bytes")
    assert read_after <= 2 * MiB
