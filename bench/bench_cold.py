"""The first stored ZIP (CRC cache cold) beside nginx's sendfile of the same bytes, in one run.

Run: python bench/bench_cold.py [--mixed-mib 1024] [--repeat 5] [--dir /tmp/zipserve-bench]

The mixed tree of bench/trees.py (~1 MiB files, half text, half random) as a
stored ZIP from a fresh zipserve (--no-crc-cache: every CRC is computed on the
way), then with the CRCs warm (second download from the same server), and
nginx sending one file of the same bytes with sendfile. Runs alternate
(nginx, cold, warm, nginx, ...) so drift in the shared machine's speed touches
each side alike; the page cache is warmed before every run; curl writes to
/dev/null. MB/s of file data, medians; ratios are same-run ratios of medians.
CPU s/GB is the server's CPU time (user + system) per GB of file data: on a
shared, busy machine it says more than MB/s.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import trees
from bench_stream import MB, fetch, free_port, nginx_cmd, running, zipserve_cmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mixed-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=trees.DEFAULT_DIR)
    args = parser.parse_args()
    base = args.dir.resolve()
    tree = trees.mixed_tree(base, args.mixed_mib)
    blob = trees.blob(tree, base / "nginx" / f"{tree.name}.bin")
    logs = base / "logs"
    timeout = max(60.0, tree.bytes / (5 * MB))
    runs: dict[str, list[float]] = {"nginx": [], "cold": [], "warm": []}
    cpu: dict[str, list[float]] = {"nginx": [], "cold": [], "warm": []}
    port = free_port()
    with running(nginx_cmd(base / "nginx-run", blob.parent, port), port,
                 logs / "nginx.log") as nginx:
        for _ in range(args.repeat):
            trees.warm(blob)
            before = nginx.cpu_seconds()[0]
            runs["nginx"].append(fetch(f"{nginx.url}/{blob.name}", timeout)[1])
            cpu["nginx"].append(nginx.cpu_seconds()[0] - before)
            zs_port = free_port()
            with running(zipserve_cmd(base / "trees", zs_port), zs_port, logs / "cold.log",
                         "/healthz") as ours:
                url = f"{ours.url}/archive/{tree.name}.zip?compression=store"
                for key in ("cold", "warm"):
                    trees.warm(tree.path)
                    before = ours.cpu_seconds()[0]
                    runs[key].append(fetch(url, timeout)[1])
                    cpu[key].append(ours.cpu_seconds()[0] - before)
    mbps = {k: tree.bytes / statistics.median(v) / MB for k, v in runs.items()}
    print(f"mixed tree: {tree.files:,} files, {tree.bytes / MB:,.0f} MB; median of {args.repeat}")
    print(f"{'case':<34}{'MB/s':>8}{'x nginx':>9}{'CPU s/GB':>9}   runs (s)")
    for key, label in (("nginx", "nginx sendfile, one file"), ("cold", "ZIP stored, cold CRCs"),
                       ("warm", "ZIP stored, warm CRCs")):
        spread = " ".join(f"{s:.2f}" for s in runs[key])
        per_gb = statistics.median(cpu[key]) / (tree.bytes / 1e9)
        print(f"{label:<34}{mbps[key]:>8,.0f}{mbps[key] / mbps['nginx']:>9.2f}{per_gb:>9.2f}"
              f"   {spread}")


if __name__ == "__main__":
    main()
