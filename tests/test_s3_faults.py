"""The store misbehaving, for real: a fault-injecting proxy between zipserve and the real Ceph RGW.

Before the first body byte (listings, stats), resets and 503 SlowDown are
retried by botocore with backoff and the request succeeds, or, once the
attempts are spent, is answered with the 503 JSON error. After it, a ranged
GET whose body is cut is asked again for the missing bytes with the same
If-Match and the archive comes out byte for byte; when that cannot work (the
object was replaced, or the store keeps cutting) the connection is aborted,
never an archive that looks whole.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.helpers import Server
from tests.s3.ceph_rgw import CephRgw
from tests.s3.fault_proxy import FaultProxy, Seen
from tests.s3.support import new_bucket
from zipserve.http.app import create_app
from zipserve.settings import Settings

MiB = 1 << 20
TIMEOUT = 60
ATTEMPTS = 4  # tries in all, as zipserve sets botocore up (standard mode)


@pytest.fixture(scope="module")
def three_files(s3: Any) -> tuple[str, dict[str, bytes]]:
    """A bucket with a folder of three files; the biggest spans several parts of 1 MiB."""
    name = new_bucket(s3)
    objects = {"d/a.txt": b"alpha\n" * 1000, "d/big.bin": os.urandom(3 * MiB + 12345),
               "d/c.bin": os.urandom(200_000)}
    for key, data in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=data)
    return name, objects


@pytest.fixture
def proxied_app(faults: FaultProxy, ceph_rgw: CephRgw,
               three_files: tuple[str, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[TestClient]:
    """The app in process, its store reached through the proxy (started while the proxy passes all)."""
    for key, value in ceph_rgw.env().items():
        monkeypatch.setenv(key, value)
    app = create_app(Settings(root=f"s3://{three_files[0]}", crc_cache=None,
                              source_options={"s3_endpoint": faults.url, "s3_part_size": MiB}))
    with TestClient(app) as client:
        faults.clear()
        yield client


def to_bucket(name: str) -> Callable[[Seen], bool]:
    return lambda s: s.target.startswith(f"/{name}")


def attempts(seen: list[Seen]) -> list[str]:
    """The amz-sdk-request attempt numbers botocore sent ("1", "2", ...)."""
    return [s.headers.get("amz-sdk-request", "").split(";")[0].removeprefix("attempt=")
            for s in seen]


def range_start(seen: Seen) -> int:
    value = seen.headers.get("range", "")
    return int(value[6:].split("-")[0]) if value.startswith("bytes=") else -1


def first(count: int, action: str) -> Callable[[Seen], str]:
    """A rule that answers `action` to the first `count` requests, then passes everything."""
    done = [0]

    def rule(seen: Seen) -> str:
        done[0] += 1
        return action if done[0] <= count else "pass"
    return rule


# --- before the first byte -------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, ATTEMPTS - 1])
def test_connections_reset_before_the_first_byte_are_retried(
        proxied_app: TestClient, faults: FaultProxy, three_files: tuple[str, dict[str, bytes]],
        count: int) -> None:
    faults.reset_connections(count)
    r = proxied_app.get("/api/list/d")
    assert r.status_code == 200
    assert {e["name"] for e in r.json()["entries"]} == {"a.txt", "big.bin", "c.bin"}
    assert faults.resets == count


@pytest.mark.parametrize("count", [1, ATTEMPTS - 1])
def test_slowdown_before_the_first_byte_is_retried_with_backoff(
        proxied_app: TestClient, faults: FaultProxy, three_files: tuple[str, dict[str, bytes]],
        count: int) -> None:
    faults.rule = first(count, "slowdown")
    r = proxied_app.get("/archive/d.zip?compression=store")
    assert r.status_code == 200
    with zipfile.ZipFile(BytesIO(r.content)) as zf:
        assert {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")} == three_files[1]
    seen = faults.requests()
    assert [s.action for s in seen[:count + 1]] == ["slowdown"] * count + ["pass"]
    # The same request, tried again by botocore's standard mode (which waits between tries).
    assert len({s.target for s in seen[:count + 1]}) == 1
    assert attempts(seen[:count + 1]) == [str(i) for i in range(1, count + 2)]


@pytest.mark.parametrize(("fault", "message"), [
    ("slowdown", "the object store is busy (SlowDown); try again shortly"),
    ("reset", "the object store is unreachable (ConnectionClosedError); try again shortly"),
])
def test_store_failing_every_attempt_before_the_first_byte_is_503_json(
        proxied_app: TestClient, faults: FaultProxy, fault: str, message: str) -> None:
    faults.rule = lambda s: fault
    r = proxied_app.get("/archive/d.zip?compression=store")
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert r.json()["error"] == {"code": "store_unavailable", "message": message}
    assert attempts(faults.requests()) == [str(i) for i in range(1, ATTEMPTS + 1)]


# --- after the first byte -------------------------------------------------------------------


BIG_PART_2 = "bytes=1048576-2097151"  # the second part of d/big.bin, as zipserve asks for it


def cut_once(key: str, byte_range: str, after: int) -> Callable[[Seen], Any]:
    """A rule that cuts the first GET of this key and range after `after` body bytes."""
    done = [False]

    def rule(seen: Seen) -> Any:
        if (seen.method == "GET" and seen.path.endswith("/" + key)
                and seen.headers.get("range") == byte_range and not done[0]):
            done[0] = True
            return ("cut", after)
        return "pass"
    return rule


@pytest.mark.parametrize("target", ["/archive/d.zip?compression=store", "/archive/d.tar",
                                    "/archive/d.tar.gz", "/files/d/big.bin"])
def test_a_get_cut_mid_body_is_asked_again_for_the_rest_and_the_bytes_are_the_same(
        proxied_app: TestClient, faults: FaultProxy, three_files: tuple[str, dict[str, bytes]],
        target: str) -> None:
    reference = proxied_app.get(target)
    assert reference.status_code == 200
    faults.clear()
    faults.rule = cut_once("d/big.bin", BIG_PART_2, 300_000)
    r = proxied_app.get(target)
    assert r.status_code == 200
    assert r.content == reference.content
    gets = faults.requests(lambda s: s.method == "GET" and s.path.endswith("/d/big.bin"))
    cut = [s for s in gets if s.action == "cut:300000"]
    assert len(cut) == 1 and cut[0].sent == 300_000
    again = [s for s in gets if s.headers.get("range") == f"bytes={MiB + 300_000}-{2 * MiB - 1}"]
    assert len(again) == 1  # only the missing bytes, pinned to the same version
    assert again[0].headers["if-match"] == cut[0].headers["if-match"]


def test_slowdown_on_a_data_get_is_retried_and_the_bytes_are_the_same(
        proxied_app: TestClient, faults: FaultProxy, three_files: tuple[str, dict[str, bytes]]) -> None:
    done = [0]

    def rule(seen: Seen) -> str:
        if seen.method == "GET" and seen.path.endswith("/d/big.bin") and done[0] < 2:
            done[0] += 1
            return "slowdown"
        return "pass"
    faults.rule = rule
    r = proxied_app.get("/files/d/big.bin")
    assert r.status_code == 200
    assert r.content == three_files[1]["d/big.bin"]
    assert done[0] == 2


@pytest.fixture
def s3_server_via(ceph_rgw: CephRgw, server_factory: Callable[..., Server]
                  ) -> Callable[..., Server]:
    def make(served: str, endpoint: str, *args: str) -> Server:
        return server_factory(served, "--s3-endpoint", endpoint, *args, env=ceph_rgw.env())
    return make


@pytest.mark.parametrize("why", ["replaced", "always cut"])
def test_a_cut_that_cannot_be_mended_aborts_the_transfer(
        s3: Any, faults: FaultProxy, s3_server_via: Callable[..., Server], tmp_path: Path,
        why: str) -> None:
    name = new_bucket(s3)
    size = 6 * MiB
    s3.put_object(Bucket=name, Key="big.bin", Body=b"A" * size)
    server = s3_server_via(f"s3://{name}", faults.url, "--s3-part-size", str(MiB),
                           "--s3-read-ahead", "1")
    faults.clear()
    if why == "replaced":
        faults.rule = cut_once("big.bin", f"bytes={2 * MiB}-{3 * MiB - 1}", 100_000)
        faults.on_cut = lambda seen: s3.put_object(Bucket=name, Key="big.bin", Body=b"B" * size)
    else:  # every GET of bytes in the third part, the first and every one after
        faults.rule = lambda s: ("cut", 100_000) if 2 * MiB <= range_start(s) < 3 * MiB else "pass"
    out = tmp_path / "big.bin.tar"
    done = subprocess.run(["curl", "-sS", "-o", str(out), server.url + "/archive/big.bin.tar"],
                          capture_output=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 18, done.stderr  # curl: transfer closed with data outstanding
    got = out.read_bytes()
    assert len(got) < size
    assert b"B" not in got  # never a byte of the other version
    reason = ("replaced since the request was planned" if why == "replaced"
              else "object store read failed")
    assert reason in server.log_text()
