"""Archives from S3 beside the same tree on local disk, and a resume that lands on another server.

Run: python bench/bench_s3.py [--quick] [--dir /tmp/zipserve-bench] [--store DIR] [--repeat 1]

The store is a real Ceph radosgw on 127.0.0.1 (tests/s3/ceph_rgw.py; memstore, so
objects live in RAM): started in a temporary folder and stopped at the end, or the
one already running in --store DIR. The mixed tree of bench/trees.py (~1 GiB of
~1 MiB files, half log text, half random; 128 MiB with --quick) is uploaded once
under s3://bench-s3/mixed-<size>/ and served both ways in one run:

- stored ZIP, CRC cache cold (each file read for its CRC, then again for its bytes
  unless it fits in one chunk) and warm (a second request to the same server);
  tar.gz (no CRCs; bound by compression); plain tar (bound by reading);
- a resume: server A streams the stored ZIP and is cut at half; server B, on
  another port with a cold cache of its own, resumes it with curl -C - and a
  pinned ?etag=; the result is compared with a whole download. With
  --s3-crc-prefix both share the CRCs A learned; without, B must read every file
  before the cut again to write the central directory.

MB/s are 10^6 bytes of file data per second (best of --repeat), the client curl
writing to /dev/null; peak RSS is the server's VmHWM (a fresh server per case).
Store reads come from RGW's request log: GETs and bytes sent for objects of the
tree (CRC objects apart), so they count what the store served, whoever asked;
"before it" counts the requests that started before B's first byte reached curl
(B reads a window ahead, so these include files after the cut it is about to send).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import trees
from bench_stream import Server, free_port, running
from trees import MIB, Tree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.s3 import ceph_rgw  # noqa: E402

MB = 1_000_000
BUCKET = "bench-s3"
CRC_PREFIX = ".zipserve-crc/"
TIMEOUT = 900.0
BEAST = re.compile(r'beast: \S+ \S+ - \S+ \[([^\]]+)\] "(\w+) (\S+) HTTP/[\d.]+" (\d+) (\d+)')


@dataclass
class Reads:
    """What the store served for one stretch of the log: GETs and bytes, tree objects and CRC objects."""

    gets: int = 0
    bytes: int = 0
    crc_gets: int = 0
    keys: frozenset[str] = frozenset()


class StoreLog:
    """RGW's request log, read from a remembered offset: what the store served since then."""

    def __init__(self, cluster: ceph_rgw.CephRgw) -> None:
        self.path = Path(cluster.dir) / "log" / "client.rgw.s3.log"
        self.offset = self.path.stat().st_size

    def mark(self) -> None:
        time.sleep(0.3)  # RGW writes its log lines a moment after answering
        self.offset = self.path.stat().st_size

    def since(self, prefix: str, until: float | None = None) -> Reads:
        """Given the tree's key prefix, return what the store served since the last mark.

        With `until` (a time.time()), only requests that started before it count.
        """
        time.sleep(0.3)
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode("utf-8", "replace")
        reads, keys = Reads(), set()
        for stamp, method, target, status, size in BEAST.findall(text):
            path = unquote(urlsplit(target).path)
            if method != "GET" or not status.startswith("2"):
                continue
            if until is not None and datetime.strptime(
                    stamp, "%d/%b/%Y:%H:%M:%S.%f %z").timestamp() > until:
                continue
            key = path.removeprefix(f"/{BUCKET}/")
            if key.startswith(CRC_PREFIX):
                reads.crc_gets += 1
            elif key.startswith(prefix) and key != path:
                reads.gets += 1
                reads.bytes += int(size)
                keys.add(key)
        reads.keys = frozenset(keys)
        return reads


# --- the store and the tree ----------------------------------------------------------------


