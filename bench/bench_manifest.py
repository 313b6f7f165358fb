"""A manifest's stored ZIP through an HTTP origin, beside the same files from disk and beside curl.

Run: python bench/bench_manifest.py [--mib 1024] [--repeat 3] [--dir /tmp/zipserve-bench]

The mixed tree (bench/trees.py: ~1 MiB files, half log text, half random) is
served by nginx on 127.0.0.1 (sendfile, no access log). One zipserve server
(root: the same tree, --allow-url the nginx origin) is given two manifests
of every file under its own path: one whose sources are the nginx URLs, one
whose sources are the paths on disk. In each round, in one run:

- zipserve, http origin: GET of the first manifest's stored ZIP link;
- zipserve, local disk: GET of the second's;
- zipserve, the folder: GET of the folder's own stored ZIP (no manifest);
- curl --parallel: curl fetching the same objects from nginx, 16 at a time.

Every client is curl writing to /dev/null. MB/s are 10^6 bytes of file data
per second; the page cache is warmed before every timed run. Peak RSS is the
zipserve server's VmHWM, reset (/proc/PID/clear_refs) before each case, and
for curl --parallel curl's own maximum RSS; CPU s/GB is the server's (or
curl's) user + system CPU time per GB of file data. The first round is shown apart:
zipserve learns the CRCs in it (with a cold CRC cache a file over 4 MiB is
read twice, once for its header); the others give medians, and ratios are
same-run ratios of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream import (  # noqa: E402
    MB,
    Server,
    fetch,
    free_port,
    nginx_cmd,
    proc_status_mib,
    running,
    zipserve_cmd,
)
from trees import DEFAULT_DIR, Tree, files_of, mixed_tree, warm  # noqa: E402

PARALLEL = 16
TIMEOUT = 900.0
Result = tuple[float, float, float]  # MB/s of file data, peak RSS in MiB, CPU seconds per GB


def manifest(tree: Tree, origin: str | None) -> dict[str, object]:
    """Given the tree and the origin's base URL (None: the files on disk), return the manifest."""
    entries = []
    for f in files_of(tree.path):
        rel = f.relative_to(tree.path).as_posix()
        entries.append({"source": f"{origin}/{rel}" if origin else rel, "name": rel})
    return {"name": "bench", "format": "zip", "compression": "store", "entries": entries}


def link(server: Server, body: dict[str, object]) -> str:
    """Given a server and a manifest, POST it; return the link's URL."""
    done = subprocess.run(["curl", "-sS", "--fail", "-H", "Content-Type: application/json",
                           "--data-binary", "@-", f"{server.url}/manifest"],
                          input=json.dumps(body), capture_output=True, text=True, check=True,
                          timeout=TIMEOUT)
    url: str = json.loads(done.stdout)["url"]
    return url


def reset_peak(pid: int) -> None:
    """Given a pid, reset its peak RSS (VmHWM) to its RSS now (Linux clear_refs, value 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def through_zipserve(server: Server, url: str, tree: Tree) -> Result:
    """Given the server and a link, download it once; return MB/s, the server's peak RSS and CPU."""
    reset_peak(server.proc.pid)
    cpu = server.cpu_seconds()[0]
    _, seconds = fetch(url, TIMEOUT)
    cpu = server.cpu_seconds()[0] - cpu
    return (tree.bytes / seconds / MB, proc_status_mib(server.proc.pid, "VmHWM"),
            cpu / (tree.bytes / 1e9))


def curl_parallel(origin: str, tree: Tree, config: Path) -> Result:
    """Given the origin, fetch every object with one curl, PARALLEL at a time; return its Result."""
    lines = [f'url = "{origin}/{f.relative_to(tree.path).as_posix()}"\noutput = "/dev/null"'
             for f in files_of(tree.path)]
    config.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    proc = subprocess.Popen(["curl", "-sS", "--no-progress-meter", "--fail", "--parallel",
                             "--parallel-max", str(PARALLEL), "-K", str(config)],
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"curl --parallel exited {proc.returncode}")
    cpu = usage.ru_utime + usage.ru_stime
    return tree.bytes / seconds / MB, usage.ru_maxrss / 1024, cpu / (tree.bytes / 1e9)


def rounds(tree: Tree, repeat: int, tmp: Path) -> dict[str, list[Result]]:
    """Given the tree, run every case `repeat` + 1 times (the first apart); return results by case."""
    web_port, port = free_port(), free_port()
    origin = f"http://127.0.0.1:{web_port}"
    results: dict[str, list[Result]] = {}
    extra = ("--allow-url", f"{origin}/", "--records", str(tmp / "records.sqlite3"),
             "--crc-cache", str(tmp / "crc.sqlite3"))
    cmd = [c for c in zipserve_cmd(tree.path, port, *extra) if c != "--no-crc-cache"]
    with running(nginx_cmd(tmp / "nginx", tree.path, web_port), web_port, tmp / "nginx.log"), \
            running(cmd, port, tmp / "zipserve.log", ready="/healthz") as server:
        cases: dict[str, Callable[[], Result]] = {}
        idle = server.rss_mib()
        web, disk = link(server, manifest(tree, origin)), link(server, manifest(tree, None))
        print(f"  zipserve RSS: {idle:.0f} MiB idle, {server.rss_mib():.0f} MiB once both "
              f"manifests are planned and stored", flush=True)
        cases["zipserve stored ZIP, http origin"] = lambda: through_zipserve(server, web, tree)
        cases["zipserve stored ZIP, local disk"] = lambda: through_zipserve(server, disk, tree)
        folder = f"{server.url}/archive?path=.&format=zip&compression=store"
        cases["zipserve stored ZIP, the folder (no manifest)"] = lambda: through_zipserve(
            server, folder, tree)
        cases[f"curl --parallel {PARALLEL}, http origin"] = lambda: curl_parallel(
            origin, tree, tmp / "curl.conf")
        for r in range(repeat + 1):
            for name, case in cases.items():
                warm(tree.path)
                got = case()
                key = name + (" (first round)" if r == 0 else "")
                results.setdefault(key, []).append(got)
                print(f"  round {r}: {name}: {got[0]:.0f} MB/s, {got[1]:.0f} MiB, "
                      f"{got[2]:.2f} CPU s/GB", flush=True)
    return results


def table(results: dict[str, list[Result]], reference: str) -> None:
    """Given the results, print the table of medians, with ratios to the reference case."""
    ref = statistics.median(r[0] for r in results[reference])
    print("\n| case | MB/s (median) | vs curl --parallel | peak RSS MiB | CPU s/GB | runs |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        speed = statistics.median(r[0] for r in rows)
        peak, cpu = max(r[1] for r in rows), statistics.median(r[2] for r in rows)
        print(f"| {name} | {speed:.0f} | {speed / ref:.2f}x | {peak:.0f} | {cpu:.2f} "
              f"| {len(rows)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mib", type=int, default=1024, help="size of the mixed tree")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds after the first")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    tree = mixed_tree(args.dir, args.mib)
    print(f"mixed tree: {tree.files} files, {tree.bytes / MB:.0f} MB; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = rounds(tree, args.repeat, Path(tmp))
    table(results, f"curl --parallel {PARALLEL}, http origin")


if __name__ == "__main__":
    main()
