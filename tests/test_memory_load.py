"""Memory under load: RSS per stream of slow clients, and RSS after many dropped downloads.

A real server on big local files. Its idle RSS after one warm-up download is
the baseline; 16 slow clients (small receive buffer, a little read at a
time) of one format must add at most the format's bound per stream; after
200 downloads dropped mid-body the RSS must come back within 20 % of the
baseline (freed memory is trimmed a moment after the last stream ends).
Only memory is asserted, never a time.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import TIMEOUT, Serve, Server, metrics, rss_mib, wait_until

MiB = 1 << 20
CLIENTS = 16
DROPS = 200
BOUNDS = {  # target -> most MiB of RSS a slow stream may add
    "/archive/big.zip?compression=store": 5,
    "/archive/big.zip?compression=deflate": 5,
    "/archive/big.tar.zst": 8,
}


@pytest.fixture(scope="module")
def big_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Text and random files, 48 MiB: no slow client gets far in it."""
    root = tmp_path_factory.mktemp("memory") / "root"
    (root / "big").mkdir(parents=True)
    line = b"".join(b"%06d a line of a log file that compresses well\n" % i for i in range(4096))
    for n in range(3):
        (root / "big" / f"t{n}.log").write_bytes(line * (8 * MiB // len(line)))
        (root / "big" / f"r{n}.bin").write_bytes(random_bytes(8 * MiB, n))
    return root


def random_bytes(size: int, seed: int) -> bytes:
    """Given a size and a seed, return that many incompressible bytes (repeatable)."""
    import random
    return random.Random(seed).randbytes(size)


class SlowClient:
    """One GET with a 16 KiB receive buffer, read 16 KiB at a time with pauses (bounded)."""

    def __init__(self, port: int, target: str, stop: threading.Event) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.thread = threading.Thread(target=self._read, args=(stop,), daemon=True)
        self.thread.start()

    def _read(self, stop: threading.Event) -> None:
        for _ in range(100_000):
            try:
                if stop.is_set() or not self.sock.recv(16384):
                    return
            except OSError:
                return
            stop.wait(0.05)

    def close(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.thread.join(TIMEOUT)


def in_flight(server: Server) -> float:
    return metrics(server.url)["zipserve_streams_in_flight"]


def idle_rss(server: Server) -> float:
    """Wait (bounded) for no stream in flight and the heap trim after it; return the RSS."""
    assert wait_until(lambda: in_flight(server) == 0, TIMEOUT)
    time.sleep(2)  # the server trims its heap a second after its last stream ended
    return rss_mib(server.proc.pid)


def loaded_rss(server: Server, target: str) -> float:
    """Given a target, hold CLIENTS slow downloads of it; return the highest RSS sampled meanwhile."""
    stop = threading.Event()
    clients = [SlowClient(server.port, target, stop) for _ in range(CLIENTS)]
    try:
        assert wait_until(lambda: in_flight(server) >= CLIENTS, TIMEOUT)
        samples = []
        for _ in range(20):
            samples.append(rss_mib(server.proc.pid))
            time.sleep(0.1)
        return max(samples)
    finally:
        stop.set()
        for client in clients:
            client.close()


def drop(port: int, target: str, count: int) -> None:
    """Start `count` downloads of target, 25 at a time; read a little of each and reset them."""
    for first in range(0, count, 25):
        socks = []
        for _ in range(min(25, count - first)):
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            socks.append(sock)
        for sock in socks:
            assert sock.recv(8192).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()


@pytest.mark.parametrize("target", list(BOUNDS))
def test_memory_per_stream_and_after_drops(big_root: Path, server_factory: Serve,
                                           target: str) -> None:
    server = server_factory(big_root, "--max-streams", str(CLIENTS + 25))
    with httpx.stream("GET", server.url + target, timeout=TIMEOUT) as warm:
        assert sum(len(b) for b in warm.iter_bytes()) > 24 * MiB  # pools, CRCs, page cache
    baseline = idle_rss(server)
    per_stream = (loaded_rss(server, target) - baseline) / CLIENTS
    assert per_stream <= BOUNDS[target], f"{per_stream:.2f} MiB a stream"
    drop(server.port, target, DROPS)
    after = idle_rss(server)
    assert after <= baseline * 1.2, f"{baseline:.1f} MiB before {DROPS} drops, {after:.1f} after"
