"""What the tests share besides fixtures: the sample tree, a real server process, the users' tools.

Fixtures built on these live in conftest.py; this module holds plain functions
and types, so test modules import them by name (`from tests.helpers import ...`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import zstandard

# Fixed times so archives of the sample tree are reproducible.
MTIME = 1_700_000_000
# Seconds any one request or command-line tool may take before the test fails.
TIMEOUT = 60
# The environment command-line tools run in: UTF-8 names whatever the caller's locale.
CLI_ENV = {**os.environ, "LC_ALL": "C.UTF-8"}

CI_OFF = {"", "0", "false", "no"}  # values of $CI that do not mean "this is CI"

_SAMPLE = re.compile(r'^(zipserve_\w+?)(?:\{outcome="(\w+)"\})? (\S+)$')


# --- the sample tree ------------------------------------------------------------------------------


# Debian's Chromium, as the page tests drive it through Playwright (nothing downloads a browser).
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15_000

def build_tree(root: Path) -> Path:
    """Given an empty folder, fill it with the sample tree every test reads back."""
    files = {
        "docs/readme.txt": b"hello zipserve\n" * 50,
        "docs/notes/long.txt": b"".join(b"line %d of the notes\n" % i for i in range(5000)),
        "docs/notes/empty.txt": b"",
        "photos/2024/cat.jpg": os.urandom(200_000),
        "photos/2024/dog.png": os.urandom(50_000),
        "photos/caf\u00e9 \u00fcber.txt": b"non-ASCII name\n",
        "top.txt": b"top level\n",
        "a" * 120 + "/" + "b" * 120 + ".txt": b"a long path over 100 bytes\n",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty-folder").mkdir()
    (root / "docs" / "script.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "docs" / "script.sh").chmod(0o755)
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (MTIME, MTIME))
    return root


@dataclass
class Truth:
    """What a source says of each path (relative to the served root): mtime seconds and mode."""

    mtimes: dict[str, int] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)


def local_truth(folder: Path) -> Truth:
    """Given a folder, return the mtime and mode of everything in it, as the disk has them."""
    truth = Truth()
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        st = path.stat()
        truth.mtimes[rel], truth.modes[rel] = int(st.st_mtime), st.st_mode & 0o7777
    return truth


# --- a real server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A real zipserve process on 127.0.0.1."""

    url: str
    root: Path | str  # a folder, or the s3:// URL it serves
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


# What the `serve` and `server_factory` fixtures give: (root, *serve_args, env=...) -> Server.
Serve = Callable[..., Server]


@dataclass
class Site:
    """A server, the tree it serves (a copy, for an S3 root) and what its source says of each path."""

    server: Server
    root: Path
    truth: Truth = field(default_factory=Truth)  # filled for the sample tree (see conftest.py)

    @property
    def url(self) -> str:
        return self.server.url


def start_server(root: Path | str, tmp: Path, *args: str,
                 env: dict[str, str] | None = None) -> Server:
    """Start `zipserve serve root` on a free port and wait (bounded) for /healthz.

    `root` is a folder or an s3:// URL; the log, the CRC cache and the records go in `tmp`.
    """
    port = free_port()
    log = tmp / f"server-{port}.log"
    cmd = [sys.executable, "-m", "zipserve", "serve", str(root), "--port", str(port),
           "--crc-cache", str(tmp / "crc.sqlite3"), "--records", str(tmp / "records.sqlite3"),
           *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return Server(url, root, proc, log)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait(5)
    raise RuntimeError("server did not start:\n" + log.read_text())


def stop_server(server: Server) -> None:
    """Stop a server: SIGTERM, then SIGKILL if it has not exited after a bounded wait."""
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)


# --- what a running server says and does ----------------------------------------------------------


def metrics(url: str) -> dict[str, float]:
    """Given a server URL, return its /metrics samples: name (or name:outcome) -> value."""
    out = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[m[1] + (":" + m[2] if m[2] else "")] = float(m[3])
    return out


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll check (bounded in time) until it holds; return whether it did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def rchar(server: Server) -> int:
    """Return how many bytes the server process has read so far (files, sockets, all)."""
    return _proc_field(f"/proc/{server.proc.pid}/io", "rchar:")


