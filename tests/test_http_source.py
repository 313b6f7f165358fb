"""zipserve.sources.http against a real origin (nginx on 127.0.0.1): stat, pinned ranged reads,
objects replaced between stat and read, and URLs the allowlist refuses with no request made."""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from pathlib import Path

import pytest

from tests.origin import Origin, self_signed, start_origin, stop_origin
from zipserve.core.urlpolicy import MAX_REDIRECTS, Url, UrlPolicy
from zipserve.errors import BadGateway, BadRequest, Forbidden, NotFound, SourceChanged
from zipserve.sources.ahead import AheadBudget
from zipserve.sources.http.objects import HttpObjects

MTIME = 1_700_000_000
SIZES = {"ok/a.bin": 300_001, "ok/b.bin": 1000, "ok/empty.bin": 0, "ok/plain/c.bin": 70_000,
         "secret/a.bin": 100}
REDIRECTS = {
    "/ok/to-b": "/ok/b.bin",
    "/ok/to-127.0.0.2": "http://127.0.0.2:{port2}/ok/a.bin",
    "/ok/to-outside": "http://127.0.0.1:{port}/secret/a.bin",
    "/ok/to-ipv6": "http://[::1]:{port}/ok/a.bin",
    "/ok/to-decimal": "http://2130706433:{port}/ok/a.bin",
    "/ok/to-userinfo": "http://127.0.0.1:{port}@127.0.0.2:{port2}/ok/a.bin",
    "/ok/loop": "/ok/loop",
}


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    tmp = tmp_path_factory.mktemp("origin")
    served = start_origin(tmp, REDIRECTS)
    rng = random.Random(13)
    for name, size in SIZES.items():
        path = served.www / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        os.utime(path, (MTIME, MTIME))
    yield served
    stop_origin(served)


@pytest.fixture()
def objects(origin: Origin) -> Iterator[HttpObjects]:
    objects = HttpObjects(UrlPolicy.from_prefixes([f"{origin.base}/ok/"]), timeout=5.0)
    yield objects
    objects.close()  # the connections kept alive


def replace(path: Path, data: bytes, mtime: int) -> None:
    """Replace a file with new content (a new inode, as a deploy would), with the given mtime."""
    new = path.with_name(path.name + ".new")
    new.write_bytes(data)
    os.utime(new, (mtime, mtime))
    os.replace(new, path)


@pytest.mark.parametrize("name", ["ok/a.bin", "ok/b.bin", "ok/empty.bin", "ok/plain/c.bin"])
def test_stat_gives_size_validator_and_mtime(origin: Origin, objects: HttpObjects, name: str) -> None:
    node = objects.stat(f"{origin.base}/{name}")
    assert node.path == (f"{origin.base}/{name}",)
    assert (node.kind, node.size, node.mtime_ns) == ("file", SIZES[name], MTIME * 1_000_000_000)
    # nginx's ETag is "mtime-size" in hex; with `etag off` the validator is Last-Modified.
    expected = formatdate(MTIME, usegmt=True) if "plain" in name else f'"{MTIME:x}-{SIZES[name]:x}"'
    assert node.version == expected


@pytest.mark.parametrize(
    ("name", "start", "stop", "chunk"),
    [
        ("ok/a.bin", 0, 300_001, 65536),
        ("ok/a.bin", 0, 1, 4096),
        ("ok/a.bin", 1000, 200_000, 4096),
        ("ok/a.bin", 300_000, 300_001, 4096),
        ("ok/b.bin", 0, 1000, 300),
        ("ok/empty.bin", 0, 0, 4096),
        ("ok/plain/c.bin", 5, 69_999, 10_000),
    ],
)
def test_reads_equal_the_files_bytes(origin: Origin, objects: HttpObjects, name: str,
                                     start: int, stop: int, chunk: int) -> None:
    node = objects.stat(f"{origin.base}/{name}")
    chunks = list(objects.read(node, start, stop, chunk))
    assert b"".join(chunks) == (origin.www / name).read_bytes()[start:stop]
    assert all(len(c) == chunk for c in chunks[:-1])


