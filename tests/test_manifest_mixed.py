"""One manifest over every source at once, end to end on real servers: the local root, a bucket of
the real Ceph RGW (s3://) and an nginx origin (http://, allowlisted), under names unlike the sources.

Each format's archive is read back by the standard library and by the usual tools (unzip, 7z,
bsdtar, tar) with exactly the manifest's names, order, bytes and mtimes; `zipserve pack --manifest`
writes the very bytes the server's link downloads.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import CLI_ENV, TIMEOUT, Serve, Server, need_tool, run
from tests.manifest_tools import FORMATS, Member, fetch, link, manifest_of, members, write
from tests.origin import Origin, start_origin, stop_origin
from tests.s3.ceph_rgw import CephRgw
from tests.s3.support import new_bucket, put_all

pytestmark = pytest.mark.ceph

MTIME = 1_700_000_000
ISO = "2024-03-31T09:00:00Z"
ISO_SECONDS = 1_711_875_600
rng = random.Random(1313)
LOCAL = {"u/81/a8f3e1": rng.randbytes(48_213), "docs/readme.txt": b"hello zipserve\n" * 40}
S3 = {"u/81/b77c02": rng.randbytes(1_500_000), "u/82/empty": b"", "notes/x.txt": b"from the store\n"}
WWW = {"ok/photo.bin": rng.randbytes(300_001), "ok/small.txt": b"from the origin\n" * 3}


@dataclass
class Mixed:
    """A server reading the root, the store and the origin, and what a manifest over them holds."""

    server: Server
    root: Path
    bucket: str
    origin: Origin
    ceph: CephRgw
    args: tuple[str, ...]

    def entries(self) -> list[dict[str, Any]]:
        """Return the manifest's entries: sources of every kind, in an order no sort would give."""
        web, s3 = self.origin.base, f"s3://{self.bucket}"
        return [
            {"source": "u/81/a8f3e1", "name": "Invoices/2024-03 ACME.pdf", "mtime": ISO},
            {"source": f"{s3}/u/81/b77c02", "name": "Invoices/2024-04 Initech.pdf",
             "mtime": MTIME + 7},
            {"source": f"{web}/ok/photo.bin", "name": "Photos/Caf\u00e9 \u00fcber.jpg",
             "mtime": MTIME + 9},
            {"name": "Empty folder/", "mtime": MTIME + 11},
            {"source": "docs/readme.txt", "name": "A first.txt", "mtime": MTIME + 13},
            {"source": f"{s3}/u/82/empty", "name": "Invoices/empty.txt", "mtime": MTIME + 17},
            {"source": f"{web}/ok/small.txt", "name": "z/small.txt", "mtime": MTIME + 19},
            {"source": f"{s3}/notes/x.txt", "name": "B/x.txt", "mtime": MTIME + 23},
        ]

    def expected(self) -> list[Member]:
        """Return the members a reader must find, in order: the manifest's names, bytes, mtimes."""
        data = {"u/81/a8f3e1": LOCAL["u/81/a8f3e1"], "docs/readme.txt": LOCAL["docs/readme.txt"]}
        data |= {f"s3://{self.bucket}/{k}": v for k, v in S3.items()}
        data |= {f"{self.origin.base}/{k}": v for k, v in WWW.items()}
        out = []
        for e in self.entries():
            mtime = ISO_SECONDS if e["mtime"] == ISO else e["mtime"]
            out.append(Member(e["name"], data[e["source"]] if "source" in e else b"", mtime))
        return out


@pytest.fixture(scope="module")
def site(ceph_rgw: CephRgw, s3: Any, serve: Serve,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mixed]:
    tmp = tmp_path_factory.mktemp("mixed")
    (tmp / "origin").mkdir()
    origin = start_origin(tmp / "origin", {})
    for name, data in WWW.items():
        write(origin.www / name, data, MTIME)
    root = tmp / "root"
    for name, data in LOCAL.items():
        write(root / name, data, MTIME)
    bucket = new_bucket(s3)
    put_all(s3, bucket, S3)
    args = ("--allow-url", f"{origin.base}/ok/", "--s3-endpoint", ceph_rgw.endpoint)
    server = serve(root, *args, env=ceph_rgw.env())
    yield Mixed(server, root, bucket, origin, ceph_rgw, args)
    stop_origin(origin)


@pytest.fixture(scope="module")
def archives(site: Mixed) -> dict[tuple[str, str | None], bytes]:
    """Each format's archive of the manifest, downloaded once through its link."""
    out = {}
    for fmt, compression in FORMATS:
        answer = link(site.server, manifest_of(site.entries(), fmt, compression, name="March"))
        r = fetch(answer["url"])
        assert r.status_code == 200, r.text
        out[fmt, compression] = r.content
    return out