@contextmanager
def store(directory: str | None) -> Iterator[ceph_rgw.CephRgw]:
    """Given --store, yield that running cluster, else start one in a temporary folder (stopped after)."""
    if directory is not None:
        yield ceph_rgw.load(Path(directory))
        return
    with tempfile.TemporaryDirectory(prefix="zipserve-bench-ceph-") as tmp:
        cluster = ceph_rgw.start(Path(tmp), die_with_parent=True)
        try:
            yield cluster
        finally:
            ceph_rgw.stop(Path(tmp))


def upload(cluster: ceph_rgw.CephRgw, tree: Tree, prefix: str) -> None:
    """Given a tree, put its files under prefix in the bench bucket, unless they are there already."""
    s3 = cluster.client(max_pool_connections=16)
    try:
        if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket=BUCKET)
        present = sum(obj["Size"] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix) for obj in page.get("Contents", []))
        if present == tree.bytes:
            return
        files = trees.files_of(tree.path)
        started = time.monotonic()

        def put(path: Path) -> None:
            key = prefix + path.relative_to(tree.path).as_posix()
            s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, files))
        print(f"uploaded {len(files)} files, {tree.bytes / MB:.0f} MB in"
              f" {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        s3.close()


def clear_crcs(cluster: ceph_rgw.CephRgw) -> int:
    """Delete the shared CRC objects (so a resume starts cold); return how many there were."""
    s3 = cluster.client()
    try:
        keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=CRC_PREFIX) for obj in page.get("Contents", [])]
        for i in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k}
                                                                 for k in keys[i:i + 1000]]})
        return len(keys)
    finally:
        s3.close()


def crc_count(cluster: ceph_rgw.CephRgw) -> int:
    s3 = cluster.client()
    try:
        return sum(page.get("KeyCount", 0) for page in s3.get_paginator(
            "list_objects_v2").paginate(Bucket=BUCKET, Prefix=CRC_PREFIX))
    finally:
        s3.close()


# --- servers and clients -------------------------------------------------------------------


def serve_cmd(root: str, port: int, cluster: ceph_rgw.CephRgw | None, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "zipserve", "serve", root, "--port", str(port),
           "--no-crc-cache", *extra]
    if cluster is not None:
        cmd += ["--s3-endpoint", cluster.endpoint]
    return cmd


@contextmanager
def zipserve(root: str, cluster: ceph_rgw.CephRgw, log: Path, *extra: str) -> Iterator[Server]:
    port = free_port()
    os.environ.update(cluster.env())  # the usual credential chain: the server inherits these
    with running(serve_cmd(root, port, cluster if root.startswith("s3://") else None, *extra),
                 port, log, ready="/healthz") as server:
        yield server


def curl(url: str, out: str = "/dev/null", *extra: str) -> tuple[int, float, float]:
    """Given a URL, download it; return (bytes, seconds, seconds to the first byte)."""
    done = subprocess.run(["curl", "-sS", "--fail", "-o", out, *extra, "-w",
                           "%{size_download} %{time_total} %{time_starttransfer}",
                           "--max-time", f"{TIMEOUT:.0f}", url],
                          capture_output=True, text=True, timeout=TIMEOUT + 10, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"curl {url}: exit {done.returncode}: {done.stderr.strip()}")
    size, total, first = done.stdout.split()
    return int(size), float(total), float(first)


