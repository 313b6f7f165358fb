"""Compressed archives over HTTP on 127.0.0.1 beside zipstream-ng, tar czf, pigz and zstd, in one run.

Run: python bench/bench_compress.py [--quick] [--dir /tmp/zipserve-bench] [--repeat 3]
     [--once-repeat 1] [--quiet-below 0.3] [--wait-budget 120]

The mixed tree of bench/trees.py (~1 MiB files, half log text, half random)
and its text-only half (hard links to the same text files) are each archived
by zipserve as deflated ZIP (compression=deflate, so every byte is compressed
as pigz compresses it), tar.gz and tar.zst at levels 1 and 6, fetched with
curl to /dev/null (each case from a server of its own); and, on the same files:
zipstream-ng at level 6 (a script streaming ZipStream.from_path(...,
ZIP_DEFLATED, compress_level=6) to /dev/null: one core, no HTTP),
`tar czf -`, `tar cf - | gzip -1`, `tar cf - | pigz -1` and `| pigz -6`
(both cores), `tar cf - | zstd -T0 -1` and `-7`.  Two more rows show where
the time goes: ISA-L level 1 alone deflating every 256 KiB block of the tree
held in memory on two threads (the ceiling: no reading, probing, CRC, framing
or sending), and zipserve's encoder run in a process of its own without HTTP
(Service.encoder.batches, what the server does before the socket).

MB/s are 10^6 bytes of file data per second (median of the repeats, the page
cache warmed right before every run); ratio = archive bytes / file bytes (lower
is better); CPU s = user + system seconds of the zipserve process (from
/proc/<pid>/stat), of the whole pipeline (wait4's rusage of its shell), or of
the timed part of a script; cores = CPU s / wall s; "CPU/B x" = zipstream-ng's
CPU seconds over the row's for the same bytes; peak RSS = zipserve's VmHWM or
the pipeline's largest process (the in-memory row holds the whole tree).

The machine is shared: repeats run in rounds (one run of every case, then the
next round) so a busy spell hits all cases alike; the rows marked * (the
one-core references zipstream-ng, tar czf and gzip -1, 20-50 s each on the
full tree, and the rows no target reads) run only in the first --once-repeat
rounds, so the default run ends within 15 minutes.
Before each run the bench waits (at most 10 s, and at most --wait-budget
seconds in all) until other processes use under --quiet-below cores; "others"
is the median CPU (in cores) that other processes used during the row's runs,
from /proc/stat.  A row whose "others" is high was measured on less than the
whole machine.
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trees
from trees import MTIME, Tree

MB = 1_000_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 30.0
QUIET_WAIT_MAX = 10.0  # seconds one run waits at most for the machine to be quiet
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

# The ceiling: every 256 KiB block of the tree, read into memory first (not timed), deflated by
# ISA-L level 1 with its 32 KiB dictionary on two threads, nothing else.  Prints "out s cpu".
ISAL_SCRIPT = """
import os, sys, time
from concurrent.futures import ThreadPoolExecutor
from isal import isal_zlib
B, W = 256 * 1024, 32 * 1024
paths = [os.path.join(d, f) for d, _, fs in sorted(os.walk(sys.argv[1])) for f in sorted(fs)]
data = [open(path, "rb").read() for path in paths]
jobs = [(v[i:i + B], v[max(0, i - W):i]) for v in map(memoryview, data) for i in range(0, len(v), B)]
def deflate(job):
    c = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15, zdict=job[1]) if job[1] else \
        isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
    return len(c.compress(job[0])) + len(c.flush(isal_zlib.Z_SYNC_FLUSH))
cpu, start = time.process_time(), time.perf_counter()
with ThreadPoolExecutor(2) as pool:
    out = sum(pool.map(deflate, jobs))
