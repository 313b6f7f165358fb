"""An S3 prefix as the served root, on a real Ceph radosgw: what only S3 has.

The archive and single-file tests that hold for any source run against S3 too,
through the `served` fixture (test_formats.py, test_files.py, test_resume.py,
test_page.py). The tests here use buckets of their own: keys that are not a
tree, objects replaced or deleted mid-stream, store errors before the first
byte, what each request asks of the store (counted with boto3's own event hooks
on the server's client, in process), the CRCs a fleet shares, and the CLI.
Every test that uses the store carries the `ceph` marker (tests/s3/fixtures.py).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import tarfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from starlette.testclient import TestClient

from tests.helpers import CLI_ENV, TIMEOUT, Server, build_tree, free_port
from tests.s3.ceph_rgw import CephRgw
from tests.s3.support import body, new_bucket, put_all, upload_tree
from zipserve.errors import SourceChanged
from zipserve.http.app import create_app
from zipserve.service import Service
from zipserve.settings import Settings
from zipserve.sources.base import FetchesWhole, KnowsCrcs, SendsUnread, SharesCrcs
from zipserve.sources.s3 import source as zs3

MiB = 1 << 20
CRC_PREFIX = ".zipserve-crc/"


# --- in-process services on a bucket of their own, with the store's requests counted --------


class Requests:
    """Every S3 call a client makes (operation and parameters), seen through boto3's event hooks."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        client.meta.events.register("provide-client-params.s3.*", self._call)

    def _call(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append((model.name, dict(params)))

    def of(self, op: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for name, p in self.calls if name == op]


class Fetches:
    """Counts a source's read-ahead fetches (one ranged GET each, body included): running now, at most."""

    def __init__(self, source: Any) -> None:
        self.running = self.peak = self.started = 0
        self._lock = threading.Lock()
        fetch = source.objects.fetch

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.started += 1
                self.running += 1
                self.peak = max(self.peak, self.running)
            try:
                return fetch(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1
        source.objects.fetch = counted

    def settled(self) -> int:
        """Wait (bounded) until no fetch runs and none starts for a while; return how many started."""
        quiet = 0
        for _ in range(200):
            time.sleep(0.05)
            with self._lock:
                before, idle = self.started, self.running == 0
            quiet = quiet + 1 if idle and before == self.started else 0
            if quiet >= 6:
                break
        return self.started


def test_head_of_a_stored_zip_reads_no_object(s3: Any, s3_env: CephRgw, tmp_path: Path) -> None:
    bucket = new_bucket(s3)
    put_all(s3, bucket, {f"d/f{i}.bin": os.urandom(300_000) for i in range(5)})
    app = create_app(Settings(root=f"s3://{bucket}", crc_cache=None,
                              source_options={"s3_endpoint": s3_env.endpoint}))
    requests = Requests(app.state.service.root.client)
    with TestClient(app) as client:
        r = client.head("/archive/d.zip?compression=store")
        file = client.head("/files/d/f0.bin")
    assert r.status_code == 200
    assert int(r.headers["content-length"]) > 5 * 300_000
    assert r.headers["etag"] and file.status_code == 200
    assert requests.of("GetObject") == []
    assert requests.of("ListObjectsV2")


def test_every_get_sends_if_match_with_the_planned_etag(s3: Any, services: Callable[..., Service]
                                                        ) -> None:
    bucket = new_bucket(s3)
    objects = {f"f{i}": os.urandom(100_000 * (i + 1)) for i in range(4)}
    put_all(s3, bucket, objects)
    etags = {k: s3.head_object(Bucket=bucket, Key=k)["ETag"] for k in objects}
    svc = services(f"s3://{bucket}", s3_part_size=65536)
    requests = Requests(svc.root.client)
    body(svc, ["."], "tar")
    gets = requests.of("GetObject")
    assert len(gets) >= len(objects)
    assert all(g["IfMatch"] == etags[g["Key"]] for g in gets)


def test_big_file_is_read_as_ranged_parts_a_bounded_number_in_flight(
        s3: Any, services: Callable[..., Service]) -> None:
    bucket = new_bucket(s3)
    data = os.urandom(4 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    svc = services(f"s3://{bucket}", s3_part_size=256 * 1024, s3_read_ahead=3)
    requests, fetches = Requests(svc.root.client), Fetches(svc.root)
    node = svc.file("big")
    assert b"".join(svc.encoder.reads.data(node)) == data
    ranges = sorted(tuple(int(x) for x in g["Range"][6:].split("-"))
                    for g in requests.of("GetObject"))
    assert ranges == [(lo, lo + 256 * 1024 - 1) for lo in range(0, 4 * MiB, 256 * 1024)]
    assert 1 < fetches.peak <= 3


def test_file_range_fetches_only_that_range(s3: Any, s3_env: CephRgw) -> None:
    bucket = new_bucket(s3)
    data = os.urandom(3 * MiB)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=data)
    app = create_app(Settings(root=f"s3://{bucket}", crc_cache=None,
                              source_options={"s3_endpoint": s3_env.endpoint}))
    requests = Requests(app.state.service.root.client)
    with TestClient(app) as client:
        r = client.get("/files/big.bin", headers={"Range": "bytes=1000000-1000999"})
    assert r.status_code == 206
    assert r.content == data[1_000_000:1_001_000]
    assert [g["Range"] for g in requests.of("GetObject")] == ["bytes=1000000-1000999"]


def test_small_files_are_fetched_a_bounded_window_ahead(s3: Any,
                                                        services: Callable[..., Service]) -> None:
    bucket = new_bucket(s3)
    objects = {f"small/{i:03d}.bin": os.urandom(4096) for i in range(60)}
    put_all(s3, bucket, objects)
    svc = services(f"s3://{bucket}", s3_read_ahead=1, s3_part_size=65536, chunk_size=4096)
    fetches = Fetches(svc.root)
    plan = svc.archive(["small"], "tar")
    chunks = svc.encoder.body(plan)
    try:
        first = next(chunks)  # the first file's header and bytes; the body then waits
        started = fetches.settled()
        rest = b"".join(chunks)
    finally:
        chunks.close()  # type: ignore[attr-defined]
    with tarfile.open(fileobj=BytesIO(first + rest)) as tf:
        assert {m.name: tf.extractfile(m).read() for m in tf.getmembers()  # type: ignore[union-attr]
                if m.isfile()} == objects
    # Read ahead (more than the one file sent), but only a window of 8 spans (8 x read-ahead).
    assert 2 < started <= 2 + 8
    assert fetches.peak > 1


# --- keys that are not a tree -----------------------------------------------------------------

HOSTILE = {"a/../b": b"dotdot", "a//b": b"double", "/lead": b"leading", "./dot": b"dot",
           "x": b"file beside its prefix", "x/y": b"under x", "good.txt": b"good",
           "back\\slash": b"backslash", "C:drive": b"drive"}


@pytest.fixture(scope="module")
def hostile_bucket(s3: Any) -> str:
    bucket = new_bucket(s3)
    put_all(s3, bucket, {"h/" + k: v for k, v in HOSTILE.items()})
    return bucket


def test_unsafe_keys_never_appear_in_archives(hostile_bucket: str,
                                              services: Callable[..., Service]) -> None:
    svc = services(f"s3://{hostile_bucket}/h")
    with zipfile.ZipFile(BytesIO(body(svc, ["."], "zip"))) as zf:
        assert zf.namelist() == ["a/", "good.txt", "x/", "x/y"]
        assert zf.read("x/y") == b"under x"


def test_unsafe_keys_never_appear_in_listings(hostile_bucket: str,
                                              services: Callable[..., Service]) -> None:
    svc = services(f"s3://{hostile_bucket}/h")
    _, children = svc.listing("")
    assert [(n.shown, n.kind) for n in children] == [("a", "dir"), ("x", "dir"),
                                                      ("good.txt", "file")]
    assert svc.listing("a")[1] == []


def test_file_key_beside_its_prefix_is_never_served(hostile_bucket: str,
                                                    s3_env: CephRgw) -> None:
    app = create_app(Settings(root=f"s3://{hostile_bucket}/h", crc_cache=None,
                              source_options={"s3_endpoint": s3_env.endpoint}))
    with TestClient(app) as client:
        r = client.get("/files/x")
    assert r.status_code == 400  # "x" is the folder holding x/y, not the object "x"
    assert b"file beside its prefix" not in r.content


def test_skipped_keys_are_logged(hostile_bucket: str, services: Callable[..., Service],
                                 caplog: pytest.LogCaptureFixture) -> None:
    svc = services(f"s3://{hostile_bucket}/h")
    with caplog.at_level(logging.WARNING, logger="zipserve.s3"):
        body(svc, ["."], "tar")
    logged = caplog.text
    for key in ("h/a/../b", "h/a//b", "h//lead", "h/./dot", "h/x'", "back\\\\slash", "C:drive"):
        assert key in logged, key


# --- faults -----------------------------------------------------------------------------------


@pytest.fixture
def s3_server(ceph_rgw: CephRgw, server_factory: Callable[..., Server]
              ) -> Callable[..., Server]:
    def make(served: str, *args: str, env: dict[str, str] | None = None) -> Server:
        return server_factory(served, "--s3-endpoint", ceph_rgw.endpoint, *args,
                              env={**ceph_rgw.env(), **(env or {})})
    return make


@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_object_changed_mid_stream_aborts_the_transfer(s3: Any, s3_server: Callable[..., Server],
                                                       change: str) -> None:
    bucket = new_bucket(s3)
    size = 24 * MiB
    s3.put_object(Bucket=bucket, Key="big.bin", Body=b"A" * size)
    server = s3_server(f"s3://{bucket}", "--s3-part-size", "65536", "--s3-read-ahead", "1",
                       "--chunk-size", "65536")
    got = 0
    with httpx.stream("GET", server.url + "/archive/big.bin.tar", timeout=TIMEOUT) as r:
        chunks = r.iter_raw(65536)
        got += len(next(chunks))
        if change == "replaced":
            s3.put_object(Bucket=bucket, Key="big.bin", Body=b"B" * size)
        else:
            s3.delete_object(Bucket=bucket, Key="big.bin")
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in chunks:
                assert b"B" not in chunk  # never a byte of the other version
                got += len(chunk)
        total = int(r.headers["content-length"])
    assert got < total
    reason = "replaced since the request was planned" if change == "replaced" else "vanished"
    assert reason in server.log_text()


def test_missing_key_is_404_json(s3: Any, s3_server: Callable[..., Server]) -> None:
    bucket = new_bucket(s3)
    server = s3_server(f"s3://{bucket}/p")
    for target in ("/files/nope.txt", "/archive/nope.zip", "/api/list/nope"):
        r = httpx.get(server.url + target, timeout=TIMEOUT)
        assert r.status_code == 404, target
        assert r.json()["error"]["code"] == "not_found"
        assert r.json()["error"]["path"] == ("nope.txt" if "files" in target else "nope")


def test_unreachable_store_is_503_json_saying_so(server_factory: Callable[..., Server],
                                                 ceph_rgw: CephRgw) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    server = server_factory("s3://bucket/p", "--s3-endpoint", closed, env=ceph_rgw.env())
    assert httpx.get(server.url + "/healthz", timeout=TIMEOUT).status_code == 200
    r = httpx.get(server.url + "/archive/docs.zip", timeout=TIMEOUT)
    assert r.status_code == 503
    assert r.headers["retry-after"]
    error = r.json()["error"]
    assert error["code"] == "store_unavailable"
    assert "object store is unreachable" in error["message"]
    assert "127.0.0.1" not in error["message"]  # the store's address stays in the server log


@pytest.fixture(scope="module")
def other_user(ceph_rgw: CephRgw) -> dict[str, str]:
    """A second S3 user of the cluster (owns nothing, may only list what a policy grants)."""
    key, secret = "ZSO" + uuid.uuid4().hex[:17].upper(), uuid.uuid4().hex
    subprocess.run(["radosgw-admin", "-c", str(Path(ceph_rgw.dir) / "ceph.conf"), "user",
                    "create", "--uid", "other", "--display-name", "other", "--access-key", key,
                    "--secret", secret], check=True, capture_output=True, timeout=TIMEOUT)
    return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}


def test_denied_object_is_403_json(s3: Any, s3_server: Callable[..., Server],
                                   other_user: dict[str, str]) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="secret.txt", Body=b"not for you")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/other"]},
         "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"]}]}))
    server = s3_server(f"s3://{bucket}", env=other_user)
    r = httpx.get(server.url + "/files/secret.txt", timeout=TIMEOUT)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert b"not for you" not in r.content


