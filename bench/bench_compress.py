"""Compressed archives over HTTP on 127.0.0.1 beside zipstream-ng, tar czf, pigz and zstd, in one run.

Run: python bench/bench_compress.py [--quick] [--dir /tmp/zipserve-bench] [--repeat 3]
     [--wait-load 1.0]

The mixed tree of bench/trees.py (~1 MiB files, half log text, half random)
and its text-only half (hard links to the same text files) are each archived
by zipserve as deflated ZIP (compression=deflate, so every byte is compressed
as pigz compresses it), tar.gz and tar.zst at levels 1 and 6, fetched with
curl to /dev/null; and, on the same files: zipstream-ng at level 6 (a script
streaming ZipStream.from_path(..., ZIP_DEFLATED, compress_level=6) to
/dev/null, one core, no HTTP), `tar czf -`, `tar cf - | gzip -1`,
`tar cf - | pigz -1` and `| pigz -6` (both cores), `tar cf - | zstd -T0 -1`
and `-7`.

MB/s are 10^6 bytes of file data per second (median of the repeats, the page
cache warmed right before every run); ratio = archive bytes / file bytes (lower
is better); CPU s = user + system seconds of the zipserve process (from
/proc/<pid>/stat) or of the whole pipeline (wait4's rusage of its shell);
peak RSS = zipserve's VmHWM (a fresh server per case) or the largest process
of the pipeline; "CPU/B x" = zipstream-ng's CPU seconds over the row's for the
same bytes, a figure the machine's load disturbs less than MB/s.  The machine
is shared: the 1-minute load before each run is shown, and --wait-load waits
(bounded) for a quiet machine first.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trees
from trees import MTIME, Tree

MB = 1_000_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 30.0
LOAD_WAIT_MAX = 900.0  # seconds --wait-load waits at most
RATIO_SLACK = 1.02  # "the same ratio": at most 2% more bytes than the reference

ZIPSTREAM_SCRIPT = """
import os, sys, zipfile
from zipstream import ZipStream
zs = ZipStream.from_path(sys.argv[1], compress_type=zipfile.ZIP_DEFLATED, compress_level=6)
n = 0
with open(os.devnull, "wb") as out:
    for chunk in zs:
        n += len(chunk)
        out.write(chunk)
print(n)
"""


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    out_bytes: int
    cpu: float
    load: float


@dataclass
class Row:
    """One case on one tree: its runs, and the peak RSS over them (MiB)."""

    key: str
    label: str
    source: int  # bytes of file data in the tree
    runs: list[Run] = field(default_factory=list)
    peak: float = 0.0

    def mbps(self) -> float:
        return statistics.median(self.source / r.seconds for r in self.runs) / MB

    def spread(self) -> str:
        rates = [self.source / r.seconds / MB for r in self.runs]
        return f"{min(rates):.0f}-{max(rates):.0f}" if len(rates) > 1 else ""

    def ratio(self) -> float:
        return statistics.median(r.out_bytes for r in self.runs) / self.source

    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    def load(self) -> float:
        return max(r.load for r in self.runs)


def load1() -> float:
    return os.getloadavg()[0]


def wait_for_load(limit: float | None) -> None:
    """Given a 1-minute load limit, wait (at most LOAD_WAIT_MAX) until the machine is that quiet."""
    if limit is None:
        return
    deadline = time.monotonic() + LOAD_WAIT_MAX
    while load1() > limit and time.monotonic() < deadline:
        time.sleep(10)


def cpu_of(pid: int) -> float:
    """Given a pid, return its user + system CPU seconds so far (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def vm_hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise LookupError(f"VmHWM not in /proc/{pid}/status")


def run_measured(cmd: Sequence[str], timeout: float) -> tuple[float, str, float, float]:
    """Given a command, run it to its end; return (wall seconds, stdout, CPU seconds, peak RSS MiB).

    CPU and RSS come from wait4: the process and every descendant it waited for (a shell's
    pipeline, tar's gzip).  ru_maxrss is the largest single process among them.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
    timer.start()
    try:
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}")
    return seconds, out, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


# --- zipserve over HTTP ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def zipserve(root: Path, log: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Given a root, start `zipserve serve` on a free port, yield (process, base URL), stop it."""
    port = free_port()
    cmd = [sys.executable, "-m", "zipserve", "serve", str(root), "--port", str(port),
           "--no-crc-cache", *extra]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url + "/healthz")
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"zipserve exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"zipserve did not answer {url}")


