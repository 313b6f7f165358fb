"""Stream archives over HTTP on 127.0.0.1 and compare, in one run, with nginx, zipstream-ng, tar and cat.

Run: python bench/bench_stream.py [--quick] [--dir /tmp/zipserve-bench] [--repeat 3]
     [--chunk-sizes 256K,4M]

Two trees (made once under --dir by bench/trees.py, reused after): a mixed one
of ~1 MiB files (half log text, half random) and one of 1-8 KiB files.  Each
is streamed by zipserve as stored ZIP (CRC cache cold, then warm), ZIP with
default compression, tar and tar.gz; beside it, in the same run: nginx
sending one file of the same bytes with sendfile, zipstream-ng's own
`zipserver` zipping the same folder, `tar cf - | cat`, and `cat` of every
small file.  The client is curl writing to /dev/null.

MB/s are 10^6 bytes of file data (the selection's files, not the archive's
bytes) per second, median of the repeats; the page cache is warmed right
before every timed run.  Ratios are same-run ratios of medians; the reference
of each table (nginx, cat) is timed both before and after zipserve's cases,
its median taken over both, so a machine whose speed drifts during the run
does not favour one side.  Peak RSS is
the server's VmHWM: each zipserve case gets a fresh server, so it is that
case's peak.  CPU s/GB is the server's CPU time (user + system) per GB of file
data, "(loop)" the part spent on zipserve's event-loop thread: on a shared or
busy machine it says more than MB/s.  Memory: a stream of an archive 1x and
4x as large, and 1 vs 50 concurrent slow (rate-limited) clients.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trees
from trees import MIB, Tree

MB = 1_000_000
READY_TIMEOUT = 30.0
CONCURRENT = 50
SLOW_RATE = "4M"  # curl --limit-rate for the concurrency test: slow clients keep all streams open
RSS_ONE_STREAM_MIB = 100.0
RSS_PER_STREAM_MIB = 5.0
RSS_FLAT_GROWTH_MIB = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status_mib(pid: int, field_name: str) -> float:
    """Given a pid and a /proc status field (VmRSS, VmHWM), return its value in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(f"{field_name} not in /proc/{pid}/status")