@pytest.mark.parametrize(
    ("name", "size_delta", "mtime_delta"),
    [
        ("ok/a.bin", 0, 10),  # same size, new ETag: If-Match fails (412)
        ("ok/a.bin", 1, 0),  # new size, new ETag
        ("ok/plain/c.bin", 0, 10),  # Last-Modified only: If-Unmodified-Since / If-Range fail
    ],
)
def test_an_object_replaced_after_stat_raises_source_changed(
        origin: Origin, objects: HttpObjects, name: str, size_delta: int, mtime_delta: int) -> None:
    path = origin.www / name
    original = path.read_bytes()
    node = objects.stat(f"{origin.base}/{name}")
    replace(path, bytes(len(original) + size_delta), MTIME + mtime_delta)
    try:
        with pytest.raises(SourceChanged, match="changed"):
            list(objects.read(node, 0, node.size, 65536))
    finally:
        replace(path, original, MTIME)
    assert b"".join(objects.read(node, 0, node.size, 65536)) == original  # the old version again


def test_redirects_within_the_allowlist_are_followed(origin: Origin, objects: HttpObjects) -> None:
    node = objects.stat(f"{origin.base}/ok/to-b")
    assert node.path == (f"{origin.base}/ok/b.bin",)
    assert b"".join(objects.read(node, 0, node.size)) == (origin.www / "ok/b.bin").read_bytes()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://127.0.0.1:{port}/secret/a.bin", Forbidden),  # outside the allowlisted prefix
        ("http://127.0.0.1:{port}/ok/../secret/a.bin", Forbidden),  # dot segments resolved first
        ("http://127.0.0.2:{port2}/ok/a.bin", Forbidden),
        ("http://127.0.0.1:{port}@127.0.0.2:{port2}/ok/a.bin", BadRequest),  # userinfo
        ("http://127.0.0.1:{port}%40127.0.0.2:{port2}/ok/a.bin", BadRequest),
        ("http://[::1]:{port}/ok/a.bin", Forbidden),
        ("http://[::1]/", Forbidden),
        ("http://[::ffff:127.0.0.1]:{port}/ok/a.bin", Forbidden),
        ("http://2130706433:{port}/ok/a.bin", BadRequest),  # 127.0.0.1 as one number
        ("http://2130706433/", BadRequest),
        ("http://0x7f.1:{port}/ok/a.bin", BadRequest),
        ("http://127.1:{port}/ok/a.bin", BadRequest),
        ("ftp://127.0.0.1:{port}/ok/a.bin", BadRequest),
    ],
)
def test_urls_outside_the_allowlist_reach_nothing(origin: Origin, objects: HttpObjects, url: str,
                                                  error: type[Exception]) -> None:
    before = len(origin.settled())
    with pytest.raises(error):
        objects.stat(url.format(port=origin.port, port2=origin.port2))
    assert len(origin.settled()) == before


@pytest.mark.parametrize("path", ["/ok/to-127.0.0.2", "/ok/to-outside", "/ok/to-ipv6",
                                  "/ok/to-decimal", "/ok/to-userinfo"])
def test_redirects_outside_the_allowlist_are_refused_unfetched(origin: Origin, objects: HttpObjects,
                                                               path: str) -> None:
    before = origin.settled()
    with pytest.raises((Forbidden, BadRequest)):
        objects.stat(origin.base + path)
    made = origin.settled()[len(before):]
    assert made == [f"127.0.0.1 HEAD {path} 302"]  # the redirect itself, and nothing after it
    assert not any("secret" in line or line.startswith("127.0.0.2") for line in origin.requests())


def test_redirect_loops_stop_after_max_redirects(origin: Origin, objects: HttpObjects) -> None:
    before = len(origin.settled())
    with pytest.raises(BadGateway, match="redirects"):
        objects.stat(origin.base + "/ok/loop")
    assert len(origin.settled()) - before == MAX_REDIRECTS + 1


def test_a_host_name_resolving_to_loopback_is_refused_unconnected(origin: Origin) -> None:
    # localhost resolves to 127.0.0.1, which the prefix does not name as its address.
    objects = HttpObjects(UrlPolicy.from_prefixes([f"http://localhost:{origin.port}/ok/"]))
    before = len(origin.settled())
    with pytest.raises(Forbidden, match="non-public"):
        objects.stat(f"http://localhost:{origin.port}/ok/a.bin")
    assert len(origin.settled()) == before


def test_a_missing_object_is_not_found(origin: Origin, objects: HttpObjects) -> None:
    with pytest.raises(NotFound):
        objects.stat(f"{origin.base}/ok/none.bin")


