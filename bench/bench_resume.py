"""Resuming a big stored ZIP: time to first byte and bytes read, warm vs cold CRC cache.

    python bench/bench_resume.py [--quick] [--mib 2048] [--repeat 3] [--deflated]
    python bench/bench_resume.py --big-file 512 [--level 6]

Over HTTP on 127.0.0.1, against a stored ZIP of the mixed tree (bench/trees.py):

- a Range from 90% to the end with the CRC cache warm and cold: time to first
  byte (curl's time_starttransfer) and what the server read (rchar of
  /proc/<pid>/io), beside a full download of the same archive;
- the cost of the first full download of stored data (every CRC still to
  learn) against a warm one and against `tar cf - | cat`.

With --deflated, the deflated ZIP (compression=auto) of the same tree instead:
its first, unsized download; HEAD ?prepare=1 on a fresh server (deflates it
all, sends nothing); then, sized, a full download and Ranges from 50% and 90%
to the end (each deflates again only from the entry holding its first byte).

With --big-file, a deflated ZIP of one big text file: a resume inside it
deflates again from the block holding its first byte.

Medians of --repeat runs; the page cache is warmed before each timed run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream import free_port, running, timed_shell  # noqa: E402
from trees import DEFAULT_DIR, mixed_tree, text_pool, warm  # noqa: E402

MB = 1e6


def rchar(pid: int) -> int:
    """Given a pid, return the bytes it has read through read-like calls so far."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar")


def curl(url: str, start: int | None = None) -> tuple[int, float, float]:
    """Given a URL (and a first byte), download to /dev/null; return (bytes, first-byte s, total s)."""
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} "
            "%{time_starttransfer} %{time_total}", "--max-time", "600", url]
    if start is not None:
        args[1:1] = ["-r", f"{start}-"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=700, check=True).stdout
    code, size, first, total = out.split()
    if code not in ("200", "206"):
        raise RuntimeError(f"{url}: HTTP {code}")
    return int(size), float(first), float(total)


def measured(pid: int, url: str, start: int | None = None) -> tuple[int, float, float, int]:
    """Given the server and a request, return (bytes, first-byte s, total s, bytes the server read)."""
    before = rchar(pid)
    size, first, total = curl(url, start)
    return size, first, total, rchar(pid) - before


