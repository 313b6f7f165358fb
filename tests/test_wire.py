"""Bodies written to the socket from worker threads (zipserve/wire.py) against the ASGI send path."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import TIMEOUT, Server, build_tree, parse_byteranges, wait_until
from zipserve.errors import SourceChanged
from zipserve.http.wire import IOV_MAX, ClientGone, Wire, pending
from zipserve.sources.local.source import Local

MiB = 1 << 20


# --- pending: what is left to write after a partial writev (pure) --------------------------

@pytest.mark.parametrize(("sizes", "done", "left"), [
    ([3], 0, [b"abc"]),
    ([3], 2, [b"c"]),
    ([3], 3, []),
    ([3, 2], 3, [b"de"]),
    ([3, 2], 4, [b"e"]),
    ([3, 2], 5, []),
    ([1, 1, 4], 1, [b"b", b"cdef"]),
    ([1, 1, 4], 3, [b"def"]),
    ([1, 1, 4], 0, [b"a", b"b", b"cdef"]),
])
def test_pending_drops_written_bytes(sizes: list[int], done: int, left: list[bytes]) -> None:
    data = b"abcdef"
    views: list[bytes | memoryview] = []
    at = 0
    for size in sizes:
        views.append(data[at:at + size])
        at += size
    ends = [sum(sizes[:i + 1]) for i in range(len(sizes))]
    assert [bytes(v) for v in pending(views, ends, done)] == left


def test_pending_gives_at_most_iov_max_buffers_from_where_writing_stopped() -> None:
    views: list[bytes | memoryview] = [bytes([i % 256]) * 2 for i in range(3 * IOV_MAX)]
    ends = [2 * (i + 1) for i in range(len(views))]
    first = pending(views, ends, 0)
    assert len(first) == IOV_MAX and bytes(first[0]) == b"\x00\x00"
    later = pending(views, ends, 2 * IOV_MAX + 1)  # half of buffer IOV_MAX is written
    assert len(later) == IOV_MAX
    assert bytes(later[0]) == bytes([IOV_MAX % 256]) and bytes(later[1]) == bytes([(IOV_MAX + 1) % 256]) * 2


# --- a Wire on a real socket pair --------------------------------------------------------

@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)  # as uvicorn's sockets are
    yield ours, peer
    ours.close()
    peer.close()


def drain(peer: socket.socket, into: bytearray) -> threading.Thread:
    """Read peer until EOF in a thread; return the started thread."""
    def run() -> None:
        while chunk := peer.recv(1 << 16):
            into.extend(chunk)
    reader = threading.Thread(target=run)
    reader.start()
    return reader


def test_wire_sends_buffers_and_file_parts_in_order(tmp_path: Path,
                                                    pair: tuple[socket.socket, socket.socket]
                                                    ) -> None:
    ours, peer = pair
    (tmp_path / "f.bin").write_bytes(data := os.urandom(3 * MiB + 5))
    root = Local(tmp_path)
    node = root.stat(("f.bin",))
    got = bytearray()
    reader = drain(peer, got)
    wire = Wire(os.dup(ours.fileno()), chunked=False, timeout=10)
    wire.write([b"head", root.file_part(node, 7, 2 * MiB), b"mid", root.file_part(node, 0, node.size)])
    wire.close()
    ours.shutdown(socket.SHUT_WR)
    reader.join(TIMEOUT)
    assert bytes(got) == b"head" + data[7:2 * MiB] + b"mid" + data
    assert wire.sent == len(got)


def test_chunked_wire_frames_each_batch_as_one_chunk(pair: tuple[socket.socket, socket.socket]
                                                     ) -> None:
    ours, peer = pair
    got = bytearray()
    reader = drain(peer, got)
    wire = Wire(os.dup(ours.fileno()), chunked=True, timeout=10)
    wire.write([b"abc", b"", b"defgh"])
    wire.write([b""])  # nothing: no empty chunk, which would end the body
    wire.write([b"x" * 300])
    wire.close()
    ours.shutdown(socket.SHUT_WR)
    reader.join(TIMEOUT)
    assert bytes(got) == b"8\r\nabcdefgh\r\n12c\r\n" + b"x" * 300 + b"\r\n"
    assert wire.sent == 308


def test_a_file_that_shrank_stops_the_part(tmp_path: Path,
                                           pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    (tmp_path / "f.bin").write_bytes(os.urandom(MiB))
    root = Local(tmp_path)
    node = root.stat(("f.bin",))
    os.truncate(tmp_path / "f.bin", MiB // 2)
    got = bytearray()
    reader = drain(peer, got)
    wire = Wire(os.dup(ours.fileno()), chunked=False, timeout=10)
    with pytest.raises(SourceChanged):
        wire.write([root.file_part(node, 0, MiB)])
    wire.close()
    ours.shutdown(socket.SHUT_WR)
    reader.join(TIMEOUT)
    assert len(got) < MiB


def test_a_peer_that_left_raises_client_gone(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    peer.close()
    wire = Wire(os.dup(ours.fileno()), chunked=False, timeout=10)
    with pytest.raises(ClientGone):
        for _ in range(100):  # the first write may land in the buffer before the error shows
            wire.write([b"x" * 65536])
    wire.close()


def test_a_peer_that_stops_reading_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _peer = pair
    wire = Wire(os.dup(ours.fileno()), chunked=False, timeout=0.3)
    with pytest.raises(TimeoutError):
        for _ in range(10_000):  # fills both socket buffers, then waits
            wire.write([b"x" * 65536])
    wire.close()


def test_a_stopped_wire_gives_up_while_waiting(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _peer = pair
    wire = Wire(os.dup(ours.fileno()), chunked=False, timeout=60)
    failure: list[BaseException] = []

    def fill() -> None:
        try:
            for _ in range(10_000):
                wire.write([b"x" * 65536])
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            failure.append(exc)
    writer = threading.Thread(target=fill)
    writer.start()
    wire.stop.set()
    writer.join(10)  # far below the 60 s timeout: the stop flag ended the wait
    assert not writer.is_alive()
    assert failure and isinstance(failure[0], ClientGone)
    wire.close()


# --- the real server: a Wire and the ASGI send give the same bytes --------------------------

URLS = [
    "/archive/big.zip?compression=store",
    "/archive/big.zip?compression=deflate",
    "/archive/big.tar",
    "/archive/big.tar.gz",
    "/archive/big.tar.zst",
    "/archive?path=big/a.bin&path=big/sub&format=zip",
    "/files/big/a.bin",
]


@pytest.fixture(scope="module")
def servers(serve: Callable[..., Server],
            tmp_path_factory: pytest.TempPathFactory) -> tuple[Server, Server]:
    """Two servers on one tree: one sending bodies from worker threads, one through ASGI."""
    root = build_tree(tmp_path_factory.mktemp("wire") / "root")
    big = root / "big"
    (big / "sub").mkdir(parents=True)
    (big / "a.bin").write_bytes(os.urandom(5 * MiB + 3))
    (big / "sub" / "b.txt").write_bytes(b"line of text\n" * 200_000)
    (big / "sub" / "small.txt").write_bytes(b"tiny")
    return serve(root), serve(root, "--no-direct-send")


def get(server: Server, url: str, **headers: str) -> httpx.Response:
    return httpx.get(server.url + url, headers=headers, timeout=TIMEOUT)


@pytest.mark.parametrize("url", URLS)
def test_direct_and_asgi_send_the_same_bytes(servers: tuple[Server, Server], url: str) -> None:
    direct, asgi = servers
    for _ in range(2):  # cold, then with every CRC cached (the direct path sends files unread)
        a, b = get(direct, url), get(asgi, url)
        assert a.status_code == b.status_code == 200
        assert a.content == b.content
        assert a.headers.get("content-length") == b.headers.get("content-length")


def spans(value: str, size: int) -> list[tuple[int, int]]:
    """Given range-specs that need no coalescing and a length, return their half-open spans."""
    out = []
    for spec in value.split(","):
        first, _, last = spec.partition("-")
        if not first:
            out.append((size - int(last), size))
        else:
            out.append((int(first), min(int(last) + 1, size) if last else size))
    return out


@pytest.mark.parametrize("span", ["0-0", "7-5242886", "4000000-", "-1", "0-99,200-299",
                                  "0-99999,200000-2999999"])
def test_direct_and_asgi_send_the_same_ranges(servers: tuple[Server, Server], span: str) -> None:
    direct, asgi = servers
    for url in ("/files/big/a.bin", "/archive/big.zip?compression=store", "/archive/big.tar"):
        whole = get(direct, url).content
        expected = [whole[start:stop] for start, stop in spans(span, len(whole))]
        a, b = get(direct, url, range=f"bytes={span}"), get(asgi, url, range=f"bytes={span}")
        assert a.status_code == b.status_code == 206
        if "," not in span:  # multipart boundaries are the same too, but say so via bytes
            assert a.headers["content-range"] == b.headers["content-range"]
            assert a.content == expected[0]
        else:
            assert [part for _, part in parse_byteranges(a)] == expected
        assert a.content == b.content


def unread_of(server: Server, name: str) -> list[int]:
    """Given a server and an archive name, return bytes_unread of each of its logged downloads."""
    lines = [line for line in server.log_text().splitlines() if f'"name": "{name}"' in line]
    return [int(re.search(r'"bytes_unread": (\d+)', line)[1]) for line in lines]  # type: ignore[index]


def test_warm_stored_zip_data_goes_by_sendfile(servers: tuple[Server, Server],
                                               tmp_path: Path) -> None:
    # The 5 MiB and 2.6 MB files of big/ leave the page cache without passing
    # through Python once their CRCs are known; the ASGI path reads them all.
    direct, asgi = servers
    url = "/archive/big.zip?compression=store"
    files = sum(p.stat().st_size for p in (direct.root / "big").rglob("*") if p.is_file())
    for server in servers:
        for _ in range(2):
            assert get(server, url).status_code == 200
    assert wait_until(lambda: len(unread_of(direct, "big.zip")) >= 2)
    assert wait_until(lambda: len(unread_of(asgi, "big.zip")) >= 2)
    assert unread_of(direct, "big.zip")[-1] >= files - 64 * 1024  # all but the small file
    assert set(unread_of(asgi, "big.zip")) == {0}


def test_each_server_says_which_path_its_bodies_took(servers: tuple[Server, Server]) -> None:
    direct, asgi = servers
    get(direct, URLS[0])
    get(asgi, URLS[0])
    assert wait_until(lambda: '"path": "direct"' in direct.log_text())
    assert wait_until(lambda: '"path": "asgi"' in asgi.log_text())
    assert '"path": "asgi"' not in direct.log_text()
    assert '"path": "direct"' not in asgi.log_text()
