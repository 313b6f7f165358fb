"""Shared fixtures: sample trees, the real server on a free 127.0.0.1 port, the in-process app."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from zipserve.http.app import create_app
from zipserve.settings import Settings

# Fixed times so archives of the sample tree are reproducible.
MTIME = 1_700_000_000


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


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "root")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A real zipserve process on 127.0.0.1."""

    url: str
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(root: Path, tmp: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """Start `zipserve serve root` on a free port and wait (bounded) for /healthz."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    cmd = [sys.executable, "-m", "zipserve", "serve", str(root), "--port", str(port),
           "--crc-cache", str(tmp / "crc.sqlite3"), *args]
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
    raise RuntimeError("server did not start:\n" + log.read_text())


def stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(root: Path, *args: str, env: dict[str, str] | None = None) -> Server:
        srv = start_server(root, tmp_path, *args, env=env)
        started.append(srv)
        return srv
    yield make
    for srv in started:
        stop(srv)


@pytest.fixture
def server(tree: Path, server_factory: Callable[..., Server]) -> Server:
    return server_factory(tree)


@pytest.fixture
def client(tree: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The ASGI app in process (no socket), for header and error checks."""

    app = create_app(Settings(root=tree, crc_cache=tmp_path / "crc.sqlite3"))
    with TestClient(app, base_url="http://testserver") as c:
        yield c