def run(mib: int, repeat: int) -> None:
    tree = mixed_tree(DEFAULT_DIR, mib)
    root = tree.path
    url_path = "/archive?path=.&format=zip&compression=store"
    rows: dict[str, list[tuple[int, float, float, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            cache = Path(tmp) / f"crc-{r}.sqlite3"
            port = free_port()
            cmd = [sys.executable, "-m", "zipserve", "serve", str(root), "--port", str(port),
                   "--crc-cache", str(cache)]
            with running(cmd, port, Path(tmp) / "server.log", ready="/healthz") as srv:
                url = f"http://127.0.0.1:{port}{url_path}"
                total = int(subprocess.run(["curl", "-sI", url], capture_output=True, text=True,
                                           check=True).stdout.lower().split("content-length:")[1]
                            .split()[0])
                start = total * 9 // 10
                warm(root)
                rows.setdefault("Range 90%-end, cold CRC cache", []).append(
                    measured(srv.proc.pid, url, start))
            port = free_port()
            cmd[cmd.index("--port") + 1] = str(port)
            cache.unlink()
            for suffix in ("-wal", "-shm"):
                Path(str(cache) + suffix).unlink(missing_ok=True)
            with running(cmd, port, Path(tmp) / "server.log", ready="/healthz") as srv:
                url = f"http://127.0.0.1:{port}{url_path}"
                warm(root)
                rows.setdefault("full download, cold CRC cache", []).append(
                    measured(srv.proc.pid, url))
                warm(root)
                rows.setdefault("full download, warm CRC cache", []).append(
                    measured(srv.proc.pid, url))
                warm(root)
                rows.setdefault("Range 90%-end, warm CRC cache", []).append(
                    measured(srv.proc.pid, url, start))
        tar_s = []
        for _ in range(repeat):
            warm(root)
            tar_s.append(timed_shell(f"tar cf - -C {root} . | cat > /dev/null", 600))
    print(f"\nstored ZIP of the mixed tree: {tree.files} files, {tree.bytes / MB:,.0f} MB "
          f"(archive {total / MB:,.0f} MB); medians of {repeat}\n")
    print(f"{'case':34} {'sent MB':>9} {'first byte s':>12} {'total s':>8} {'MB/s':>7} "
          f"{'server read MB':>15} {'read/sent':>9}")
    for name, runs in rows.items():
        size = statistics.median(r[0] for r in runs)
        first = statistics.median(r[1] for r in runs)
        secs = statistics.median(r[2] for r in runs)
        read = statistics.median(r[3] for r in runs)
        print(f"{name:34} {size / MB:9,.0f} {first:12.3f} {secs:8.2f} {size / MB / secs:7,.0f} "
              f"{read / MB:15,.0f} {read / max(size, 1):9.2f}")
    tar = statistics.median(tar_s)
    print(f"{'tar cf - | cat (reference)':34} {tree.bytes / MB:9,.0f} {'':>12} {tar:8.2f} "
          f"{tree.bytes / MB / tar:7,.0f}")
    cold = statistics.median(r[2] for r in rows["full download, cold CRC cache"])
    warm_s = statistics.median(r[2] for r in rows["full download, warm CRC cache"])
    print(f"\nfirst (cold) full download: {cold / warm_s:.2f}x the time of a warm one, "
          f"{cold / tar:.2f}x tar cf - | cat")


def head_time(url: str) -> tuple[float, int]:
    """Given a URL, send HEAD; return (seconds, its Content-Length or 0)."""
    started = time.monotonic()
    out = subprocess.run(["curl", "-sSI", "--max-time", "900", url], capture_output=True, text=True,
                         timeout=1000, check=True).stdout.lower()
    length = out.split("content-length:")[1].split()[0] if "content-length:" in out else "0"
    return time.monotonic() - started, int(length)


def run_deflated(mib: int, repeat: int) -> None:
    """Given a tree size and a count, print the deflated ZIP's resume table (see the module's doc)."""
    tree = mixed_tree(DEFAULT_DIR, mib)
    rows: dict[str, list[tuple[int, float, float, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            for fresh in ("download", "prepare"):
                port = free_port()
                cmd = [sys.executable, "-m", "zipserve", "serve", str(tree.path), "--port", str(port),
                       "--crc-cache", str(Path(tmp) / f"{fresh}-{r}" / "crc.sqlite3")]
                with running(cmd, port, Path(tmp) / "server.log", ready="/healthz") as srv:
                    url = f"http://127.0.0.1:{port}/archive?path=.&format=zip"
                    warm(tree.path)
                    if fresh == "download":
                        rows.setdefault("first download (unsized, learns)", []).append(
                            measured(srv.proc.pid, url))
                        continue
                    before = rchar(srv.proc.pid)
                    secs, total = head_time(url + "&prepare=1")
                    rows.setdefault("HEAD ?prepare=1 (sends nothing)", []).append(
                        (0, secs, secs, rchar(srv.proc.pid) - before))
                    for name, start in (("full download, sized", None), ("Range 50%-end, sized", total // 2),
                                        ("Range 90%-end, sized", total * 9 // 10)):
                        warm(tree.path)
                        rows.setdefault(name, []).append(measured(srv.proc.pid, url, start))
    print(f"\ndeflated ZIP (auto) of the mixed tree: {tree.files} files, {tree.bytes / MB:,.0f} MB "
          f"(archive {total / MB:,.0f} MB); medians of {repeat}\n")
    table(rows)


def run_big(mib: int, repeat: int, level: int) -> None:
    """Given a size, a count and a level, print what a resume inside one big deflated file costs."""
    folder = DEFAULT_DIR / "trees" / f"bigtext-{mib}M"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        pool = text_pool(3)
        with open(folder / "big.log", "wb") as out:
            for i in range(mib * 4):  # quarter-MiB slices of the pool, shifted so none repeats exactly
                at = (i * 7919 * 1024) % (len(pool) - 262_144)
                out.write(pool[at:at + 262_144])
    rows: dict[str, list[tuple[int, float, float, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            port = free_port()
            cmd = [sys.executable, "-m", "zipserve", "serve", str(folder), "--port", str(port),
                   "--crc-cache", str(Path(tmp) / f"{r}" / "crc.sqlite3"), "--level", str(level)]
            with running(cmd, port, Path(tmp) / "server.log", ready="/healthz") as srv:
                url = f"http://127.0.0.1:{port}/archive?path=.&format=zip&compression=deflate"
                warm(folder)
                rows.setdefault("first download (unsized, learns)", []).append(measured(srv.proc.pid, url))
                total = head_time(url)[1]
                for name, start in (("full download, sized", None), ("Range 50%-end, sized", total // 2),
                                    ("Range 90%-end, sized", total * 9 // 10),
                                    ("Range 99%-end, sized", total * 99 // 100)):
                    warm(folder)
                    rows.setdefault(name, []).append(measured(srv.proc.pid, url, start))
    print(f"\ndeflated ZIP of one {mib} MiB text file, level {level} (archive {total / MB:,.0f} MB); "
          f"medians of {repeat}\n")
    table(rows)


def table(rows: dict[str, list[tuple[int, float, float, int]]]) -> None:
    """Given runs by case, print sent MB, first byte, total time, MB/s and what the server read."""
    print(f"{'case':34} {'sent MB':>9} {'first byte s':>12} {'total s':>8} {'MB/s':>7} "
          f"{'server read MB':>15}")
    for name, runs in rows.items():
        size = statistics.median(r[0] for r in runs)
        first = statistics.median(r[1] for r in runs)
        secs = statistics.median(r[2] for r in runs)
        read = statistics.median(r[3] for r in runs)
        print(f"{name:34} {size / MB:9,.0f} {first:12.3f} {secs:8.2f} {size / MB / secs:7,.0f} "
              f"{read / MB:15,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB tree, one run")
    parser.add_argument("--mib", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--deflated", action="store_true", help="the deflated ZIP, warmed")
    parser.add_argument("--big-file", type=int, default=0, metavar="MIB",
                        help="a deflated ZIP of one text file of MIB MiB, warmed, resumed inside it")
    parser.add_argument("--level", type=int, default=6, help="with --big-file")
    args = parser.parse_args()
    if args.quick:
        args.mib, args.repeat = 256, 1
    started = time.monotonic()
    if args.big_file:
        run_big(args.big_file, args.repeat, args.level)
    else:
        (run_deflated if args.deflated else run)(args.mib, args.repeat)
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