@dataclass
class Server:
    """A server process started by this bench; always stopped by it."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_mib(self) -> float:
        return proc_status_mib(self.proc.pid, "VmHWM")

    def rss_mib(self) -> float:
        return proc_status_mib(self.proc.pid, "VmRSS")

    def cpu_seconds(self) -> tuple[float, float]:
        """Return the CPU seconds (user + system) used so far: by the whole process, by its main thread.

        For zipserve the main thread runs the event loop, the others read and encode.
        """
        pid = self.proc.pid
        return cpu_of(f"/proc/{pid}/stat"), cpu_of(f"/proc/{pid}/task/{pid}/stat")


def cpu_of(stat_path: str) -> float:
    """Given a /proc .../stat file, return its user + system CPU seconds."""
    with open(stat_path) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextmanager
def running(cmd: Sequence[str], port: int, log: Path, ready: str = "/") -> Iterator[Server]:
    """Given a command listening on port, start it, wait until it answers, yield it; stop it on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}{ready}", log)
        yield Server(proc, port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Given a starting server, return once url answers at all; raise if it exits or stays silent."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it listens
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer {url} within {READY_TIMEOUT:.0f} s; see {log}")


def zipserve_cmd(root: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "zipserve", "serve", str(root), "--port", str(port),
            "--no-crc-cache", *extra]


def zipserver_cmd(root: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "zipstream.server", "--bind", "127.0.0.1", "--directory",
            str(root), str(port)]


def nginx_cmd(work: Path, root: Path, port: int) -> list[str]:
    """Given a scratch folder and a folder to serve, write a minimal nginx.conf; return the command."""
    work.mkdir(parents=True, exist_ok=True)
    temps = "\n".join(f"  {name}_temp_path {work}/{name};"
                      for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (work / "nginx.conf").write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 128; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
{temps}
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}
}}
""")
    return ["nginx", "-e", str(work / "error.log"), "-p", str(work), "-c",
            str(work / "nginx.conf")]


# --- clients ---------------------------------------------------------------------------------


def curl_args(url: str, timeout: float, *, form: str | None = None,
              rate: str | None = None) -> list[str]:
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
            "--max-time", f"{timeout:.0f}", url]
    if form is not None:
        args += ["--data", form]
    if rate is not None:
        args += ["--limit-rate", rate]
    return args


def parse_curl(done: subprocess.CompletedProcess[str], url: str) -> tuple[int, float]:
    """Given a finished curl, return (bytes, seconds); raise unless it was a whole 200."""
    parts = done.stdout.split()
    if done.returncode != 0 or len(parts) != 3 or parts[0] != "200":
        raise RuntimeError(f"curl {url}: exit {done.returncode}, {done.stdout!r} {done.stderr!r}")
    return int(parts[1]), float(parts[2])


def fetch(url: str, timeout: float, **kw: str) -> tuple[int, float]:
    """Given a URL, download it with curl to /dev/null; return (bytes, seconds)."""
    done = subprocess.run(curl_args(url, timeout, **kw), capture_output=True, text=True,
                          timeout=timeout + 10)
    return parse_curl(done, url)


def fetch_many(url: str, count: int, timeout: float, rate: str) -> list[int]:
    """Given a URL, download it with `count` concurrent slow curls; return each one's size."""
    procs = [subprocess.Popen(curl_args(url, timeout, rate=rate), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(count)]
    sizes = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout + 10)
            sizes.append(parse_curl(subprocess.CompletedProcess(p.args, p.returncode, out, err),
                                    url)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    return sizes


def timed_shell(command: str, timeout: float) -> float:
    """Given a shell pipeline, run it; return its wall seconds (raise if it fails)."""
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, timeout=timeout,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def children_cpu() -> float:
    """Return the CPU seconds used so far by this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured case: seconds per repeat for `source` bytes of file data."""

    key: str
    label: str
    source: int
    seconds: list[float] = field(default_factory=list)
    wire: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the server's (or pipeline's) CPU seconds per run
    loop_cpu: list[float] = field(default_factory=list)  # the server's main thread's CPU seconds
    peak: float | None = None  # server's peak RSS, MiB
    ours: bool = False

    def add(self, seconds: float, wire: int | None, cpu: float, loop_cpu: float | None = None) -> None:
        self.seconds.append(seconds)
        self.cpu.append(cpu)
        if loop_cpu is not None:
            self.loop_cpu.append(loop_cpu)
        if wire is not None:
            self.wire.append(wire)

    def merge(self, other: Row) -> None:
        """Given a later row of the same case, take its runs in."""
        self.seconds += other.seconds
        self.cpu += other.cpu
        self.loop_cpu += other.loop_cpu
        self.wire += other.wire
        if other.peak is not None:
            self.peak = max(self.peak or 0.0, other.peak)

    def mbps(self) -> float:
        return statistics.median(self.source / s for s in self.seconds) / MB

    def spread(self) -> str:
        if len(self.seconds) < 2:
            return ""
        rates = [self.source / s / MB for s in self.seconds]
        return f"{min(rates):.0f}-{max(rates):.0f}"

    def wire_mbps(self) -> float | None:
        if not self.wire:
            return None
        return statistics.median(w / s for w, s in zip(self.wire, self.seconds, strict=True)) / MB

    def cpu_per_gb(self) -> float:
        return statistics.median(self.cpu) / (self.source / 1e9)

    def loop_per_gb(self) -> float | None:
        return statistics.median(self.loop_cpu) / (self.source / 1e9) if self.loop_cpu else None


@dataclass
class Target:
    """A minimum ratio of one row's MB/s to a reference row's."""

    row: str
    ref: str
    minimum: float


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(title: str, rows: list[Row], refs: list[tuple[str, str]],
                targets: list[Target]) -> list[bool]:
    """Given rows, reference keys (key, column title) and targets, print a table; return the verdicts."""
    by_key = {r.key: r for r in rows}
    results: list[bool] = []
    width = max(len(r.label) for r in rows) + 2
    head = f"{'case':<{width}}{'MB/s':>7}{'range':>11}{'wire MB/s':>10}{'CPU s/GB':>9}{'(loop)':>7}"
    head += "".join(f"{name:>15}" for _, name in refs) + f"{'peak RSS MiB':>13}  targets"
    print(f"\n{title}\n{head}\n{'-' * len(head)}")
    for row in rows:
        wire = row.wire_mbps()
        line = f"{row.label:<{width}}{row.mbps():>7.0f}{row.spread():>11}"
        line += f"{wire:>10.0f}" if wire is not None else f"{'-':>10}"
        loop = row.loop_per_gb() if row.ours else None  # zipserve's event loop thread
        line += f"{row.cpu_per_gb():>9.2f}" + (f"{loop:>7.2f}" if loop is not None else f"{'':>7}")
        for key, _ in refs:
            ref = by_key.get(key)
            line += f"{row.mbps() / ref.mbps():>14.2f}x" if ref else f"{'-':>15}"
        line += f"{row.peak:>13.1f}" if row.peak is not None else f"{'-':>13}"
        notes = []
        for t in targets:
            if t.row == row.key and t.ref in by_key:
                ok = row.mbps() / by_key[t.ref].mbps() >= t.minimum
                results.append(ok)
                notes.append(f">={t.minimum:g}x {t.ref} {verdict(ok)}")
        if row.ours and row.peak is not None:
            ok = row.peak < RSS_ONE_STREAM_MIB
            results.append(ok)
            notes.append(f"RSS<{RSS_ONE_STREAM_MIB:.0f} {verdict(ok)}")
        print(line + "  " + ", ".join(notes))
    return results


