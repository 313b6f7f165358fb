"""Slow request heads (slowloris): dropped after --header-timeout; downloads go on meanwhile.

Real server, real sockets, real curl. No timer is asserted: only the order of
events (the download finished while every trickler was still connected; each
trickler was dropped before it could finish its head).
"""

from __future__ import annotations

import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import TIMEOUT, Serve, need_tool, run

TRICKLERS = 500
HEADER_TIMEOUT = "4"  # seconds; a whole head at one byte a round would take ~30
ROUND = 0.25  # seconds between two bytes of each trickler
HEAD = (b"GET /archive/docs.zip HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n"
        b"X-Pad: " + b"p" * 60 + b"\r\n\r\n")


def enough_fds(needed: int) -> None:
    """Raise this process's soft limit on open files to `needed` (the server inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


@dataclass
class Tricklers:
    """Sockets that each send HEAD a byte a round; `sent[i]` is None once socket i was dropped."""

    port: int
    count: int
    socks: list[socket.socket] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    dropped_at: list[int] = field(default_factory=list)  # bytes sent when each drop was seen
    answered: int = 0  # tricklers that got any byte back (none should)
    rounds: int = 0

    def connect(self) -> None:
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
            sock.setblocking(False)
            self.socks.append(sock)
            self.sent.append(0)

    def alive(self) -> int:
        return len(self.socks) - len(self.dropped_at)

    def run(self, stop: threading.Event) -> None:
        """Trickle until every socket is dropped, HEAD is spent, or `stop` is set (bounded)."""
        with selectors.DefaultSelector() as sel:
            for n, sock in enumerate(self.socks):
                sel.register(sock, selectors.EVENT_READ, n)
            while self.alive() and self.rounds < len(HEAD) and not stop.is_set():
                for key, _ in sel.select(0):
                    self._drop(sel, key.data, answered=True)
                for n, sock in enumerate(self.socks):
                    if self.sent[n] >= 0:
                        self._send_one(sel, n, sock)
                self.rounds += 1
                stop.wait(ROUND)

    def _send_one(self, sel: selectors.BaseSelector, n: int, sock: socket.socket) -> None:
        try:
            sock.send(HEAD[self.sent[n]:self.sent[n] + 1])
            self.sent[n] += 1
        except OSError:
            self._drop(sel, n, answered=False)

    def _drop(self, sel: selectors.BaseSelector, n: int, *, answered: bool) -> None:
        sock = self.socks[n]
        if answered:
            with suppress(OSError):  # a reset: dropped without an answer
                self.answered += bool(sock.recv(64))
        sel.unregister(sock)
        self.dropped_at.append(self.sent[n])
        self.sent[n] = -1

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def test_tricklers_are_dropped_while_a_download_goes_on(
        tree: Path, server_factory: Serve, tmp_path: Path) -> None:
    need_tool("curl")
    need_tool("unzip")
    enough_fds(4 * TRICKLERS + 256)
    server = server_factory(tree, "--header-timeout", HEADER_TIMEOUT)
    tricklers = Tricklers(server.port, TRICKLERS)
    stop = threading.Event()
    thread = threading.Thread(target=tricklers.run, args=(stop,))
    try:
        tricklers.connect()
        thread.start()
        while tricklers.rounds < 2 and thread.is_alive():
            time.sleep(0.05)  # every trickler has begun its head
        out = tmp_path / "docs.zip"
        curl = subprocess.run(["curl", "-sSf", "-o", str(out), "-w", "%{time_starttransfer}",
                               server.url + "/archive/docs.zip"],
                              capture_output=True, timeout=TIMEOUT, check=True)
        alive_when_done = tricklers.alive()
        thread.join(timeout=len(HEAD) * ROUND + TIMEOUT)
    finally:
        stop.set()
        thread.join(timeout=TIMEOUT)
        tricklers.close()
    assert alive_when_done == TRICKLERS, curl.stdout  # the download did not wait for the drops
    run("unzip", "-tq", out)
    assert len(tricklers.dropped_at) == TRICKLERS  # every one was dropped ...
    assert max(tricklers.dropped_at) < len(HEAD)  # ... before its head was whole
    assert tricklers.answered == 0  # with no response begun


def test_a_connection_that_sends_nothing_is_closed(tree: Path, server_factory: Serve) -> None:
    server = server_factory(tree, "--header-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        assert hung_up(sock)


def hung_up(sock: socket.socket) -> bool:
    """Given a connected socket, wait (bounded by its timeout) and return whether the peer left silently."""
    try:
        return sock.recv(64) == b""
    except ConnectionResetError:
        return True  # dropped with a reset: as good


def test_a_slow_next_request_on_a_kept_connection_is_closed(
        tree: Path, server_factory: Serve) -> None:
    server = server_factory(tree, "--header-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):  # the whole response, head and body
            data = sock.recv(65536)
            assert data, first
            first += data
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next head, never finished
        assert hung_up(sock)


def test_a_head_sent_in_pieces_in_time_is_answered(tree: Path, server_factory: Serve) -> None:
    server = server_factory(tree, "--header-timeout", "30")
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        for piece in (b"GET /healthz HT", b"TP/1.1\r\nHost:", b" x\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(0.2)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_header_timeout_must_be_positive(tree: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "zipserve", "serve", str(tree),
                             "--header-timeout", "0"], capture_output=True, timeout=TIMEOUT)
    assert result.returncode != 0
    assert b"header-timeout" in result.stderr
