"""Load on 127.0.0.1: 64 concurrent downloads for a bounded time, then 1,000 dropped ones.

Run: python bench/bench_load.py [--quick] [--seconds 20] [--clients 64] [--disconnects 1000]
     [--dir /tmp/zipserve-bench]

Load: the mixed tree of bench/trees.py (~1 MiB files, half log text, half
random, 8 to a folder) is served by zipserve with one worker, then with
`--workers 2`. Each of `--clients` threads downloads folders as zip (default
compression), stored zip, tar, tar.gz and tar.zst in turn, keep-alive, until
the time is up (an archive started in time is finished). Every body is checked
against a reference made before the run and verified by the tool a user has
(unzip -t, tar -t, gzip -t, zstd -t): archives are deterministic, so equal
length and CRC-32 means a valid archive. MB/s counts 10^6 bytes per second on
the wire and of the files archived. RSS is sampled every 0.2 s, summed over
the server's processes: peak, and (peak - idle) per stream in flight.

Disconnects: `--disconnects` downloads of zip (stored and deflated), tar,
tar.gz, tar.zst, gz and single files are started, read for 8 KiB and dropped,
half with a reset, half with a plain close, 25 at a time. Then the server's
open file descriptors, its streams-in-flight gauge, its client_gone count and
its RSS are compared with before.

The client runs on the same (shared) cores as the server: the figures are a
floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import trees
from trees import MIB

MB = 1_000_000
FORMATS = {  # name -> (URL suffix, command that checks a file of it)
    "zip": (".zip", ["unzip", "-tq"]),
    "zip-store": (".zip?compression=store", ["unzip", "-tq"]),
    "tar": (".tar", ["tar", "-tf"]),
    "tar.gz": (".tar.gz", ["gzip", "-t"]),
    "tar.zst": (".tar.zst", ["zstd", "-tq"]),
}
FOLDERS_PER_PART = 2  # folders used from each of the tree's 4 parts: 8 folders x 5 formats


# --- the server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """Return the server's pid and its worker processes' (uvicorn --workers)."""
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            with suppress(OSError):  # gone meanwhile
                todo += [int(c) for c in
                         Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return out

    def rss_mib(self) -> float:
        return sum(status_mib(pid, "VmRSS") for pid in self.pids())

    def fds(self) -> int:
        return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in self.pids())

    def threads(self) -> int:
        return sum(len(os.listdir(f"/proc/{pid}/task")) for pid in self.pids())

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r'^(zipserve_\w+)(?:\{outcome="(\w+)"\})? (\S+)$', line)
            if m:
                out[m[1] + (":" + m[2] if m[2] else "")] = float(m[3])
        return out


def status_mib(pid: int, name: str) -> float:
    """Given a pid and a /proc status field (VmRSS, VmHWM), return it in MiB (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def serving(root: Path, logs: Path, *extra: str) -> Iterator[Server]:
    """Given a root, run `zipserve serve` on it until the block ends."""
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"load-{port}.log"
    cmd = [sys.executable, "-m", "zipserve", "serve", str(root), "--port", str(port),
           "--no-crc-cache", *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    server = Server(proc, port, log)
    try:
        wait_ready(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited; see {server.log}")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start; see {server.log}")


def wait_until(check: Callable[[], bool], seconds: float) -> bool:
    """Poll check (bounded in time) until it holds; return whether it did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# --- load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One archive to download: its URL path and the file bytes it holds."""

    path: str
    fmt: str
    data: int


@dataclass
class Reference:
    length: int
    crc: int


def jobs_for(tree: trees.Tree) -> list[Job]:
    """Given the mixed tree, return one job per (folder, format), interleaved by format."""
    folders = []
    for part in sorted(p for p in tree.path.iterdir() if p.is_dir()):
        folders += sorted(d for d in part.iterdir() if d.is_dir())[:FOLDERS_PER_PART]
    jobs = []
    for folder in folders:
        data = sum(f.stat().st_size for f in folder.iterdir())
        rel = folder.relative_to(tree.path).as_posix()
        jobs += [Job(f"/archive/{rel}{FORMATS[fmt][0]}", fmt, data) for fmt in FORMATS]
    return jobs


def references(server: Server, jobs: list[Job], scratch: Path) -> dict[str, Reference]:
    """Given the jobs, download each once, check it with the user's tool; return length and CRC."""
    refs = {}
    for job in jobs:
        target = scratch / ("ref" + FORMATS[job.fmt][0].split("?")[0])
        with urllib.request.urlopen(server.url + job.path, timeout=120) as resp, \
                open(target, "wb") as out:
            shutil.copyfileobj(resp, out, MIB)
        subprocess.run([*FORMATS[job.fmt][1], str(target)], check=True, timeout=120,
                       stdout=subprocess.DEVNULL)
        data = target.read_bytes()
        refs[job.path] = Reference(len(data), zlib.crc32(data))
        target.unlink()
    return refs


@dataclass
class Tally:
    archives: int = 0
    valid: int = 0
    busy: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    wire: int = 0
    data: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def download(conn: http.client.HTTPConnection, job: Job, buf: bytearray) -> tuple[int, int, int]:
    """Given a keep-alive connection and a job, GET it; return (status, length, CRC-32)."""
    conn.request("GET", job.path)
    resp = conn.getresponse()
    view = memoryview(buf)
    length, crc = 0, 0
    while n := resp.readinto(view):
        length += n
        crc = zlib.crc32(view[:n], crc)
    return resp.status, length, crc


def client(server: Server, jobs: list[Job], refs: dict[str, Reference], first: int, step: int,
           deadline: float, tally: Tally) -> None:
    """Download jobs first, first + step, ... until the deadline; count each in tally."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    buf = bytearray(MIB)
    index = first
    try:
        while time.monotonic() < deadline:
            job = jobs[index % len(jobs)]
            index += step
            try:
                status, length, crc = download(conn, job, buf)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                with tally.lock:
                    tally.errors[type(exc).__name__] += 1
                continue
            ref = refs[job.path]
            with tally.lock:
                if status == 503:
                    tally.busy += 1
                    continue
                tally.archives += 1
                tally.valid += status == 200 and (length, crc) == (ref.length, ref.crc)
                tally.wire += length
                tally.data += job.data
    finally:
        conn.close()


class RssSampler:
    """Sample the server's RSS (all processes) every 0.2 s in a thread; keep the peak."""

    def __init__(self, server: Server) -> None:
        self.server, self.peak, self.stop = server, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.server.rss_mib())
            self.stop.wait(0.2)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@dataclass
class LoadRow:
    label: str
    clients: int
    seconds: float
    tally: Tally
    idle_mib: float
    peak_mib: float


def load(server: Server, jobs: list[Job], refs: dict[str, Reference], clients: int,
         seconds: float, label: str) -> LoadRow:
    """Given a warm server, run `clients` downloaders for `seconds`; return the row."""
    idle = server.rss_mib()
    tally = Tally()
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=client, args=(server, jobs, refs, n, clients, deadline,
                                                     tally)) for n in range(clients)]
    with RssSampler(server) as rss:
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
    return LoadRow(label, clients, elapsed, tally, idle, rss.peak)