# --- the bench -------------------------------------------------------------------------------


@dataclass
class Case:
    """One zipserve download: a row key, label and the archive's URL path and query."""

    key: str
    label: str
    suffix: str  # e.g. ".zip?compression=store"
    cold: bool = False  # fresh server per repeat: every CRC is computed on the way
    warmup: bool = False  # one untimed download first (fills the in-memory CRC cache)
    extra: tuple[str, ...] = ()  # more server options


CASES = [
    Case("zip-cold", "zipserve ZIP stored, cold CRCs", ".zip?compression=store", cold=True),
    Case("zip", "zipserve ZIP stored, warm CRCs", ".zip?compression=store", warmup=True),
    Case("tar", "zipserve tar", ".tar"),
    Case("zip-auto", "zipserve ZIP default (auto deflate)", ".zip", warmup=True),
    Case("tar.gz", "zipserve tar.gz (level 1)", ".tar.gz"),
]


def size_label(n: int) -> str:
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n // 1024} KiB"


def parse_size(text: str) -> int:
    """Given "256K", "4M" or bytes, return bytes."""
    units = {"K": 1024, "M": MIB}
    unit = units.get(text[-1:].upper(), 1)
    return int(text[:-1] if unit > 1 else text) * unit


class Bench:
    """Runs every case of one bench invocation; servers are started and stopped per case."""

    def __init__(self, base: Path, repeat: int) -> None:
        self.base, self.repeat = base, repeat
        self.root = base / "trees"  # the folder every server serves
        self.logs = base / "logs"

    def timeout(self, tree: Tree) -> float:
        return max(60.0, tree.bytes / (5 * MB))  # no case is slower than 5 MB/s

    def timed(self, row: Row, server: Server, warm: Path, url: str, timeout: float,
              **kw: str) -> None:
        """Given a row and a server, warm the page cache, download url once and add the run to the row."""
        trees.warm(warm)
        cpu, loop = server.cpu_seconds()
        size, seconds = fetch(url, timeout, **kw)
        cpu_after, loop_after = server.cpu_seconds()
        row.add(seconds, size, cpu_after - cpu, loop_after - loop)

    def ours(self, tree: Tree, case: Case, select: str | None = None) -> Row:
        """Given a tree and a case, time zipserve streaming it; return the row."""
        row = Row(case.key, case.label, tree.bytes, ours=True)
        url_path = f"/archive/{select or tree.name}{case.suffix}"
        peaks = []
        servers = self.repeat if case.cold else 1
        runs_per_server = 1 if case.cold else self.repeat
        for _ in range(servers):
            port = free_port()
            cmd = zipserve_cmd(self.root, port, *case.extra)
            with running(cmd, port, self.logs / "zipserve.log", "/healthz") as server:
                if case.warmup:
                    fetch(server.url + url_path, self.timeout(tree))
                for _ in range(runs_per_server):
                    self.timed(row, server, tree.path, server.url + url_path, self.timeout(tree))
                peaks.append(server.peak_mib())
        row.peak = max(peaks)
        return row

    def zipserver(self, tree: Tree) -> Row:
        """Given a tree, time zipstream-ng's own zipserver zipping it; return the row."""
        row = Row("zipstream-ng", "zipstream-ng zipserver (ZIP stored)", tree.bytes)
        port = free_port()
        with running(zipserver_cmd(self.root, port), port, self.logs / "zipserver.log") as server:
            for _ in range(self.repeat):
                self.timed(row, server, tree.path, server.url + "/", self.timeout(tree),
                           form=f"files={tree.name}")
            row.peak = server.peak_mib()
        return row

    def nginx(self, tree: Tree) -> Row:
        """Given a tree, time nginx sending one file of the same bytes with sendfile; return the row."""
        blob = trees.blob(tree, self.base / "nginx" / f"{tree.name}.bin")
        row = Row("nginx", "nginx sendfile, one file same bytes", tree.bytes)
        port = free_port()
        cmd = nginx_cmd(self.base / "nginx-run", blob.parent, port)
        with running(cmd, port, self.logs / "nginx.log") as server:
            for _ in range(self.repeat):
                self.timed(row, server, blob, f"{server.url}/{blob.name}", self.timeout(tree))
            row.peak = server.peak_mib()
        return row

    def shell(self, key: str, label: str, tree: Tree, command: str) -> Row:
        """Given a tree and a pipeline that reads it, time the pipeline; return the row."""
        row = Row(key, label, tree.bytes)
        for _ in range(self.repeat):
            trees.warm(tree.path)
            before = children_cpu()
            seconds = timed_shell(command, self.timeout(tree))
            row.add(seconds, None, children_cpu() - before)
        return row

    def tar_cat(self, tree: Tree) -> Row:
        cmd = f"tar cf - -C {shlex.quote(str(tree.path.parent))} {shlex.quote(tree.name)} | cat > /dev/null"
        return self.shell("tar|cat", "tar cf - | cat > /dev/null", tree, cmd)

    def cat(self, tree: Tree) -> Row:
        cmd = f"find {shlex.quote(str(tree.path))} -type f -print0 | xargs -0 cat > /dev/null"
        return self.shell("cat", "find | xargs cat > /dev/null", tree, cmd)

    def throughput(self, tree: Tree, chunk_sizes: list[int], small: bool) -> list[Row]:
        """Given a tree, return every row of its throughput table, references first."""
        reference = self.cat if small else self.nginx
        rows = [reference(tree)]
        rows += [self.tar_cat(tree), self.zipserver(tree)]
        rows += [self.ours(tree, case) for case in CASES]
        # The machine's speed drifts over a run: the reference is timed again
        # after the cases, and its median is taken over both sets of runs.
        rows[0].merge(reference(tree))
        for chunk in chunk_sizes:
            for base in ("zip", "tar"):
                case = next(c for c in CASES if c.key == base)
                tuned = Case(f"{base}@{chunk}", f"{case.label}, chunk {size_label(chunk)}",
                             case.suffix, warmup=case.warmup,
                             extra=("--chunk-size", str(chunk)))
                rows.append(self.ours(tree, tuned))
        return rows

    def one_peak(self, url_path: str, tree: Tree, warmup: bool) -> float:
        """Given an archive URL path, stream it once from a fresh server; return the server's peak MiB."""
        port = free_port()
        with running(zipserve_cmd(self.root, port), port, self.logs / "zipserve.log",
                     "/healthz") as server:
            if warmup:
                fetch(server.url + url_path, self.timeout(tree))
            trees.warm(tree.path)
            fetch(server.url + url_path, self.timeout(tree))
            return server.peak_mib()

    def flatness(self, tree: Tree) -> list[tuple[str, float, float]]:
        """Given the mixed tree, return (format, peak MiB of its first part, of the whole tree)."""
        part = f"{tree.name}/p0"
        out = []
        for label, suffix, warmup in (("tar", ".tar", False),
                                      ("ZIP stored, warm", ".zip?compression=store", True)):
            one = self.one_peak(f"/archive/{part}{suffix}", tree, warmup)
            four = self.one_peak(f"/archive/{tree.name}{suffix}", tree, warmup)
            out.append((label, one, four))
        return out

    def concurrency(self, tree: Tree) -> tuple[float, float, float]:
        """Given the mixed tree, return (idle, 1 slow stream, 50 slow streams) peak MiB of one server."""
        folder = tree.path / "p0" / "d000"
        url_path = f"/archive/{tree.name}/p0/d000.zip?compression=store"
        size = trees.measure(folder).bytes
        timeout = max(60.0, 3 * size / parse_size(SLOW_RATE))
        port = free_port()
        with running(zipserve_cmd(self.root, port), port, self.logs / "zipserve.log",
                     "/healthz") as server:
            idle = server.rss_mib()
            trees.warm(folder)
            fetch(server.url + url_path, timeout)  # fills the CRC cache
            fetch_many(server.url + url_path, 1, timeout, SLOW_RATE)
            one = server.peak_mib()
            fetch_many(server.url + url_path, CONCURRENT, timeout, SLOW_RATE)
            return idle, one, server.peak_mib()


