"""Memory per stream: N slow clients of one format at once, then 1,000 dropped downloads.

Run: python bench/bench_memory.py [--clients 64] [--disconnects 1000]
     [--formats zip-store,zip-deflate,tar,tar.gz,tar.zst] [--dir /tmp/zipserve-bench]

For each format a fresh server (one worker) serves a folder of big files
(text and random, 160 MiB: no client finishes during the run). After one
warm-up download (thread pools, CRC cache, page cache), its idle RSS is the
baseline. Then `--clients` slow clients each GET the archive over a socket
with a 16 KiB receive buffer and read 16 KiB every 50 ms; once the server
counts them all in flight, its RSS is sampled for a few seconds and the
highest kept. MiB per stream = (that - baseline) / clients. The clients then
leave, and `--disconnects` more downloads are started, read for 8 KiB and
dropped (half with a reset), 25 at a time; the RSS after them is compared
with the baseline.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import trees
from bench_load import BATCH, Server, serving, start_and_drop, wait_until
from trees import MIB

FORMATS = {
    "zip-store": "/archive/big.zip?compression=store",
    "zip-deflate": "/archive/big.zip?compression=deflate",
    "tar": "/archive/big.tar",
    "tar.gz": "/archive/big.tar.gz",
    "tar.zst": "/archive/big.tar.zst",
}
READ, PAUSE = 16 * 1024, 0.05
SAMPLE_SECONDS = 4.0


def memory_root(base: Path) -> Path:
    """Given the bench folder, return a root of big files (made once): half text, half random."""
    root = base / "trees" / "memory"
    if not root.is_dir():
        partial = root.with_name("memory.partial")
        content = trees.Content(5)
        (partial / "big").mkdir(parents=True, exist_ok=True)
        for n in range(4):
            (partial / "big" / f"t{n}.log").write_bytes(content.text(20 * MIB))
            (partial / "big" / f"r{n}.bin").write_bytes(content.noise(20 * MIB))
        partial.rename(root)
    return root


class SlowClient:
    """One GET over a socket with a small receive buffer, read a little at a time (bounded)."""

    def __init__(self, port: int, target: str, stop: threading.Event) -> None:
        self.got = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READ)
        self.sock.settimeout(60)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.thread = threading.Thread(target=self._read, args=(stop,), daemon=True)
        self.thread.start()

    def _read(self, stop: threading.Event) -> None:
        for _ in range(100_000):
            if stop.is_set():
                return
            try:
                data = self.sock.recv(READ)
            except OSError:
                return
            if not data:
                return
            self.got += len(data)
            stop.wait(PAUSE)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10)


@dataclass
class Row:
    fmt: str
    clients: int
    baseline: float
    loaded: float
    after_drops: float
    drops: int

    @property
    def per_stream(self) -> float:
        return (self.loaded - self.baseline) / self.clients

    @property
    def drift(self) -> float:
        return (self.after_drops - self.baseline) / self.baseline


def warm(server: Server, target: str) -> None:
    with urllib.request.urlopen(server.url + target, timeout=600) as resp:
        while resp.read(MIB):
            pass


def settle(server: Server) -> float:
    """Wait (bounded) for no stream in flight and a steady RSS; return that RSS.

    The server trims its heap a second after its last stream ended: wait past that.
    """
    wait_until(lambda: server.metrics()["zipserve_streams_in_flight"] == 0, 30)
    time.sleep(2)
    last = server.rss_mib()
    for _ in range(20):
        time.sleep(0.25)
        now = server.rss_mib()
        if abs(now - last) < 0.5:
            break
        last = now
    return server.rss_mib()


def loaded_rss(server: Server, target: str, clients: int) -> float:
    """Start `clients` slow clients; return the highest RSS while all are in flight."""
    stop = threading.Event()
    started = [SlowClient(server.port, target, stop) for _ in range(clients)]
    try:
        if not wait_until(lambda: server.metrics()["zipserve_streams_in_flight"] >= clients,
                          60):
            print(f"  warning: not every client in flight for {target}", file=sys.stderr)
        peak, deadline = 0.0, time.monotonic() + SAMPLE_SECONDS
        while time.monotonic() < deadline:
            peak = max(peak, server.rss_mib())
            time.sleep(0.1)
        return peak
    finally:
        stop.set()
        for client in started:
            client.close()


def measure(root: Path, logs: Path, fmt: str, clients: int, drops: int) -> Row:
    target = FORMATS[fmt]
    with serving(root, logs, "--max-streams", str(clients + 8)) as server:
        warm(server, target)
        baseline = settle(server)
        loaded = loaded_rss(server, target, clients)
        settle(server)
        for n in range(0, drops, BATCH):
            start_and_drop(server.port, [target] * min(BATCH, drops - n), n // BATCH)
        after = settle(server)
    return Row(fmt, clients, baseline, loaded, after, drops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--disconnects", type=int, default=1000)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--dir", type=Path, default=trees.DEFAULT_DIR)
    args = parser.parse_args()
    root = memory_root(args.dir)
    trees.warm(root)
    head = (f"{'format':<13}{'clients':>8}{'baseline MiB':>13}{'loaded MiB':>11}"
            f"{'MiB/stream':>11}{'drops':>7}{'after MiB':>10}{'vs baseline':>12}")
    print(f"root: {root}; RSS of the one server process\n{head}\n{'-' * len(head)}")
    for fmt in args.formats.split(","):
        r = measure(root, args.dir / "logs", fmt, args.clients, args.disconnects)
        print(f"{r.fmt:<13}{r.clients:>8}{r.baseline:>13.1f}{r.loaded:>11.1f}"
              f"{r.per_stream:>11.2f}{r.drops:>7}{r.after_drops:>10.1f}{r.drift:>+12.1%}",
              flush=True)


if __name__ == "__main__":
    main()