def print_load(rows: list[LoadRow]) -> None:
    head = (f"{'server':<12}{'clients':>8}{'seconds':>9}{'archives':>9}{'valid':>7}{'503':>5}"
            f"{'errors':>7}{'wire MB/s':>10}{'files MB/s':>11}{'idle RSS':>9}{'peak RSS':>9}"
            f"{'MiB/stream':>11}")
    print(f"\nLoad: concurrent downloads of ~8 MiB folders (zip, stored zip, tar, tar.gz,"
          f" tar.zst)\n{head}\n{'-' * len(head)}")
    for r in rows:
        t = r.tally
        per_stream = (r.peak_mib - r.idle_mib) / r.clients
        print(f"{r.label:<12}{r.clients:>8}{r.seconds:>9.1f}{t.archives:>9}{t.valid:>7}"
              f"{t.busy:>5}{sum(t.errors.values()):>7}{t.wire / r.seconds / MB:>10.0f}"
              f"{t.data / r.seconds / MB:>11.0f}{r.idle_mib:>9.0f}{r.peak_mib:>9.0f}"
              f"{per_stream:>11.2f}")
    for r in rows:
        if r.tally.errors:
            print(f"  {r.label} errors: {dict(r.tally.errors)}")


def run_load(tree: trees.Tree, logs: Path, clients: int, seconds: float) -> list[LoadRow]:
    rows = []
    jobs = jobs_for(tree)
    with tempfile.TemporaryDirectory(prefix="zs-load-") as scratch:
        refs: dict[str, Reference] = {}
        for workers in (1, 2):
            with serving(tree.path, logs, "--workers", str(workers), "--max-streams",
                         str(2 * clients)) as server:
                if not refs:
                    refs = references(server, jobs, Path(scratch))
                label = "1 worker" if workers == 1 else f"{workers} workers"
                rows.append(load(server, jobs, refs, clients, seconds, label))
    return rows


# --- disconnects ------------------------------------------------------------------------------

DISCONNECT_TARGETS = {
    "zip-store": "/archive/big.zip?compression=store",
    "zip-deflate": "/archive/big.zip?compression=deflate",
    "tar": "/archive/big.tar",
    "tar.gz": "/archive/big.tar.gz",
    "tar.zst": "/archive/big.tar.zst",
    "gz": "/archive/huge.bin.gz",
    "files": "/files/huge.bin",
}
BATCH = 25