def print_memory(flat: list[tuple[str, float, float]], conc: tuple[float, float, float],
                 tree: Tree) -> list[bool]:
    """Given the flatness and concurrency peaks, print the memory table; return the verdicts."""
    results = []
    part = tree.bytes // trees.PARTS
    print(f"\nmemory: zipserve's peak RSS (VmHWM, fresh server each)\n{'-' * 78}")
    for label, one, four in flat:
        ok = four - one <= RSS_FLAT_GROWTH_MIB
        results.append(ok)
        print(f"{label:<18} 1x ({part / MB:,.0f} MB) {one:6.1f} MiB   4x ({tree.bytes / MB:,.0f} MB)"
              f" {four:6.1f} MiB   growth {four - one:+5.1f} MiB"
              f"  (<= {RSS_FLAT_GROWTH_MIB:g}) {verdict(ok)}")
    idle, one, many = conc
    per = (many - one) / (CONCURRENT - 1)
    ok_one, ok_per = one < RSS_ONE_STREAM_MIB, per < RSS_PER_STREAM_MIB
    results += [ok_one, ok_per]
    print(f"ZIP stored, {SLOW_RATE}B/s clients: idle {idle:.1f} MiB, 1 stream {one:.1f} MiB"
          f" (< {RSS_ONE_STREAM_MIB:g}) {verdict(ok_one)}, {CONCURRENT} streams {many:.1f} MiB"
          f" -> {per:.2f} MiB per extra stream (< {RSS_PER_STREAM_MIB:g}) {verdict(ok_per)}")
    return results