def cut_download(url: str, out: Path, stop: int) -> str:
    """Given an archive URL, write its first `stop` bytes to out, then hang up; return its ETag."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request("GET", parts.path + "?" + parts.query)
        response = conn.getresponse()
        etag = response.getheader("ETag") or ""
        with open(out, "wb") as f:
            left = stop
            while left:
                data = response.read(min(MIB, left))
                if not data:
                    raise RuntimeError("the archive ended before the cut")
                f.write(data)
                left -= len(data)
    finally:
        conn.close()  # mid-body: the server sees the client go away
    return etag


# --- the cases -----------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    source: str
    mb_s: float
    peak_mib: float
    reads: Reads | None


TARGETS = {"zip-store": "/archive?path=.&format=zip&compression=store&name=t",
           "tar": "/archive?path=.&format=tar&name=t",
           "tar.gz": "/archive?path=.&format=tar.gz&name=t"}


def throughput(cluster: ceph_rgw.CephRgw, tree: Tree, prefix: str, log: StoreLog,
               repeat: int, work: Path) -> list[Row]:
    """Given the tree on disk and in the store, stream each case from both; return a row each."""
    rows: list[Row] = []
    sources = {"local disk": str(tree.path), "S3 (Ceph RGW)": f"s3://{BUCKET}/{prefix}"}
    for case in ("zip-store", "tar", "tar.gz"):
        for source, root in sources.items():
            trees.warm(tree.path)
            with zipserve(root, cluster, work / "server.log") as server:
                runs: list[tuple[str, float, Reads]] = []
                for attempt in range(repeat + (1 if case == "zip-store" else 0)):
                    log.mark()
                    size, seconds, _ = curl(server.url + TARGETS[case])
                    label = case if case != "zip-store" else (
                        "zip-store, CRCs cold" if attempt == 0 else "zip-store, CRCs warm")
                    runs.append((label, tree.bytes / seconds / MB, log.since(prefix)))
                peak = server.peak_mib()
            for label in dict.fromkeys(label for label, _, _ in runs):
                best = max((r for r in runs if r[0] == label), key=lambda r: r[1])
                rows.append(Row(label, source, best[1], peak,
                                best[2] if source.startswith("S3") else None))
            print(f"  {case} from {source}: done", file=sys.stderr)
    return rows


@dataclass
class Resume:
    shared: bool
    identical: bool
    cut: int
    total: int
    first_byte_s: float
    seconds: float
    reads: Reads
    first: Reads  # what the store served B before B's first byte
    before_cut: int  # files that lie wholly before the cut, read by B
    crc_objects: int


def resume(cluster: ceph_rgw.CephRgw, tree: Tree, prefix: str, log: StoreLog, work: Path,
           reference: str, shared: bool) -> Resume:
    """Cut a stored ZIP on server A at half, resume it on a cold server B; return what B read."""
    root = f"s3://{BUCKET}/{prefix}"
    extra = ("--s3-crc-prefix", CRC_PREFIX) if shared else ()
    clear_crcs(cluster)
    out = work / "resumed.zip"
    with zipserve(root, cluster, work / "server-a.log", *extra) as a:
        total = int(subprocess.run(["curl", "-sSI", a.url + TARGETS["zip-store"]],
                                   capture_output=True, text=True, check=True
                                   ).stdout.lower().split("content-length:")[1].split()[0])
        cut = total // 2
        etag = cut_download(a.url + TARGETS["zip-store"], out, cut)
        # A's CRC writes run in the background: wait (bounded) until they stop coming.
        last, stable = -1, 0
        for _ in range(300):
            count = crc_count(cluster) if shared else 0
            stable = stable + 1 if count == last else 0
            last = count
            if stable >= 3:
                break
            time.sleep(0.2)
    with zipserve(root, cluster, work / "server-b.log", *extra) as b:
        log.mark()
        pinned = f"{b.url}{TARGETS['zip-store']}&etag={etag.strip(chr(34))}"
        started = time.time()
        with first_growth(out) as grown:
            _, seconds, _ = curl(pinned, str(out), "-C", "-")
        first = grown[0] - started
        reads, before_first = log.since(prefix), log.since(prefix, until=grown[0])
    identical = hashlib.sha256(out.read_bytes()).hexdigest() == reference
    before = before_cut(root, cluster, cut)
    return Resume(shared, identical, cut, total, first, seconds, reads, before_first,
                  len(reads.keys & before), last if shared else 0)


@contextmanager
def first_growth(path: Path) -> Iterator[list[float]]:
    """Given a partial download, yield a list that gets the time.time() its file first grows.

    curl's time_starttransfer is the first byte of the headers, which the server sends
    before reading anything; the first body byte is when the file grows.
    """
    size, found, done = path.stat().st_size, [float("inf")], threading.Event()

    def watch() -> None:
        while not done.is_set():
            if path.stat().st_size > size:
                found[0] = time.time()
                return
            time.sleep(0.0005)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield found
    finally:
        done.set()
        watcher.join()


def before_cut(root: str, cluster: ceph_rgw.CephRgw, cut: int) -> frozenset[str]:
    """Given the served root and a cut offset, return the keys whose bytes all lie before it."""
    from zipserve.service import Service
    from zipserve.settings import Settings

    service = Service(Settings(root=root, crc_cache=None,
                               source_options={"s3_endpoint": cluster.endpoint}))
    try:
        plan = service.archive(["."], "zip", compression="store")
        assert plan.layout is not None
        prefix = root.removeprefix(f"s3://{BUCKET}/")
        return frozenset(prefix + plan.entries[p.index].node.shown for p in plan.layout.pieces
                         if p.kind == "data" and p.start + p.size <= cut)
    finally:
        service.close()


def whole_sha256(cluster: ceph_rgw.CephRgw, prefix: str, work: Path) -> str:
    out = work / "whole.zip"
    with zipserve(f"s3://{BUCKET}/{prefix}", cluster, work / "server.log") as server:
        curl(server.url + TARGETS["zip-store"], str(out))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    out.unlink()
    return digest


# --- report --------------------------------------------------------------------------------


def report(tree: Tree, rows: list[Row], resumes: list[Resume]) -> None:
    print(f"\nTree: {tree.files} files, {tree.bytes / MB:.0f} MB (mixed, ~1 MiB files)")
    print(f"\n{'case':22} {'source':15} {'MB/s':>7} {'peak RSS':>9} {'store GETs':>11}"
          f" {'store MB':>9}")
    for r in rows:
        gets = f"{r.reads.gets:,}" if r.reads else "-"
        mb = f"{r.reads.bytes / MB:,.0f}" if r.reads else "-"
        print(f"{r.case:22} {r.source:15} {r.mb_s:7.0f} {r.peak_mib:8.0f}M {gets:>11} {mb:>9}")
    print("\nResume of a stored ZIP cut at half on server A, finished by curl -C - on a cold"
          " server B:")
    print(f"{'CRCs':26} {'same bytes':>10} {'first byte':>10} {'MB read before it':>17}"
          f" {'seconds':>8} {'GETs':>6} {'MB read':>8} {'files before cut read':>21}"
          f" {'CRC GETs':>8}")
    for r in resumes:
        label = f"shared ({r.crc_objects} CRC objects)" if r.shared else "not shared"
        print(f"{label:26} {'yes' if r.identical else 'NO':>10} {r.first_byte_s:9.3f}s"
              f" {r.first.bytes / MB:17,.1f} {r.seconds:7.2f}s {r.reads.gets:6,}"
              f" {r.reads.bytes / MB:8,.0f} {r.before_cut:21,} {r.reads.crc_gets:8,}")
    print(f"(the cut is at {resumes[0].cut / MB:.0f} MB of {resumes[0].total / MB:.0f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 128 MiB tree instead of 1 GiB")
    ap.add_argument("--dir", type=Path, default=trees.DEFAULT_DIR)
    ap.add_argument("--store", default=None, help="a running tests/s3/ceph_rgw.py cluster folder")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    mib = 128 if args.quick else 1024
    tree = trees.mixed_tree(args.dir, mib=mib)
    prefix = f"mixed-{mib}M/"
    work = Path(tempfile.mkdtemp(prefix="zipserve-bench-s3-"))
    with store(args.store) as cluster:
        upload(cluster, tree, prefix)
        log = StoreLog(cluster)
        rows = throughput(cluster, tree, prefix, log, args.repeat, work)
        reference = whole_sha256(cluster, prefix, work)
        resumes = [resume(cluster, tree, prefix, log, work, reference, shared)
                   for shared in (True, False)]
        clear_crcs(cluster)
    report(tree, rows, resumes)
    print(f"\nlogs: {work}")


if __name__ == "__main__":
    main()