def disconnect_root(base: Path) -> Path:
    """Given the bench folder, return a root of big files no socket buffer can hold (made once)."""
    root = base / "trees" / "disconnect"
    if not root.is_dir():
        partial = root.with_name("disconnect.partial")
        shutil.rmtree(partial, ignore_errors=True)
        content = trees.Content(3)
        (partial / "big").mkdir(parents=True)
        (partial / "big" / "a.bin").write_bytes(content.noise(16 * MIB))
        (partial / "big" / "b.log").write_bytes(content.text(4 * MIB))
        (partial / "big" / "c.bin").write_bytes(content.noise(4 * MIB))
        (partial / "huge.bin").write_bytes(content.noise(64 * MIB))
        partial.rename(root)
    return root


def start_and_drop(port: int, targets: list[str], batch: int) -> list[bytes]:
    """Start `targets` downloads, read 8 KiB of each body, drop them all; return the status lines."""
    heads = []
    socks = []
    try:
        for target in targets:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            sock.settimeout(30)
            sock.connect(("127.0.0.1", port))
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            socks.append(sock)
        for sock in socks:
            got = b""
            while b"\r\n\r\n" not in got or len(got) - got.index(b"\r\n\r\n") < 8 * 1024:
                data = sock.recv(64 * 1024)
                if not data:
                    break
                got += data
            heads.append(got.split(b"\r\n", 1)[0])
    finally:
        for n, sock in enumerate(socks):
            if (batch + n) % 2 == 0:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
    return heads


def run_disconnects(base: Path, logs: Path, count: int) -> None:
    root = disconnect_root(base)
    names = list(DISCONNECT_TARGETS)
    plan = [names[n % len(names)] for n in range(count)]
    with serving(root, logs) as server:
        for target in DISCONNECT_TARGETS.values():  # warm: pools, threads, page cache
            with urllib.request.urlopen(server.url + target, timeout=120) as resp:
                while resp.read(MIB):
                    pass
        before = server.metrics()
        fds, threads, rss = server.fds(), server.threads(), server.rss_mib()
        start = time.monotonic()
        statuses: Counter[bytes] = Counter()
        shape = []  # RSS every quarter of the run: flat, or growing with each drop?
        for n in range(0, count, BATCH):
            targets = [DISCONNECT_TARGETS[name] for name in plan[n:n + BATCH]]
            statuses.update(start_and_drop(server.port, targets, n // BATCH))
            if (n // BATCH + 1) % max(1, count // BATCH // 4) == 0:
                shape.append(f"{n + len(targets)}: {server.rss_mib():.0f}")
        elapsed = time.monotonic() - start

        def settled() -> bool:
            return (server.metrics()["zipserve_streams_in_flight"] == 0
                    and server.fds() <= fds)
        wait_until(settled, 10)
        after = server.metrics()
        archives = sum(1 for name in plan if name != "files")
        gone = after["zipserve_archives_total:client_gone"] - before.get(
            "zipserve_archives_total:client_gone", 0)
        failed = after["zipserve_archives_total:failed"] - before.get(
            "zipserve_archives_total:failed", 0)
        print(f"\nDisconnects: {count} downloads dropped mid-body in {elapsed:.1f} s"
              f" ({', '.join(f'{k}: {v}' for k, v in Counter(plan).items())})")
        print(f"  answers before the drop: {dict((k.decode(), v) for k, v in statuses.items())}")
        print(f"  open fds {fds} -> {server.fds()} (leaked: {max(0, server.fds() - fds)}),"
              f" threads {threads} -> {server.threads()} (pooled, reused)")
        print(f"  RSS MiB {rss:.0f} before, after N drops: {', '.join(shape)};"
              f" settled {server.rss_mib():.0f}")
        print(f"  streams in flight after: {after['zipserve_streams_in_flight']:.0f};"
              f" client_gone +{gone:.0f} of {archives} archives dropped; failed +{failed:.0f}")


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s per load run, 210 disconnects")
    parser.add_argument("--seconds", type=float, default=None, help="per load run (20)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--disconnects", type=int, default=None, help="(1000; 0 skips)")
    parser.add_argument("--mixed-mib", type=int, default=128, help="mixed tree size")
    parser.add_argument("--dir", type=Path, default=trees.DEFAULT_DIR)
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else (5.0 if args.quick else 20.0)
    disconnects = args.disconnects if args.disconnects is not None else (
        210 if args.quick else 1000)
    tree = trees.mixed_tree(args.dir, args.mixed_mib)
    trees.warm(tree.path)
    logs = args.dir / "logs"
    print(f"tree: {tree.path} ({tree.files} files, {tree.bytes / MIB:.0f} MiB);"
          f" {os.cpu_count()} CPUs; logs in {logs}")
    print_load(run_load(tree, logs, args.clients, seconds))
    if disconnects:
        run_disconnects(args.dir, logs, disconnects)


if __name__ == "__main__":
    main()