def curl(url: str, timeout: float) -> tuple[float, int]:
    """Given a URL, download it to /dev/null; return (seconds, bytes); raise unless a whole 200."""
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
           "--max-time", f"{timeout:.0f}", url]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
    seconds = time.perf_counter() - start
    code, size = (done.stdout.split() + ["", ""])[:2]
    if done.returncode != 0 or code != "200":
        raise RuntimeError(f"curl {url}: exit {done.returncode}, {done.stdout!r} {done.stderr!r}")
    return seconds, int(size)


# --- the cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ours:
    key: str
    label: str
    suffix: str  # after /archive/<tree>


OURS = [
    Ours("zip1", "zipserve ZIP deflate, level 1", ".zip?compression=deflate&level=1"),
    Ours("tgz1", "zipserve tar.gz, level 1", ".tar.gz?level=1"),
    Ours("zst1", "zipserve tar.zst, level 1 (zstd 1)", ".tar.zst?level=1"),
    Ours("zip6", "zipserve ZIP deflate, level 6", ".zip?compression=deflate&level=6"),
    Ours("tgz6", "zipserve tar.gz, level 6", ".tar.gz?level=6"),
    Ours("zst6", "zipserve tar.zst, level 6 (zstd 7)", ".tar.zst?level=6"),
]

# key, label, pipeline reading the tree (given `tar cf -` of it), writing its archive to stdout
PIPELINES = [
    ("zipstream-ng", "zipstream-ng ZIP level 6, 1 core (no HTTP)", None),
    ("tar czf", "tar czf - (gzip -6, 1 core)", "tar czf - {src}"),
    ("gzip -1", "tar cf - | gzip -1 (1 core)", "tar cf - {src} | gzip -1"),
    ("pigz -1", "tar cf - | pigz -1 (2 cores)", "tar cf - {src} | pigz -1"),
    ("pigz -6", "tar cf - | pigz -6 (2 cores)", "tar cf - {src} | pigz -6"),
    ("zstd -1", "tar cf - | zstd -T0 -1 (2 cores)", "tar cf - {src} | zstd -q -T0 -1"),
    ("zstd -7", "tar cf - | zstd -T0 -7 (2 cores)", "tar cf - {src} | zstd -q -T0 -7"),
]


@dataclass(frozen=True)
class Target:
    """A row's minimum speed-up over a reference, or its ratio at most the reference's."""

    row: str
    ref: str
    what: str  # "speed" or "ratio"
    value: float

    def check(self, rows: dict[str, Row]) -> tuple[str, bool]:
        row, ref = rows[self.row], rows[self.ref]
        if self.what == "speed":
            got = row.mbps() / ref.mbps()
            return f"{self.row} >= {self.value:g}x {self.ref}: {got:.2f}x", got >= self.value
        limit = ref.ratio() * self.value
        return (f"{self.row} ratio <= {self.ref}'s{'' if self.value == 1 else f' +{self.value - 1:.0%}'}"
                f": {row.ratio():.4f} vs {ref.ratio():.4f}", row.ratio() <= limit)


TARGETS = [
    *(t for k in ("zip1", "tgz1") for t in (
        Target(k, "zipstream-ng", "speed", 12.0),
        Target(k, "pigz -1", "speed", 5.0),
        Target(k, "gzip -1", "ratio", 1.0))),
    *(t for k in ("zip6", "tgz6") for t in (
        Target(k, "zipstream-ng", "speed", 2.5),
        Target(k, "zipstream-ng", "ratio", RATIO_SLACK))),
]


class Bench:
    def __init__(self, base: Path, repeat: int, wait_load: float | None) -> None:
        self.base, self.repeat, self.wait_load = base, repeat, wait_load
        self.root = base / "trees"
        self.log = base / "logs" / "bench_compress.log"

    def timeout(self, tree: Tree) -> float:
        return max(120.0, tree.bytes / (2 * MB))  # nothing here is slower than 2 MB/s

    def before_run(self, tree: Tree) -> float:
        wait_for_load(self.wait_load)
        trees.warm(tree.path)
        return load1()

    def ours(self, tree: Tree, case: Ours) -> Row:
        """Given a tree and a zipserve case, time it on a fresh server; return the row."""
        row = Row(case.key, case.label, tree.bytes)
        with zipserve(self.root, self.log) as (proc, url):
            target = f"{url}/archive/{tree.name}{case.suffix}"
            for _ in range(self.repeat):
                load = self.before_run(tree)
                cpu = cpu_of(proc.pid)
                seconds, size = curl(target, self.timeout(tree))
                row.runs.append(Run(seconds, size, cpu_of(proc.pid) - cpu, load))
            row.peak = vm_hwm_mib(proc.pid)
        return row

    def pipeline(self, tree: Tree, key: str, label: str, command: str | None) -> Row:
        """Given a tree and a pipeline (None: the zipstream-ng script), time it; return the row."""
        row = Row(key, label, tree.bytes)
        if command is None:
            cmd = [sys.executable, "-c", ZIPSTREAM_SCRIPT, str(tree.path)]
        else:
            src = f"-C {shlex.quote(str(tree.path.parent))} {shlex.quote(tree.name)}"
            cmd = ["bash", "-o", "pipefail", "-c", command.format(src=src) + " | wc -c"]
        for _ in range(self.repeat):
            load = self.before_run(tree)
            seconds, out, cpu, peak = run_measured(cmd, self.timeout(tree))
            row.runs.append(Run(seconds, int(out.split()[-1]), cpu, load))
            row.peak = max(row.peak, peak)
        return row

    def rows(self, tree: Tree) -> list[Row]:
        rows = [self.pipeline(tree, *p) for p in PIPELINES]
        return rows + [self.ours(tree, case) for case in OURS]