print(out, time.perf_counter() - start, time.process_time() - cpu)
"""

# zipserve's encoder in this process, no HTTP: what the server's body costs before sending.
IN_PROCESS_SCRIPT = """
import sys, time
from pathlib import Path
from zipserve.cli import tune_malloc
from zipserve.service import Service
from zipserve.settings import Settings
tune_malloc()
tree, fmt, compression, level = Path(sys.argv[1]), sys.argv[2], sys.argv[3] or None, sys.argv[4]
service = Service(Settings(root=tree.parent, crc_cache=None))
plan = service.archive([tree.name], fmt, compression=compression, level=level)
out, cpu, start = 0, time.process_time(), time.perf_counter()
for batch in service.encoder.batches(plan):
    out += sum(map(len, batch))
print(out, time.perf_counter() - start, time.process_time() - cpu)
service.close()
"""


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    out_bytes: int
    cpu: float  # ours: the server's or the pipeline's
    others: float  # cores used by every other process meanwhile
    peak: float  # MiB


@dataclass
class Row:
    """One case on one tree and its runs."""

    key: str
    label: str
    source: int  # bytes of file data in the tree
    runs: list[Run] = field(default_factory=list)

    def mbps(self) -> float:
        return statistics.median(self.source / r.seconds for r in self.runs) / MB

    def spread(self) -> str:
        rates = [self.source / r.seconds / MB for r in self.runs]
        return f"{min(rates):.0f}-{max(rates):.0f}" if len(rates) > 1 else ""

    def ratio(self) -> float:
        return statistics.median(r.out_bytes for r in self.runs) / self.source

    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    def cores(self) -> float:
        return statistics.median(r.cpu / r.seconds for r in self.runs)

    def others(self) -> float:
        return statistics.median(r.others for r in self.runs)

    def peak(self) -> float:
        return max(r.peak for r in self.runs)


def machine_busy() -> float:
    """Return the CPU seconds every process has used so far, from /proc/stat (no idle, no iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


def others_busy(seconds: float = 2.0) -> float:
    """Return how many cores the machine used over the next `seconds` (this bench being idle)."""
    before = machine_busy()
    time.sleep(seconds)
    return (machine_busy() - before) / seconds


class Quiet:
    """Waits before each run until other processes use fewer than `limit` cores, within a budget."""

    def __init__(self, limit: float, budget: float) -> None:
        self.limit, self.left = limit, budget

    def wait(self) -> None:
        """Wait at most QUIET_WAIT_MAX, and never past what is left of the whole bench's budget."""
        deadline = time.monotonic() + min(QUIET_WAIT_MAX, self.left)
        started = time.monotonic()
        while time.monotonic() < deadline and others_busy(1.0) > self.limit:
            pass
        self.left = max(0.0, self.left - (time.monotonic() - started))


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


@dataclass
class Measured:
    seconds: float
    out: str
    cpu: float
    peak: float  # MiB, the largest process


def run_measured(cmd: Sequence[str], timeout: float) -> Measured:
    """Given a command, run it to its end and return its wall time, stdout, CPU and peak RSS.

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
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}: {out[:200]!r}")
    return Measured(seconds, out, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


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


# --- the cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A row: zipserve over HTTP (an archive URL suffix), a shell pipeline, or a Python script.

    A pipeline reads `{src}` and writes the archive to stdout; a script gets the tree and
    `args`, and prints the archive's size (and, timing itself, its seconds and CPU seconds).
    `once` rows (the one-core references at 20-50 MB/s, and rows no target reads) run
    `--once-repeat` times, the others `--repeat`.
    """

    key: str
    label: str
    suffix: str | None = None
    command: str | None = None
    script: str | None = None
    args: tuple[str, ...] = ()
    once: bool = False


CASES = [
    Case("zipstream-ng", "zipstream-ng ZIP level 6, 1 core (no HTTP)", script=ZIPSTREAM_SCRIPT,
         once=True),
    Case("tar czf", "tar czf - (gzip -6, 1 core)", command="tar czf - {src}", once=True),
    Case("gzip -1", "tar cf - | gzip -1 (1 core)", command="tar cf - {src} | gzip -1", once=True),
    Case("pigz -1", "tar cf - | pigz -1 (2 cores)", command="tar cf - {src} | pigz -1"),
    Case("pigz -6", "tar cf - | pigz -6 (2 cores)", command="tar cf - {src} | pigz -6", once=True),
    Case("zstd -1", "tar cf - | zstd -T0 -1 (2 cores)", command="tar cf - {src} | zstd -q -T0 -1"),
    Case("zstd -7", "tar cf - | zstd -T0 -7 (2 cores)", command="tar cf - {src} | zstd -q -T0 -7",
         once=True),
    Case("isal-mem", "ISA-L 1 alone, 2 threads, in memory", script=ISAL_SCRIPT, once=True),
    Case("zip1-proc", "ZIP deflate 1 in process, no HTTP", script=IN_PROCESS_SCRIPT,
         args=("zip", "deflate", "1")),
    Case("tgz1-proc", "tar.gz 1 in process, no HTTP", script=IN_PROCESS_SCRIPT,
         args=("tar.gz", "", "1")),
    Case("zip1", "zipserve ZIP deflate, level 1", ".zip?compression=deflate&level=1"),
    Case("tgz1", "zipserve tar.gz, level 1", ".tar.gz?level=1"),
    Case("zst1", "zipserve tar.zst, level 1 (zstd 1)", ".tar.zst?level=1"),
    Case("zip6", "zipserve ZIP deflate, level 6", ".zip?compression=deflate&level=6"),
    Case("tgz6", "zipserve tar.gz, level 6", ".tar.gz?level=6"),
    Case("zst6", "zipserve tar.zst, level 6 (zstd 7)", ".tar.zst?level=6"),
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
        slack = "" if self.value == 1 else f" +{self.value - 1:.0%}"
        return (f"{self.row} ratio <= {self.ref}'s{slack}: {row.ratio():.4f} vs {ref.ratio():.4f}",
                row.ratio() <= ref.ratio() * self.value)


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
    def __init__(self, base: Path, repeat: int, once_repeat: int, quiet: Quiet) -> None:
        self.base, self.repeat, self.once_repeat, self.quiet = base, repeat, once_repeat, quiet
        self.root = base / "trees"
        self.log = base / "logs" / "bench_compress.log"

    def timeout(self, tree: Tree) -> float:
        return max(120.0, tree.bytes / (2 * MB))  # nothing here is slower than 2 MB/s

    def measured(self, tree: Tree, go: Callable[[], tuple[Measured, float]]) -> Run:
        """Given a tree and a run (returning what it measured and its client's CPU), time it.

        Waits for a quiet machine and warms the page cache first; "others" is the CPU every
        other process used meanwhile, the client (curl) counted as neither.
        """
        self.quiet.wait()
        trees.warm(tree.path)
        busy = machine_busy()
        done, client = go()
        others = (machine_busy() - busy - done.cpu - client) / done.seconds
        fields = done.out.split()
        if len(fields) == 3:  # a script that timed itself, after loading what it needs
            return Run(float(fields[1]), int(fields[0]), float(fields[2]), max(0.0, others), done.peak)
        return Run(done.seconds, int(fields[-1]), done.cpu, max(0.0, others), done.peak)

    def ours(self, tree: Tree, case: Case, server: tuple[subprocess.Popen[bytes], str]) -> Run:
        """Given a tree, a zipserve case and the case's own server, time one download."""
        proc, url = server
        cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
               f"{url}/archive/{tree.name}{case.suffix}"]

        def go() -> tuple[Measured, float]:
            before = cpu_of(proc.pid)
            got = run_measured(cmd, self.timeout(tree))
            if not got.out.startswith("200 "):
                raise RuntimeError(f"{case.key}: {got.out!r}")
            server = cpu_of(proc.pid) - before
            return Measured(got.seconds, got.out, server, vm_hwm_mib(proc.pid)), got.cpu
        return self.measured(tree, go)

    def pipeline(self, tree: Tree, case: Case) -> Run:
        """Given a tree and a pipeline or script, time one run."""
        if case.script is not None:
            cmd = [sys.executable, "-c", case.script, str(tree.path), *case.args]
        else:
            assert case.command is not None
            src = f"-C {shlex.quote(str(tree.path.parent))} {shlex.quote(tree.name)}"
            cmd = ["bash", "-o", "pipefail", "-c", case.command.format(src=src) + " | wc -c"]

        return self.measured(tree, lambda: (run_measured(cmd, self.timeout(tree)), 0.0))

    def rows(self, tree: Tree) -> list[Row]:
        """Given a tree, run every case in rounds (`once` ones only in the first); return the rows.

        Each zipserve case has a server of its own for the tree's rounds, so its peak RSS is
        that case's alone.
        """
        rows = [Row(c.key, c.label, tree.bytes) for c in CASES]
        with ExitStack() as servers:
            started = {c.key: servers.enter_context(zipserve(self.root, self.log))
                       for c in CASES if c.suffix is not None}
            for round_ in range(self.repeat):
                for case, row in zip(CASES, rows, strict=True):
                    if case.once and round_ >= self.once_repeat:
                        continue
                    run = (self.ours(tree, case, started[case.key]) if case.suffix
                           else self.pipeline(tree, case))
                    row.runs.append(run)
        return rows


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
    zs, pigz = by_key["zipstream-ng"], by_key["pigz -1"]
    most = max(len(r.runs) for r in rows)
    head = (f"{'case (* fewer runs)':<45}{'MB/s':>6}{'range':>10}{'ratio':>8}{'CPU s':>7}{'s/GB':>6}"
            f"{'cores':>6}{'others':>7}{'peak MiB':>9}{'x zs-ng':>8}{'x pigz-1':>9}{'CPU/B x':>8}")
    print(f"\n{title}\n{head}\n{'-' * len(head)}")
    for r in rows:
        label = r.label + (" *" if len(r.runs) < most else "")
        print(f"{label:<45}{r.mbps():>6.0f}{r.spread():>10}{r.ratio():>8.4f}{r.cpu():>7.1f}"
              f"{r.cpu() / (r.source / 1e9):>6.1f}{r.cores():>6.2f}{r.others():>7.2f}{r.peak():>9.1f}"
              f"{r.mbps() / zs.mbps():>7.1f}x{r.mbps() / pigz.mbps():>8.2f}x"
              f"{zs.cpu() / r.cpu():>7.2f}x", flush=True)
    verdicts = []
    for t in TARGETS:
        text, ok = t.check(by_key)
        verdicts.append(ok)
        print(f"  {'PASS' if ok else 'MISS'}  {text}", flush=True)
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="128 MiB mixed tree, 20 s of waiting for quiet in all (~3 min)")
    parser.add_argument("--dir", type=Path, default=trees.DEFAULT_DIR,
                        help="where trees and logs live (reused)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (3)")
    parser.add_argument("--once-repeat", type=int, default=1,
                        help="timed runs of the one-core references and context rows (1)")
    parser.add_argument("--mixed-mib", type=int, default=None, help="mixed tree size (1024)")
    parser.add_argument("--quiet-below", type=float, default=0.3,
                        help="before each run, wait (at most 10 s) until other processes use"
                             " fewer cores than this")
    parser.add_argument("--wait-budget", type=float, default=None,
                        help="seconds of such waiting in the whole bench (120; --quick: 20)")
    args = parser.parse_args()
    repeat = args.repeat
    once_repeat = min(repeat, args.once_repeat)
    budget = args.wait_budget if args.wait_budget is not None else 20.0 if args.quick else 120.0
    base = args.dir.resolve()
    mixed = trees.mixed_tree(base, args.mixed_mib or (128 if args.quick else 1024))
    text = text_half(mixed)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"bench_compress: {os.cpu_count()} cores, median of {repeat} runs in rounds ({once_repeat}"
          f" of the rows marked *), MB = 10^6 bytes of file data; zipserve: curl ->"
          f" /dev/null on 127.0.0.1, --compress-workers {os.cpu_count()}\nstart: {uptime}", flush=True)
    bench = Bench(base, repeat, once_repeat, Quiet(args.quiet_below, budget))
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