def describe(tree: Tree) -> str:
    return f"{tree.files:,} files, {tree.bytes / MB:,.0f} MB ({tree.path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="128 MiB mixed tree, 2,000 small files, 1 repeat")
    parser.add_argument("--dir", type=Path, default=trees.DEFAULT_DIR,
                        help="where trees, the nginx file and logs live (reused)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per case (3)")
    parser.add_argument("--mixed-mib", type=int, default=None, help="mixed tree size (1024)")
    parser.add_argument("--small-files", type=int, default=None, help="small files (20000)")
    parser.add_argument("--chunk-sizes", default="",
                        help="also run stored ZIP and tar with these --chunk-size values, e.g. 256K,4M")
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    mixed_mib = args.mixed_mib or (128 if args.quick else 1024)
    small_count = args.small_files or (2_000 if args.quick else 20_000)
    chunks = [parse_size(c) for c in args.chunk_sizes.split(",") if c]

    base = args.dir.resolve()
    mixed = trees.mixed_tree(base, mixed_mib)
    small = trees.small_tree(base, small_count)
    print(f"bench_stream: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"median of {repeat}, MB = 10^6 bytes of file data; curl -> /dev/null on 127.0.0.1")
    bench = Bench(base, repeat)
    started = time.monotonic()

    mixed_rows = bench.throughput(mixed, chunks, small=False)
    small_rows = bench.throughput(small, chunks, small=True)
    flat = bench.flatness(mixed)
    conc = bench.concurrency(mixed)

    results = []
    fast = ["zip", "tar"] + [f"{k}@{c}" for c in chunks for k in ("zip", "tar")]
    results += print_table(f"mixed tree: {describe(mixed)}", mixed_rows,
                           [("nginx", "x nginx"), ("zipstream-ng", "x zipstream-ng")],
                           [Target(k, ref, m) for k in fast
                            for ref, m in (("nginx", 0.7), ("zipstream-ng", 4.0))])
    results += print_table(f"small files: {describe(small)}", small_rows,
                           [("cat", "x cat"), ("zipstream-ng", "x zipstream-ng")],
                           [Target(k, "cat", 0.5) for k in fast])
    results += print_memory(flat, conc, mixed)
    nginx = next(r for r in mixed_rows if r.key == "nginx")
    print(f"\nclient check: curl reads nginx at {nginx.mbps():,.0f} MB/s. "
          f"{sum(results)}/{len(results)} targets met. {time.monotonic() - started:.0f} s. "
          f"Server logs: {bench.logs}")


if __name__ == "__main__":
    main()