def text_half(mixed: Tree) -> Tree:
    """Given the mixed tree, return a tree of hard links to its text files only (made if missing)."""
    path = mixed.path.with_name(mixed.name + "-text")
    if not path.is_dir():
        partial = path.with_name(path.name + ".partial")
        subprocess.run(["rm", "-rf", str(partial)], check=True)
        for f in trees.files_of(mixed.path):
            if f.suffix == ".log":
                link = partial / f.relative_to(mixed.path)
                link.parent.mkdir(parents=True, exist_ok=True)
                os.link(f, link)
        for folder in sorted({p for p in partial.rglob("*") if p.is_dir()} | {partial},
                             key=lambda p: -len(p.parts)):
            os.utime(folder, (MTIME, MTIME))
        partial.rename(path)
    return trees.measure(path)


# --- the table -------------------------------------------------------------------------------


def print_table(title: str, rows: list[Row]) -> list[bool]:
    """Given a tree's rows, print them with ratios to the references and the targets; return verdicts."""
    by_key = {r.key: r for r in rows}
    zs = by_key["zipstream-ng"]
    head = (f"{'case':<44}{'MB/s':>7}{'range':>10}{'ratio':>8}{'CPU s':>8}{'CPU s/GB':>9}"
            f"{'peak MiB':>9}{'x zs-ng':>9}{'x pigz-1':>9}{'CPU/B x':>9}{'load':>6}")
    print(f"\n{title}\n{head}\n{'-' * len(head)}")
    for r in rows:
        print(f"{r.label:<44}{r.mbps():>7.0f}{r.spread():>10}{r.ratio():>8.4f}{r.cpu():>8.1f}"
              f"{r.cpu() / (r.source / 1e9):>9.2f}{r.peak:>9.1f}"
              f"{r.mbps() / by_key['zipstream-ng'].mbps():>8.1f}x"
              f"{r.mbps() / by_key['pigz -1'].mbps():>8.2f}x"
              f"{zs.cpu() / r.cpu():>8.2f}x{r.load():>6.1f}")
    verdicts = []
    for t in TARGETS:
        text, ok = t.check(by_key)
        verdicts.append(ok)
        print(f"  {'PASS' if ok else 'MISS'}  {text}")
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 MiB mixed tree, 1 repeat")
    parser.add_argument("--dir", type=Path, default=trees.DEFAULT_DIR,
                        help="where trees and logs live (reused)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per case (3)")
    parser.add_argument("--mixed-mib", type=int, default=None, help="mixed tree size (1024)")
    parser.add_argument("--wait-load", type=float, default=None,
                        help="before each run, wait (at most 15 min) until the 1-min load is this low")
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    base = args.dir.resolve()
    mixed = trees.mixed_tree(base, args.mixed_mib or (128 if args.quick else 1024))
    text = text_half(mixed)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"bench_compress: {os.cpu_count()} cores, median of {repeat}, MB = 10^6 bytes of file"
          f" data; zipserve: curl -> /dev/null on 127.0.0.1, --compress-workers {os.cpu_count()}"
          f"\nstart: {uptime}")
    bench = Bench(base, repeat, args.wait_load)
    started = time.monotonic()
    verdicts = []
    for label, tree in (("text-only half", text), ("whole mixed tree", mixed)):
        rows = bench.rows(tree)
        verdicts += print_table(f"{label}: {tree.files:,} files, {tree.bytes / MB:,.0f} MB"
                                f" ({tree.path})", rows)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\n{sum(verdicts)}/{len(verdicts)} targets met in {time.monotonic() - started:.0f} s."
          f"\nend: {uptime}")


if __name__ == "__main__":
    main()
