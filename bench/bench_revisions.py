"""This checkout against an earlier revision, side by side in one run: MB/s per format, and the ratio.

    python bench/bench_revisions.py --base 0ed1de8 [--rounds 5] [--mixed-mib 512] [--small-files 10000]

Both revisions serve the same trees (bench/trees.py) from their own
`python -m zipserve serve` on 127.0.0.1; each round fetches every case from
each server in turn with curl to /dev/null, right after warming the tree, so
drift in the machine's speed hits both alike. The table gives medians and the
median of each round's ratio (this / base).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trees

HERE = Path(__file__).resolve().parent.parent
CASES = [("ZIP stored", "/archive/{t}.zip?compression=store"), ("tar", "/archive/{t}.tar"),
         ("ZIP deflate", "/archive/{t}.zip?compression=deflate"), ("tar.gz", "/archive/{t}.tar.gz"),
         ("tar.zst", "/archive/{t}.tar.zst")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(checkout: Path, root: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Given a checkout and a root, start its server; return the process and its URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(checkout), "XDG_CACHE_HOME": str(tmp / f"cache-{port}")}
    proc = subprocess.Popen([sys.executable, "-m", "zipserve", "serve", str(root), "--port", str(port)],
                            cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if subprocess.run(["curl", "-sf", "-o", "/dev/null", url + "/healthz"]).returncode == 0:
            return proc, url
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{checkout}: server did not start")


def fetch(url: str) -> float:
    """Given a URL, download it to /dev/null; return MB/s."""
    out = subprocess.run(["curl", "-sf", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url],
                         capture_output=True, text=True, timeout=600, check=True).stdout.split()
    return float(out[0]) / float(out[1]) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=trees.DEFAULT_DIR)
    ap.add_argument("--mixed-mib", type=int, default=512)
    ap.add_argument("--small-files", type=int, default=10_000)
    args = ap.parse_args()
    tree_list = [trees.mixed_tree(args.dir, args.mixed_mib).path,
                 trees.small_tree(args.dir, args.small_files).path]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with trees.revision(args.base, tmp / "base") as base:
            for tree in tree_list:
                run_tree(tree, {"base": base, "this": HERE}, tmp, args.rounds)
    return 0


def run_tree(tree: Path, checkouts: dict[str, Path], tmp: Path, rounds: int) -> None:
    """Given a tree, time every case on both revisions, alternating; print the table."""
    servers = {name: start(path, tree.parent, tmp) for name, path in checkouts.items()}
    speeds: dict[tuple[str, str], list[float]] = {}
    try:
        for _, url in servers.values():  # untimed first pass: CRC caches, imports
            for _, path in CASES:
                fetch(url + path.format(t=tree.name))
        for _ in range(rounds):
            for case, path in CASES:
                trees.warm(tree)
                for name, (_, url) in servers.items():
                    speeds.setdefault((case, name), []).append(fetch(url + path.format(t=tree.name)))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)
    print(f"\n{tree.name}: median MB/s of {rounds} rounds")
    print(f"{'case':<14} {'base':>8} {'this':>8} {'this/base':>10}")
    for case, _ in CASES:
        b, t = speeds[(case, "base")], speeds[(case, "this")]
        ratio = statistics.median(x / y for x, y in zip(t, b, strict=True))
        print(f"{case:<14} {statistics.median(b):8.0f} {statistics.median(t):8.0f} {ratio:10.2f}")


if __name__ == "__main__":
    sys.exit(main())