def serve_exit(served: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "zipserve", "serve", served, "--port", str(free_port()), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, **env}, check=False)


def test_credentials_come_from_the_aws_config_files(s3: Any, ceph_rgw: CephRgw,
                                                     server_factory: Callable[..., Server],
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"from a profile")
    (tmp_path / "credentials").write_text(
        f"[zs]\naws_access_key_id = {ceph_rgw.access_key}\n"
        f"aws_secret_access_key = {ceph_rgw.secret_key}\n")
    (tmp_path / "config").write_text(
        f"[profile zs]\nregion = us-east-1\nendpoint_url = {ceph_rgw.endpoint}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                 "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    server = server_factory(f"s3://{bucket}", env={
        "AWS_PROFILE": "zs", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config")})
    r = httpx.get(server.url + "/files/hello.txt", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == b"from a profile"


@pytest.mark.parametrize(("case", "message"), [
    ("no bucket", "the served bucket does not exist"),
    ("wrong secret", "refused zipserve's credentials (SignatureDoesNotMatch)"),
    ("denied", "denies access"),
])
def test_server_refuses_to_start_when_the_store_refuses_it(
        ceph_rgw: CephRgw, other_user: dict[str, str], s3: Any,
        case: str, message: str) -> None:
    env, bucket = ceph_rgw.env(), new_bucket(s3)
    if case == "no bucket":
        bucket = "zs-no-such-bucket"
    elif case == "wrong secret":
        env["AWS_SECRET_ACCESS_KEY"] = "0" * 40
    else:
        env.update(other_user)
    done = serve_exit(f"s3://{bucket}/p", env, "--s3-endpoint", ceph_rgw.endpoint)
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize(("error", "status"), [
    (ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject"), 404),
    (ClientError({"Error": {"Code": "404"}}, "HeadObject"), 404),
    (ClientError({"Error": {"Code": "AccessDenied"}}, "GetObject"), 403),
    (ClientError({"Error": {"Code": "NoSuchBucket"}}, "ListObjectsV2"), 502),
    (ClientError({"Error": {"Code": "InvalidAccessKeyId"}}, "ListObjectsV2"), 502),
    (ClientError({"Error": {"Code": "InternalError"}}, "ListObjectsV2"), 502),
    (ClientError({"Error": {"Code": "SlowDown"}}, "ListObjectsV2"), 503),
    (EndpointConnectionError(endpoint_url="http://store"), 503),
])
def test_store_errors_before_the_first_byte_map_to_statuses(error: Exception,
                                                            status: int) -> None:
    assert zs3.refusal(error, "some/path").status == status


# --- CRCs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kind", "crc"), [
    (base64.b64encode(bytes.fromhex("12345678")).decode(), "FULL_OBJECT", 0x12345678),
    (base64.b64encode(bytes.fromhex("12345678")).decode(), None, 0x12345678),
    (base64.b64encode(bytes.fromhex("12345678")).decode() + "-3", "COMPOSITE", None),
    (base64.b64encode(bytes.fromhex("12345678")).decode(), "COMPOSITE", None),
    (None, None, None),
    ("not base64!", "FULL_OBJECT", None),
])
def test_only_a_whole_object_checksum_is_taken_as_its_crc(value: str | None, kind: str | None,
                                                          crc: int | None) -> None:
    assert zs3.crc_from_checksum(value, kind) == crc


def test_without_a_store_checksum_the_crc_is_computed_by_one_read(
        s3: Any, services: Callable[..., Service]) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=os.urandom(2 * MiB))  # Ceph 16 keeps no CRC
    svc = services(f"s3://{bucket}", s3_part_size=MiB)  # bigger than a part: not held whole
    requests = Requests(svc.root.client)
    with zipfile.ZipFile(BytesIO(body(svc, ["."], "zip", compression="store"))) as zf:
        assert zf.testzip() is None
    assert svc.crcs.computed == 1
    assert requests.of("HeadObject")[-1]["ChecksumMode"] == "ENABLED"  # asked, none given


def test_stored_zip_reads_each_file_up_to_a_part_once_with_cold_crcs(
        s3: Any, services: Callable[..., Service]) -> None:
    bucket = new_bucket(s3)
    objects = {f"f{i}.bin": os.urandom(MiB + 1000 * i) for i in range(5)}  # over one chunk
    put_all(s3, bucket, objects)
    svc = services(f"s3://{bucket}", s3_part_size=2 * MiB)
    requests = Requests(svc.root.client)
    with zipfile.ZipFile(BytesIO(body(svc, ["."], "zip", compression="store"))) as zf:
        assert {n: zf.read(n) for n in zf.namelist()} == objects
    assert sorted(g["Key"] for g in requests.of("GetObject")) == sorted(objects)


@pytest.fixture
def fleet(s3: Any, services: Callable[..., Service]) -> tuple[str, dict[str, bytes]]:
    """A bucket of 6 files of 1.5 MiB served whole (its CRC area inside), and its files."""
    bucket = new_bucket(s3)
    objects = {f"v/{i}.bin": os.urandom(3 * MiB // 2) for i in range(6)}
    put_all(s3, bucket, objects)
    return bucket, objects


def resume_reads(fleet: tuple[str, dict[str, bytes]], services: Callable[..., Service],
                 **shared: Any) -> tuple[set[str], str]:
    """Stream the stored ZIP on server A, resume it from inside the 4th file on a cold B.

    Return the data keys B fetched and the first range it asked of the 4th file.
    """
    bucket, _ = fleet
    a = services(f"s3://{bucket}", **shared)
    whole = body(a, ["v"], "zip", compression="store")
    if a.root.crc_store is not None:
        a.root.crc_store.flush()  # type: ignore[attr-defined]
    b = services(f"s3://{bucket}", **shared)
    requests = Requests(b.root.client)
    plan = b.archive(["v"], "zip", compression="store")
    assert plan.layout is not None and plan.total == len(whole)
    start = plan.layout.offsets[4] + 100 + 3 * MiB // 4  # v/3.bin is entry 4 (after v/)
    assert body(b, ["v"], "zip", start, compression="store") == whole[start:]
    data = [g for g in requests.of("GetObject") if not g["Key"].startswith(CRC_PREFIX)]
    first = min((g["Range"] for g in data if g["Key"] == "v/3.bin"), default="")
    return {g["Key"] for g in data}, first


def test_resume_on_a_cold_server_reads_only_what_follows_with_shared_crcs(
        fleet: tuple[str, dict[str, bytes]], services: Callable[..., Service]) -> None:
    keys, first = resume_reads(fleet, services, s3_crc_prefix=CRC_PREFIX)
    assert keys == {"v/3.bin", "v/4.bin", "v/5.bin"}
    assert int(first[6:].split("-")[0]) > 0  # from inside the file, not from its start


def test_resume_on_a_cold_server_without_shared_crcs_reads_earlier_files(
        fleet: tuple[str, dict[str, bytes]], services: Callable[..., Service]) -> None:
    keys, _ = resume_reads(fleet, services)
    assert {"v/0.bin", "v/1.bin", "v/2.bin"} <= keys  # their CRCs, for the central directory


def test_an_s3_source_has_a_stores_capabilities_and_sends_nothing_unread(
        s3: Any, services: Callable[..., Service]) -> None:
    svc = services(f"s3://{new_bucket(s3)}", s3_crc_prefix=CRC_PREFIX)
    found = [isinstance(svc.root, c) for c in (SendsUnread, SharesCrcs, KnowsCrcs, FetchesWhole)]
    assert found == [False, True, True, True]
    assert svc.cache.shared is svc.root.crc_store  # type: ignore[attr-defined]


def test_shared_crc_objects_are_never_served(fleet: tuple[str, dict[str, bytes]],
                                             services: Callable[..., Service], s3: Any) -> None:
    bucket, objects = fleet
    svc = services(f"s3://{bucket}", s3_crc_prefix=CRC_PREFIX)
    body(svc, ["."], "zip", compression="store")
    svc.root.crc_store.flush()  # type: ignore[union-attr]
    # One object per file, and one holding the whole archive's CRCs.
    assert s3.list_objects_v2(Bucket=bucket, Prefix=CRC_PREFIX)["KeyCount"] == len(objects) + 1
    assert [n.shown for n in svc.listing("")[1]] == ["v"]
    with zipfile.ZipFile(BytesIO(body(svc, ["."], "zip", compression="store"))) as zf:
        assert not [n for n in zf.namelist() if n.startswith(".zipserve")]


def test_a_wrong_shared_crc_aborts_before_the_files_last_byte(
        fleet: tuple[str, dict[str, bytes]], services: Callable[..., Service], s3: Any) -> None:
    bucket, _ = fleet
    a = services(f"s3://{bucket}", s3_crc_prefix=CRC_PREFIX)
    node = a.file("v/0.bin")
    a.cache.put(node, 0x12345678)  # a lie every machine now shares
    a.root.crc_store.flush()  # type: ignore[union-attr]
    # Bigger than a part, the file is not held whole: its header takes the shared CRC.
    b = services(f"s3://{bucket}", s3_crc_prefix=CRC_PREFIX, s3_part_size=MiB)
    with pytest.raises(SourceChanged, match="differs from its CRC"):
        body(b, ["v/0.bin"], "zip", compression="store")


# --- listings, limits, pins -------------------------------------------------------------------


def test_listing_past_1000_keys_is_complete(s3: Any, services: Callable[..., Service]) -> None:
    bucket = new_bucket(s3)
    put_all(s3, bucket, {f"many/{i:04d}": b"" for i in range(1003)})
    svc = services(f"s3://{bucket}")
    assert len(svc.listing("many")[1]) == 1003
    assert len(svc.archive(["many"], "tar").entries) == 1004  # the folder and every file


def test_max_files_is_413_before_any_read(s3: Any, s3_env: CephRgw) -> None:
    bucket = new_bucket(s3)
    put_all(s3, bucket, {f"d/{i}": b"x" for i in range(10)})
    app = create_app(Settings(root=f"s3://{bucket}", crc_cache=None, max_files=4,
                              source_options={"s3_endpoint": s3_env.endpoint}))
    with TestClient(app) as client:
        r = client.get("/archive/d.tar")
    assert r.status_code == 413


def test_pinned_etag_is_412_once_an_object_is_replaced(s3: Any, s3_env: CephRgw) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="d/f.txt", Body=b"one")
    app = create_app(Settings(root=f"s3://{bucket}", crc_cache=None,
                              source_options={"s3_endpoint": s3_env.endpoint}))
    with TestClient(app) as client:
        old = client.get("/archive/d.tar").headers["etag"]
        s3.put_object(Bucket=bucket, Key="d/f.txt", Body=b"two")  # same size, maybe same second
        r = client.get("/archive/d.tar?etag=" + old.strip('"'))
        new = client.get("/archive/d.tar").headers["etag"]
    assert r.status_code == 412
    assert new != old


def test_empty_folder_marker_is_an_empty_folder(s3: Any, services: Callable[..., Service]
                                                ) -> None:
    bucket = new_bucket(s3)
    put_all(s3, bucket, {"e/": b"", "f/g/": b"", "f/h.txt": b"h"})
    svc = services(f"s3://{bucket}")
    with zipfile.ZipFile(BytesIO(body(svc, ["."], "zip"))) as zf:
        assert zf.namelist() == ["e/", "f/", "f/g/", "f/h.txt"]


# --- the command line -------------------------------------------------------------------------


def test_pack_writes_the_archive_from_s3(s3: Any, ceph_rgw: CephRgw,
                                         tmp_path: Path) -> None:
    bucket = new_bucket(s3)
    tree = build_tree(tmp_path / "tree")
    upload_tree(s3, bucket, "t/", tree)
    out = tmp_path / "docs.tar"
    done = subprocess.run([sys.executable, "-m", "zipserve", "pack", f"s3://{bucket}/t", "docs",
                           "--format", "tar", "-o", str(out), "--s3-endpoint", ceph_rgw.endpoint],
                          capture_output=True, timeout=TIMEOUT, env={**CLI_ENV, **ceph_rgw.env()},
                          check=False)
    assert done.returncode == 0, done.stderr
    with tarfile.open(out) as tf:
        for m in tf.getmembers():
            if m.isfile():
                assert tf.extractfile(m).read() == (tree / m.name).read_bytes()  # type: ignore[union-attr]


def test_sign_pins_the_etag_the_s3_server_sends(s3: Any, ceph_rgw: CephRgw,
                                                s3_server: Callable[..., Server]) -> None:
    bucket = new_bucket(s3)
    put_all(s3, bucket, {"d/a.txt": b"a", "d/b.bin": os.urandom(1000)})
    server = s3_server(f"s3://{bucket}", "--secret", "s3cret")
    done = subprocess.run([sys.executable, "-m", "zipserve", "sign", "d", "--format", "tar",
                           "--secret", "s3cret", "--root", f"s3://{bucket}",
                           "--s3-endpoint", ceph_rgw.endpoint, "--base-url", server.url],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          env={**CLI_ENV, **ceph_rgw.env()}, check=False)
    assert done.returncode == 0, done.stderr
    r = httpx.get(done.stdout.strip(), timeout=TIMEOUT)
    assert r.status_code == 200
    assert "etag=" + r.headers["etag"].strip('"') in done.stdout


@pytest.mark.parametrize("served", ["s3://", "s3:///prefix", "s3://bucket/a/../b"])
def test_settings_refuse_an_s3_root_that_names_no_bucket_or_path(served: str) -> None:
    with pytest.raises(ValueError):
        Settings(root=served)


def test_settings_keep_an_s3_root_as_text() -> None:
    assert Settings(root="s3://bucket/some/prefix", crc_cache=None).root == \
        "s3://bucket/some/prefix"