def test_a_read_is_one_ranged_get(origin: Origin, objects: HttpObjects) -> None:
    node = objects.stat(f"{origin.base}/ok/a.bin")
    before = len(origin.settled())
    assert len(b"".join(objects.read(node, 10, 20))) == 10
    assert origin.settled()[before:] == ["127.0.0.1 GET /ok/a.bin 206"]


@pytest.fixture(scope="module")
def tls_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Origin, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(tmp)
    served = start_origin(tmp, {}, tls=(cert, key))
    (served.www / "ok").mkdir()
    (served.www / "ok/t.bin").write_bytes(random.Random(5).randbytes(100_000))
    yield served, cert
    stop_origin(served)


def test_https_reads_with_the_certificate_checked(tls_origin: tuple[Origin, Path]) -> None:
    served, cert = tls_origin
    url = f"https://127.0.0.1:{served.tls_port}/ok/t.bin"
    objects = HttpObjects(UrlPolicy.from_prefixes([f"https://127.0.0.1:{served.tls_port}/ok/"]),
                          context=ssl.create_default_context(cafile=cert))
    try:
        node = objects.stat(url)
        assert b"".join(objects.read(node, 3, 90_000)) == (served.www / "ok/t.bin").read_bytes()[3:90_000]
    finally:
        objects.close()


def test_https_refuses_an_untrusted_certificate(tls_origin: tuple[Origin, Path],
                                                caplog: pytest.LogCaptureFixture) -> None:
    served, _ = tls_origin
    objects = HttpObjects(UrlPolicy.from_prefixes([f"https://127.0.0.1:{served.tls_port}/ok/"]),
                          context=ssl.create_default_context(cafile=other_ca(served)))
    before = served.settled()
    with pytest.raises(BadGateway, match="CERTIFICATE_VERIFY_FAILED"):
        objects.stat(f"https://127.0.0.1:{served.tls_port}/ok/t.bin")
    assert served.settled() == before  # the TLS handshake failed: no request was sent
    assert "asking again" not in caplog.text  # nor retried


def other_ca(served: Origin) -> Path:
    """Return a CA file holding a certificate other than the origin's (so it trusts nothing served)."""
    folder = served.www.parent / "other"
    folder.mkdir(exist_ok=True)
    return self_signed(folder)[0]


def test_prefetch_fetches_small_objects_ahead_of_the_body(origin: Origin, objects: HttpObjects) -> None:
    nodes = [objects.stat(f"{origin.base}/{name}") for name in ("ok/a.bin", "ok/b.bin", "ok/plain/c.bin")]
    spans = [(node, 0, node.size) for node in nodes]
    before = len(origin.settled())
    with ThreadPoolExecutor(2) as pool:
        reader = objects.prefetch(spans, pool, AheadBudget(1 << 20).share(), largest=100_000)
        try:
            # a.bin is larger than `largest` (read in turn); b.bin and c.bin are fetched ahead.
            fetched_ahead = sorted(origin.settled()[before:])
            got = [b"".join(reader.read(node, lo, hi, 65536)) for node, lo, hi in spans]
        finally:
            reader.close()
    assert fetched_ahead == ["127.0.0.1 GET /ok/b.bin 206", "127.0.0.1 GET /ok/plain/c.bin 206"]
    assert got == [(origin.www / name).read_bytes() for name in ("ok/a.bin", "ok/b.bin", "ok/plain/c.bin")]
    assert len(origin.settled()) - before == 3  # each object fetched once


@pytest.mark.parametrize("answers", [["93.184.216.34", "127.0.0.1"], ["169.254.169.254"],
                                     ["::ffff:127.0.0.1"], ["10.0.0.1", "93.184.216.34"]])
def test_a_name_is_resolved_once_and_every_answer_checked(origin: Origin, answers: list[str]) -> None:
    calls: list[str] = []

    def resolver(url: Url) -> list[str]:
        calls.append(url.host)
        return answers

    objects = HttpObjects(UrlPolicy.from_prefixes([f"http://origin.test:{origin.port}/ok/"]),
                          resolver=resolver)
    before = len(origin.settled())
    with pytest.raises(Forbidden, match="non-public"):
        objects.stat(f"http://origin.test:{origin.port}/ok/a.bin")
    assert calls == ["origin.test"]  # one answer, judged whole: none left to a second lookup
    assert len(origin.settled()) == before
