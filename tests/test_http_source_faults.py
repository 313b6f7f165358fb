"""zipserve.sources.http against an origin that fails on purpose (a real server on 127.0.0.1):
503s before the first byte are retried, a body cut off resumes from its missing byte under the
same validator, an object replaced while a body was broken raises SourceChanged, connections are
kept alive only after a body read to its end, and a big span is read in parts fetched ahead."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from zipserve.core.urlpolicy import UrlPolicy
from zipserve.errors import SourceChanged
from zipserve.sources import resumed
from zipserve.sources.ahead import AheadBudget
from zipserve.sources.http import objects as http_objects
from zipserve.sources.http.objects import HttpObjects

DATA = random.Random(7).randbytes(200_000)


class Origin(ThreadingHTTPServer):
    """A server of one object at /o whose GETs follow `actions` in turn: "ok", "503", "cut:N" or
    "whole" (a 200 with the whole object, as an origin whose If-Range no longer matches answers)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.data, self.etag = DATA, '"v1"'
        self.actions: list[str] = []
        self.seen: list[tuple[str, str | None, str | None]] = []
        self.connections = 0  # TCP connections accepted

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Say nothing: a client hanging up on a body cut on purpose is what these tests do."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/o"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Origin

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_HEAD(self) -> None:
        self.answer("ok", head=True)

    def do_GET(self) -> None:
        self.answer(self.server.actions.pop(0) if self.server.actions else "ok", head=False)

    def answer(self, action: str, *, head: bool) -> None:
        srv, rng, if_match = self.server, self.headers.get("Range"), self.headers.get("If-Match")
        srv.seen.append((self.command, rng, if_match))
        status, body, extra = 200, srv.data, {}
        if action == "503" or (if_match is not None and if_match != srv.etag):
            status, body = (503 if action == "503" else 412), b""
        elif rng and action != "whole":
            lo, hi = (int(x) for x in rng.removeprefix("bytes=").split("-"))
            status, body = 206, srv.data[lo:hi + 1]
            extra = {"Content-Range": f"bytes {lo}-{hi}/{len(srv.data)}"}
        self.send_response(status)
        for name, value in {"ETag": srv.etag, "Content-Length": str(len(body)), **extra}.items():
            self.send_header(name, value)
        self.end_headers()
        if head:
            return
        cut = int(action.removeprefix("cut:")) if action.startswith("cut:") else len(body)
        self.wfile.write(body[:cut])
        # "hangup": the whole body, then the connection closed without a Connection: close.
        self.close_connection = cut < len(body) or action == "hangup"


@pytest.fixture()
def origin() -> Iterator[Origin]:
    server = Origin()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture()
def objects(origin: Origin, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpObjects]:
    monkeypatch.setattr(resumed, "BACKOFF", 0.01)
    objects = HttpObjects(UrlPolicy.from_prefixes([origin.url]), timeout=5.0)
    yield objects
    objects.close()  # the connections kept alive


def gets(origin: Origin) -> list[tuple[str, str | None, str | None]]:
    return [seen for seen in origin.seen if seen[0] == "GET"]


def test_a_body_cut_off_resumes_from_the_missing_byte(origin: Origin, objects: HttpObjects) -> None:
    node = objects.stat(origin.url)
    origin.actions = ["cut:70000"]
    chunks = list(objects.read(node, 1000, 150_000, 4096))
    assert b"".join(chunks) == DATA[1000:150_000]
    assert all(len(c) == 4096 for c in chunks[:-1])  # the same chunks as an unbroken body
    assert gets(origin) == [("GET", "bytes=1000-149999", '"v1"'), ("GET", "bytes=71000-149999", '"v1"')]


def test_failures_before_the_first_byte_are_retried(origin: Origin, objects: HttpObjects) -> None:
    node = objects.stat(origin.url)
    origin.actions = ["503", "503"]
    assert b"".join(objects.read(node, 0, node.size)) == DATA
    assert len(gets(origin)) == 3


@pytest.mark.parametrize(
    ("actions", "reason"),
    [
        (["503"] * http_objects.ATTEMPTS, "unreachable"),
        (["cut:10"] * http_objects.BODY_ATTEMPTS, "read failed"),
        (["whole"], "changed"),
    ],
)
def test_an_origin_that_keeps_failing_raises_source_changed(
        origin: Origin, objects: HttpObjects, actions: list[str], reason: str) -> None:
    node = objects.stat(origin.url)
    origin.actions = list(actions)
    with pytest.raises(SourceChanged, match=reason):
        list(objects.read(node, 5, node.size))


