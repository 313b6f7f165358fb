"""zipserve.records: keys, round trips and expiry on every store (SQLite file, memory, S3 on Ceph),
SQLite shared by processes and purged, and --records checked at startup."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Serve
from tests.s3.ceph_rgw import CephRgw
from tests.s3.support import new_bucket
from zipserve import records
from zipserve.errors import BadGateway, ConfigError
from zipserve.records.base import MAX_RECORD, Records, check_key
from zipserve.records.s3 import EXPIRES
from zipserve.records.sqlite import SqliteRecords
from zipserve.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DATA = b'{"entries":[]}\x00\xff binary too'
KEY = hashlib.sha256(DATA).hexdigest()
OTHER = hashlib.sha256(b"other").hexdigest()


@pytest.fixture(params=["file", "memory", pytest.param("s3", marks=pytest.mark.ceph)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Records]:
    """Each kind of store, fresh: a SQLite file, this process's memory, a prefix of a new Ceph bucket."""
    if request.param == "s3":
        rgw: CephRgw = request.getfixturevalue("s3_env")
        bucket = new_bucket(request.getfixturevalue("s3"))
        made = records.open_records(f"s3://{bucket}/links", {"s3_endpoint": rgw.endpoint})
    else:
        made = records.open_records(tmp_path / "r.sqlite3" if request.param == "file" else None, {})
    yield made
    made.close()


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["0" * 64, "f" * 64, KEY, "0123456789abcdef" * 4])
def test_a_key_of_64_lowercase_hex_digits_is_accepted(key: str) -> None:
    assert check_key(key) == key


BAD_KEYS = {
    "uppercase": "A" * 64,
    "63 digits": "a" * 63,
    "65 digits": "a" * 65,
    "not hex": "g" * 64,
    "newline after": "a" * 64 + "\n",
    "space before": " " + "a" * 63,
    "path": "../" + "a" * 61,
    "empty": "",
    "bytes": b"a" * 64,
    "None": None,
}


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_any_other_key_is_a_value_error(key: Any) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        check_key(key)


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_every_store_refuses_a_bad_key_on_get_and_put(store: Records, key: Any) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        store.get(key)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        store.put(key, DATA)


BAD_PUTS = {
    "text, not bytes": ("text", None),
    "over the cap": (b"x" * (MAX_RECORD + 1), None),
    "float expiry": (DATA, 1.5),
    "bool expiry": (DATA, True),
    "text expiry": (DATA, "123"),
}


@pytest.mark.parametrize(("data", "expires"), BAD_PUTS.values(), ids=BAD_PUTS.keys())
def test_every_store_refuses_what_is_no_record(store: Records, data: Any, expires: Any) -> None:
    with pytest.raises(ValueError):
        store.put(KEY, data, expires=expires)
    assert store.get(KEY) is None


# --- round trips and expiry, on every store ---------------------------------------------------


def test_a_record_reads_back_byte_for_byte(store: Records) -> None:
    store.put(KEY, DATA)
    assert store.get(KEY) == DATA
    assert store.get(OTHER) is None


def test_putting_the_same_key_twice_is_fine(store: Records) -> None:
    store.put(KEY, DATA)
    store.put(KEY, DATA)
    assert store.get(KEY) == DATA


def test_a_record_reads_until_it_expires(store: Records) -> None:
    now = int(time.time())
    store.put(KEY, DATA, expires=now + 3600)
    store.put(OTHER, b"gone", expires=now - 1)
    assert store.get(KEY) == DATA
    assert store.get(OTHER) is None


@pytest.mark.parametrize(("first", "second", "readable"), [
    (3600, -10, True),  # a later put with a shorter life keeps the longer one
    (None, -10, True),  # never expiring stays so
    (-10, None, True),  # an expired record put again lives again
    (-10, 3600, True),
    (-20, -10, False),
])
def test_a_key_put_again_keeps_the_later_expiry(store: Records, first: int | None,
                                                second: int | None, readable: bool) -> None:
    now = int(time.time())
    store.put(KEY, DATA, expires=None if first is None else now + first)
    store.put(KEY, DATA, expires=None if second is None else now + second)
    assert (store.get(KEY) == DATA) is readable


# --- SQLite: shared by processes, purged ------------------------------------------------------


