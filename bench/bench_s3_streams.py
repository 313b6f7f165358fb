"""S3 streams, this checkout beside another revision: one client and several, MB/s and peak RSS.

Run: python bench/bench_s3_streams.py --against REV [--store DIR] [--clients 8] [--repeat 3]

Both servers serve the same prefixes of a real Ceph radosgw on 127.0.0.1
(tests/s3/ceph_rgw.py, memstore; started and stopped here, or the one already
running in --store DIR), each from its own checkout (REV in a temporary git
worktree), turn about in every round, so both meet the same load. Two trees:
"mixed" (bench/trees.py, 128 MiB of ~1 MiB files: read as whole files, a
window ahead) and "big" (4 files of 48 MiB: read as 8 MiB parts). Each server
downloads each archive once before the timed rounds (CRCs learned, store warm).

Per case: the median MB/s (10^6 bytes of archive per second, curl to
/dev/null; with several clients, all bytes over the wall time of the round)
for each side, and their ratio; then each server's peak RSS (VmHWM) over the
whole run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import trees
from bench_s3 import BUCKET, curl, store, upload
from bench_stream import Server, free_port, running
from trees import MIB, Tree

REPO = Path(__file__).resolve().parents[1]
MB = 1_000_000
BIG_FILES, BIG_SIZE = 4, 48 * MIB


def big_tree(base: Path) -> Tree:
    """Given the bench folder, return a tree of BIG_FILES random files of BIG_SIZE (made once)."""
    path = base / f"s3-big-{BIG_FILES}x{BIG_SIZE // MIB}"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for i in range(BIG_FILES):
            (tmp / f"big{i}.bin").write_bytes(os.urandom(BIG_SIZE))
        tmp.rename(path)
    return trees.measure(path)


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """Given a revision, yield a temporary checkout of it (removed after)."""
    with tempfile.TemporaryDirectory(prefix="zipserve-rev-") as tmp:
        path = Path(tmp) / "checkout"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(path),
                        rev], check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
                           check=False)


@contextmanager
def server(checkout: Path, endpoint: str, log: Path) -> Iterator[Server]:
    """Given a checkout, run its zipserve on the bench bucket (no CRC cache file: memory only)."""
    port = free_port()
    cmd = ["env", f"PYTHONPATH={checkout}", sys.executable, "-m", "zipserve", "serve",
           f"s3://{BUCKET}", "--port", str(port), "--no-crc-cache", "--s3-endpoint", endpoint]
    with running(cmd, port, log, ready="/healthz") as srv:
        yield srv


def round_mbps(url: str, clients: int) -> float:
    """Given an archive URL, download it with `clients` curls at once; return MB/s over the round."""
    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        sizes = list(pool.map(lambda _: curl(url)[0], range(clients)))
    return sum(sizes) / (time.monotonic() - started) / MB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", required=True, help="the revision to compare with (e.g. HEAD~3)")
    ap.add_argument("--store", default=None, help="a running tests/s3/ceph_rgw.py cluster folder")
    ap.add_argument("--dir", type=Path, default=trees.DEFAULT_DIR)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    mixed, big = trees.mixed_tree(args.dir, mib=128), big_tree(args.dir)
    prefixes = {"mixed": f"mixed-{mixed.bytes // MIB}", "big": big.path.name}
    with store(args.store) as cluster, ExitStack() as stack:
        os.environ.update(cluster.env())
        upload(cluster, mixed, prefixes["mixed"] + "/")
        upload(cluster, big, prefixes["big"] + "/")
        old = stack.enter_context(worktree(args.against))
        logs = args.dir / "logs"
        sides = {"this": stack.enter_context(server(REPO, cluster.endpoint, logs / "s3-this.log")),
                 args.against: stack.enter_context(server(old, cluster.endpoint,
                                                          logs / "s3-against.log"))}
        urls = {name: f"/archive/{p}.zip?compression=store" for name, p in prefixes.items()}
        for srv in sides.values():  # CRCs learned, store and pools warm
            for target in urls.values():
                curl(srv.url + target)
        cases = [(tree, n) for tree in urls for n in (1, args.clients)]
        got: dict[tuple[str, int, str], list[float]] = {}
        for _ in range(args.repeat):
            for tree, n in cases:
                for side, srv in sides.items():
                    got.setdefault((tree, n, side), []).append(round_mbps(srv.url + urls[tree], n))
        peaks = {side: srv.peak_mib() for side, srv in sides.items()}
    print(f"\nstored ZIP from Ceph RGW, median of {args.repeat}, MB/s (this / {args.against})")
    print(f"{'case':<22} {'this':>8} {args.against:>12} {'ratio':>7}")
    for tree, n in cases:
        mine = statistics.median(got[(tree, n, "this")])
        theirs = statistics.median(got[(tree, n, args.against)])
        print(f"{f'{tree}, {n} client(s)':<22} {mine:>8.0f} {theirs:>12.0f} {mine / theirs:>7.2f}")
    print(f"{'peak RSS MiB':<22} {peaks['this']:>8.0f} {peaks[args.against]:>12.0f}"
          f" {peaks['this'] / peaks[args.against]:>7.2f}")


if __name__ == "__main__":
    main()