def rss_mib(pid: int) -> float:
    """Given a process id, return its resident memory now, in MiB."""
    return _proc_field(f"/proc/{pid}/status", "VmRSS:") / 1024


def peak_rss_mib(pid: int) -> float:
    """Given a process id, return the most resident memory it has had, in MiB."""
    return _proc_field(f"/proc/{pid}/status", "VmHWM:") / 1024


def _proc_field(path: str, name: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(name):
                return int(line.split()[1])
    raise AssertionError(f"no {name} in {path}")


# --- answers and archives -------------------------------------------------------------------------


def parse_byteranges(r: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """Given a multipart/byteranges answer, return each part's headers and body."""
    m = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", r.headers["content-type"])
    assert m, r.headers["content-type"]
    delimiter = b"--" + m[1].encode()
    body = r.content
    assert body.rstrip(b"\r\n").endswith(delimiter + b"--")
    parts = []
    for chunk in body.split(b"\r\n" + delimiter)[:-1]:
        chunk = chunk.removeprefix(delimiter)  # the first part has no CRLF before it
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode("ascii").split("\r\n"))
        parts.append(({k.lower(): v for k, v in headers.items()}, data))
    return parts


def unzstd(frame: bytes) -> bytes:
    """Given one zstd frame, return its content, read without relying on a declared size."""
    return zstandard.ZstdDecompressor().decompressobj().decompress(frame)


# --- command-line tools ---------------------------------------------------------------------------


def in_ci() -> bool:
    """Return whether $CI says this run is CI (CI=true, as CI runners set it), where every test must run."""
    return os.environ.get("CI", "").strip().lower() not in CI_OFF


def need_tool(tool: str) -> None:
    """Return if a command-line tool is installed; else skip the test, or fail it when in CI."""
    if shutil.which(tool) is not None:
        return
    if in_ci():
        pytest.fail(f"{tool} is not installed (CI is set: every test must run)", pytrace=False)
    pytest.skip(f"{tool} is not installed")


def try_run(*cmd: str | Path, cwd: Path | None = None, stdin: bytes | None = None,
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    """Run a command-line tool in CLI_ENV (bounded in time); return how it ended, whatever that was."""
    return subprocess.run([str(part) for part in cmd], input=stdin, capture_output=True,
                          timeout=timeout, env=CLI_ENV, cwd=cwd, check=False)


def run_bytes(*cmd: str | Path, cwd: Path | None = None, stdin: bytes | None = None,
              timeout: float = TIMEOUT) -> bytes:
    """Run a command-line tool in CLI_ENV; assert it succeeded; return its stdout."""
    done = try_run(*cmd, cwd=cwd, stdin=stdin, timeout=timeout)
    assert done.returncode == 0, (cmd, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def run(*cmd: str | Path, cwd: Path | None = None, stdin: bytes | None = None,
        timeout: float = TIMEOUT) -> str:
    """Run a command-line tool in CLI_ENV; assert it succeeded; return its stdout as text."""
    return run_bytes(*cmd, cwd=cwd, stdin=stdin, timeout=timeout).decode("utf-8", "replace")


class SlowClient:
    """A raw HTTP client with a small receive buffer that reads 16 KiB, then waits (~0.8 MB/s, bounded)."""

    READ, PAUSE = 16 * 1024, 0.02

    def __init__(self, port: int, path: str, stop: threading.Event) -> None:
        self.got = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.thread = threading.Thread(target=self._read, args=(stop,), daemon=True)
        self.thread.start()

    def _read(self, stop: threading.Event) -> None:
        for _ in range(10_000):
            if stop.is_set():
                break
            data = self.sock.recv(self.READ)
            if not data:
                break
            self.got += len(data)
            time.sleep(self.PAUSE)

    def close(self) -> None:
        self.thread.join(30)
        self.sock.close()