def test_an_object_replaced_while_its_body_was_broken_is_never_mixed(origin: Origin,
                                                                      objects: HttpObjects) -> None:
    node = objects.stat(origin.url)
    origin.actions = ["cut:50000"]
    got: list[bytes] = []
    reader = objects.read(node, 0, node.size, 8192)
    got.append(next(reader))
    origin.data, origin.etag = bytes(len(DATA)), '"v2"'  # replaced before the resume is asked for
    with pytest.raises(SourceChanged, match="changed"):
        got.extend(reader)
    assert b"".join(got) == DATA[:len(b"".join(got))]  # only the first version's bytes came out
    assert gets(origin)[-1] == ("GET", "bytes=50000-199999", '"v1"')


@pytest.mark.parametrize(
    ("actions", "connections"),
    [
        ([], 1),  # every request on the one connection kept alive
        (["cut:1000"], 2),  # a broken body's connection is closed; the resume opens another
        (["hangup"], 2),  # an origin that closed an idle connection: a new one
        (["whole"], 2),  # an answer left unread (the object changed) is not reused
    ],
)
def test_connections_are_kept_alive_only_after_a_whole_body(
        origin: Origin, objects: HttpObjects, actions: list[str], connections: int) -> None:
    node = objects.stat(origin.url)
    origin.actions = list(actions)
    try:
        got = [b"".join(objects.read(node, lo, lo + 5000, 4096)) for lo in (0, 7000)]
    except SourceChanged:
        got = [b"".join(objects.read(node, lo, lo + 5000, 4096)) for lo in (0, 7000)]
    assert got == [DATA[:5000], DATA[7000:12000]]
    assert origin.connections == connections


def test_a_body_left_midway_does_not_reuse_its_connection(origin: Origin, objects: HttpObjects) -> None:
    node = objects.stat(origin.url)
    reader = objects.read(node, 0, node.size, 4096)
    assert next(reader) == DATA[:4096]
    reader.close()  # the rest of that body is still on its connection: never read as the next answer
    assert b"".join(objects.read(node, 100, 9000)) == DATA[100:9000]
    assert origin.connections == 2


def test_a_big_span_is_read_in_parts_fetched_ahead(origin: Origin, objects: HttpObjects) -> None:
    node = objects.stat(origin.url)
    with ThreadPoolExecutor(2) as pool:
        reader = objects.prefetch([(node, 10, node.size)], pool, AheadBudget(1 << 20).share(),
                                  largest=1000, part=50_000)
        try:
            chunks = list(reader.read(node, 10, node.size, 8192))
        finally:
            reader.close()
    assert b"".join(chunks) == DATA[10:]
    assert all(len(c) == 8192 for c in chunks[:-1])  # cut as one read of the span cuts them
    # Parts of 49,152 bytes (a multiple of the chunk), each asked for once.
    assert sorted(rng for _, rng, _ in gets(origin)) == sorted(
        f"bytes={lo}-{min(lo + 49_152, len(DATA)) - 1}" for lo in range(10, len(DATA), 49_152))


class Peak:
    """A read-ahead share that records the most bytes it ever held."""

    def __init__(self, total: int) -> None:
        self.share, self.held, self.peak = AheadBudget(total).share(), 0, 0

    def take(self, size: int) -> bool:
        if not self.share.take(size):
            return False
        self.held += size
        self.peak = max(self.peak, self.held)
        return True

    def give(self, size: int) -> None:
        self.share.give(size)
        self.held -= size

    def close(self) -> None:
        self.share.close()


# Parts of 49,152 bytes (the last 3,392): two ahead at most, as far as the share allows.
@pytest.mark.parametrize(("budget", "peak"), [(100_000, 98_304), (60_000, 52_544), (3_000, 0)])
def test_parts_fetched_ahead_stay_within_the_share(origin: Origin, objects: HttpObjects,
                                                   budget: int, peak: int) -> None:
    node = objects.stat(origin.url)
    share = Peak(budget)
    with ThreadPoolExecutor(2) as pool:
        reader = objects.prefetch([(node, 0, node.size)], pool, share, largest=1000, part=50_000)
        try:
            assert b"".join(reader.read(node, 0, node.size, 8192)) == DATA
        finally:
            reader.close()
    assert share.peak == peak
    assert share.held == 0