def test_two_connections_share_one_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    a, b = SqliteRecords(path), SqliteRecords(path)
    try:
        a.put(KEY, DATA)
        assert b.get(KEY) == DATA
        b.put(OTHER, b"from b")
        assert a.get(OTHER) == b"from b"
    finally:
        a.close()
        b.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_record_put_by_another_process_is_read_here(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    here = SqliteRecords(path)  # open while the other process writes
    try:
        code = ("import sys; from zipserve.records import open_records; "
                "r = open_records(sys.argv[1], {}); "
                "r.put(sys.argv[2], sys.stdin.buffer.read(), expires=None); r.close()")
        subprocess.run([sys.executable, "-c", code, str(path), KEY], input=DATA, cwd=REPO,
                       check=True, timeout=60)
        assert here.get(KEY) == DATA
    finally:
        here.close()


def test_expired_rows_are_purged_when_the_file_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    now = int(time.time())
    first = SqliteRecords(path)
    first.put(KEY, DATA, expires=now + 3600)
    first.put(OTHER, b"old", expires=now - 1)
    first.close()
    SqliteRecords(path).close()
    with sqlite3.connect(path) as db:
        assert [k for (k,) in db.execute("SELECT k FROM records")] == [KEY]


def test_a_put_purges_once_the_interval_has_passed(tmp_path: Path) -> None:
    clock = [1_000_000.0]
    store = SqliteRecords(tmp_path / "r.sqlite3", clock=lambda: clock[0])
    try:
        store.put(OTHER, b"old", expires=1_000_010)
        clock[0] += 20  # expired, not yet purged: reads as absent, row still there
        store.put(KEY, DATA)
        assert store.get(OTHER) is None
        assert store.purge() == 1
    finally:
        store.close()


# --- S3 -------------------------------------------------------------------------------------


@pytest.fixture
def bucket(s3: Any, s3_env: CephRgw) -> str:
    return new_bucket(s3)


def test_s3_records_are_objects_under_the_prefix_with_their_expiry(s3: Any, s3_env: CephRgw,
                                                                  bucket: str) -> None:
    store = records.open_records(f"s3://{bucket}/links/", {"s3_endpoint": s3_env.endpoint})
    try:
        store.put(KEY, DATA, expires=2_000_000_000)
        store.put(OTHER, b"expired", expires=1)
    finally:
        store.close()
    head = s3.head_object(Bucket=bucket, Key=f"links/{KEY}")
    assert head["Metadata"] == {EXPIRES: "2000000000"}
    # S3 deletes nothing by itself: the expired record's object stays (a lifecycle rule reclaims it).
    assert s3.get_object(Bucket=bucket, Key=f"links/{OTHER}")["Body"].read() == b"expired"


def test_two_servers_share_s3_records(s3_env: CephRgw, bucket: str) -> None:
    spec, options = f"s3://{bucket}/fleet", {"s3_endpoint": s3_env.endpoint}
    one, two = records.open_records(spec, options), records.open_records(spec, options)
    try:
        one.put(KEY, DATA, expires=int(time.time()) + 60)
        assert two.get(KEY) == DATA
    finally:
        one.close()
        two.close()


def test_an_s3_record_store_without_its_bucket_is_a_bad_gateway(s3_env: CephRgw) -> None:
    store = records.open_records("s3://zs-no-such-bucket-here/x", {"s3_endpoint": s3_env.endpoint})
    try:
        with pytest.raises(BadGateway, match="NoSuchBucket"):
            store.get(KEY)
        with pytest.raises(BadGateway, match="NoSuchBucket"):
            records.probe("s3://zs-no-such-bucket-here/x", {"s3_endpoint": s3_env.endpoint})
    finally:
        store.close()


# --- settings and startup -----------------------------------------------------------------------


def test_the_default_store_is_a_file_in_the_cache_folder(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "root").mkdir()
    assert Settings(root=tmp_path / "root").records == tmp_path / "cache" / "zipserve" / "records.sqlite3"


@pytest.mark.parametrize(("given", "kept"), [
    ("s3://bucket/links", "s3://bucket/links"),
    ("relative/r.sqlite3", Path("relative/r.sqlite3")),
    (None, None),
])
def test_settings_keep_a_url_as_text_and_a_path_as_a_path(tmp_path: Path, given: str | None,
                                                           kept: object) -> None:
    from zipserve.cli import settings_from_json, settings_to_json

    settings = Settings(root=tmp_path, records=given)
    assert settings.records == kept
    assert settings_from_json(settings_to_json(settings)).records == kept  # as workers get them


REFUSED = {
    "no bucket": (["--records", "s3://"], "does not name a bucket"),
    "other scheme": (["--records", "gs://bucket/links"], "a file path or s3://bucket/prefix"),
    "a folder": (["--records", "{tmp}"], "is a folder"),
    "inside the root": (["--records", "{root}/.zipserve/records.sqlite3"], "inside the served folder"),
    "under a file": (["--records", "{tmp}/file/records.sqlite3"], "cannot keep records in"),
}


@pytest.mark.parametrize(("args", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_serve_refuses_a_bad_records_spec_at_startup(tmp_path: Path, args: list[str],
                                                     message: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "file").write_bytes(b"")
    args = [a.format(tmp=tmp_path, root=root) for a in args]
    done = subprocess.run([sys.executable, "-m", "zipserve", "serve", str(root), "--port", "1",
                           *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode in (1, 2)
    assert message in done.stderr and "--records" in done.stderr
    assert "Traceback" not in done.stderr


def test_zipserve_records_in_the_environment_is_checked_like_the_option(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "zipserve", "serve", str(tmp_path), "--port", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ZIPSERVE_RECORDS": "gs://b/x"})
    assert done.returncode == 2
    assert "a file path or s3://bucket/prefix" in done.stderr


@pytest.mark.parametrize(("root", "spec"), [
    ("s3://shared/tree", "s3://shared/tree/links"),
    ("s3://shared/tree", "s3://shared"),
    ("s3://shared", "s3://shared/links"),
])
def test_s3_records_overlapping_the_served_root_are_refused(root: str, spec: str) -> None:
    with pytest.raises(ConfigError, match="overlaps the served root"):
        Settings(root=root, records=spec)


@pytest.mark.parametrize(("root", "spec"), [
    ("s3://shared/tree", "s3://shared/treelinks"),
    ("s3://shared/tree", "s3://other/tree"),
])
def test_s3_records_beside_the_served_root_are_accepted(root: str, spec: str) -> None:
    assert Settings(root=root, records=spec).records == spec


def test_a_server_keeps_its_records_where_told_and_serving_a_folder_loads_no_boto3(
        tmp_path: Path) -> None:
    path = tmp_path / "kept" / "records.sqlite3"
    (tmp_path / "root").mkdir()
    code = ("import sys; from zipserve.service import Service; from zipserve.settings import "
            "Settings; s = Service(Settings(root=sys.argv[1], records=sys.argv[2], crc_cache=None));"
            f" s.records.put('{KEY}', b'x'); s.close(); print('boto3' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "root"), str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"
    kept = SqliteRecords(path)
    assert kept.get(KEY) == b"x"
    kept.close()


def test_serve_refuses_s3_records_in_a_missing_bucket(tmp_path: Path, ceph_rgw: CephRgw) -> None:
    done = subprocess.run([sys.executable, "-m", "zipserve", "serve", str(tmp_path), "--port", "1",
                           "--records", "s3://zs-no-such-bucket-here/links",
                           "--s3-endpoint", ceph_rgw.endpoint],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **ceph_rgw.env()})
    assert done.returncode == 1
    assert "--records: the record store failed while listing its prefix (NoSuchBucket)" in done.stderr


# --- links served by any server that shares the records ------------------------------------------


def long_manifest() -> dict[str, Any]:
    """A manifest too long to travel in its link (hashes do not deflate): it is stored."""
    names = [hashlib.sha256(str(i).encode()).hexdigest() + ".txt" for i in range(80)]
    return {"name": "many", "format": "zip",
            "entries": [{"source": "a.txt", "name": n} for n in names]}


def stored_link(url: str) -> str:
    posted = httpx.post(url + "/manifest", json=long_manifest(), timeout=60)
    assert posted.status_code == 201, posted.text
    assert "/manifest/sha256/" in posted.json()["path"]
    return str(posted.json()["path"])


@pytest.mark.parametrize("where", ["file", pytest.param("s3", marks=pytest.mark.ceph)])
def test_a_stored_manifest_link_works_on_every_server_sharing_the_records(
        request: pytest.FixtureRequest, tmp_path: Path, server_factory: Serve, where: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_bytes(b"hello records\n")
    args, env = ["--records", str(tmp_path / "shared.sqlite3")], None
    if where == "s3":
        rgw: CephRgw = request.getfixturevalue("ceph_rgw")
        bucket = new_bucket(request.getfixturevalue("s3"))
        args, env = ["--records", f"s3://{bucket}/links", "--s3-endpoint", rgw.endpoint], rgw.env()
    one, two = server_factory(root, *args, env=env), server_factory(root, *args, env=env)
    path = stored_link(one.url)
    got = httpx.get(two.url + path, timeout=60)
    assert got.status_code == 200, got.text
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        assert sorted(z.namelist()) == sorted(e["name"] for e in long_manifest()["entries"])
        assert {z.read(n) for n in z.namelist()} == {b"hello records\n"}
    elsewhere = server_factory(root)  # its own records file: the link names nothing there
    assert httpx.get(elsewhere.url + path, timeout=60).status_code == 404