@pytest.mark.parametrize(("fmt", "compression"), FORMATS)
def test_every_format_holds_the_manifests_names_order_bytes_and_mtimes(
        site: Mixed, archives: dict[tuple[str, str | None], bytes], fmt: str,
        compression: str | None) -> None:
    got = members(fmt, archives[fmt, compression])
    expected = site.expected()
    if fmt == "zip":  # a DOS time counts every other second (APPNOTE 4.4.6)
        expected = [Member(m.name, m.data, m.mtime - m.mtime % 2) for m in expected]
    assert [m.name for m in got] == [m.name for m in expected]
    assert got == expected


def tool_listing(fmt: str, path: Path) -> list[str]:
    """Given an archive file, return the member names the format's usual tools list, checking it."""
    if fmt == "zip":
        need_tool("7z")
        assert "No errors detected" in run("unzip", "-t", path)
        assert "Everything is Ok" in run("7z", "t", path)
        return run("unzip", "-Z1", path).splitlines()
    need_tool("bsdtar")
    names = run("bsdtar", "-tf", path).splitlines()
    flag = {"tar": [], "tar.gz": ["-z"], "tar.zst": ["--zstd"]}[fmt]
    assert run("tar", *flag, "-tf", path).splitlines() == names
    return names


@pytest.mark.parametrize(("fmt", "compression"), FORMATS)
def test_the_usual_tools_read_every_format_with_the_manifests_names(
        site: Mixed, archives: dict[tuple[str, str | None], bytes], fmt: str,
        compression: str | None, tmp_path: Path) -> None:
    path = tmp_path / f"March.{fmt}"
    path.write_bytes(archives[fmt, compression])
    assert tool_listing(fmt, path) == [m.name for m in site.expected()]
    out = tmp_path / "out"
    out.mkdir()
    run("bsdtar", "-xf", path, "-C", out)
    for m in site.expected():
        if m.name.endswith("/"):
            assert (out / m.name).is_dir()
        else:
            assert (out / m.name).read_bytes() == m.data, m.name


@pytest.mark.parametrize(("fmt", "compression"), FORMATS)
def test_pack_manifest_writes_the_links_bytes(
        site: Mixed, archives: dict[tuple[str, str | None], bytes], fmt: str,
        compression: str | None, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(manifest_of(site.entries(), fmt, compression, name="March")))
    out = tmp_path / "out.bin"
    done = subprocess.run(
        [sys.executable, "-m", "zipserve", "pack", str(site.root), "--manifest", str(manifest),
         "-o", str(out), "--no-crc-cache", *site.args],
        capture_output=True, timeout=TIMEOUT, env={**CLI_ENV, **site.ceph.env()}, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert out.read_bytes() == archives[fmt, compression]


def test_head_and_get_agree_on_a_mixed_stored_zip(site: Mixed,
                                                  archives: dict[tuple[str, str | None], bytes]
                                                  ) -> None:
    answer = link(site.server, manifest_of(site.entries(), "zip", "store", name="March"))
    assert answer["size"] == len(archives["zip", "store"])
    assert answer["name"] == "March.zip" and answer["entries"] == len(site.entries())
    head = httpx.head(answer["url"], timeout=TIMEOUT)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(answer["size"])
    assert head.headers["etag"] == answer["etag"]


def test_missing_objects_and_buckets_are_listed_or_reported(site: Mixed) -> None:
    gone = [{"source": f"s3://{site.bucket}/u/81/gone", "name": "gone.pdf"},
            {"source": "s3://zs-no-such-bucket-here/k", "name": "nobucket.pdf"}]
    entries = [*site.entries()[:2], *gone]
    r = httpx.post(f"{site.server.url}/manifest", json=manifest_of(entries, "tar"),
                   timeout=TIMEOUT)
    assert r.status_code == 404, r.text
    assert [m["name"] for m in r.json()["error"]["missing"]] == ["gone.pdf", "nobucket.pdf"]
    answer = link(site.server, manifest_of(entries, "tar", missing="skip"))
    got = members("tar", fetch(answer["url"]).content)
    assert [m.name for m in got] == [e["name"] for e in entries[:2]] + ["MISSING.txt"]
    report = got[-1].data.decode()
    assert "gone.pdf" in report and "nobucket.pdf" in report


def test_an_s3_size_that_disagrees_is_refused(site: Mixed) -> None:
    entry = {"source": f"s3://{site.bucket}/notes/x.txt", "name": "x.txt", "size": 1}
    r = httpx.post(f"{site.server.url}/manifest", json=manifest_of([entry], "tar"),
                   timeout=TIMEOUT)
    assert r.status_code == 400 and "entries[0] 'x.txt'" in r.text
