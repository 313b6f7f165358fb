"""Manifest links on a real server over the local root and an nginx origin: what a folder's archive
has (Content-Length, strong ETag, Range, If-Range, ?etag= pinning, HEAD), missing=fail and
missing=skip, hostile names and sizes refused naming the entry, a wrong crc32 cutting the stream,
and who may ask (the token) and which links are honoured (signed, unexpired, unaltered).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import TIMEOUT, Serve, Server
from tests.manifest_tools import SIZED, fetch, link, manifest_of, members, post, replace, write
from tests.origin import Origin, start_origin, stop_origin

MTIME = 1_700_000_000
rng = random.Random(1307)
LOCAL = {"u/81/a8f3e1": rng.randbytes(120_000), "docs/a.txt": b"local text\n" * 100}
WWW = {"ok/big.bin": rng.randbytes(2_500_000), "ok/b.txt": b"remote text\n" * 300}
SECRET, TOKEN = "manifest-secret", "manifest-token"


@dataclass
class Site:
    server: Server
    root: Path
    origin: Origin

    def entries(self) -> list[dict[str, Any]]:
        web = self.origin.base
        return [{"source": f"{web}/ok/big.bin", "name": "Big/remote one.bin"},
                {"source": "u/81/a8f3e1", "name": "Invoices/2024-03 ACME.pdf", "mtime": MTIME},
                {"name": "Empty/"},
                {"source": f"{web}/ok/b.txt", "name": "b.txt", "mtime": MTIME + 2},
                {"source": "docs/a.txt", "name": "A/a.txt"}]


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    served = start_origin(tmp_path_factory.mktemp("origin"), {})
    for name, data in WWW.items():
        write(served.www / name, data, MTIME)
    yield served
    stop_origin(served)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mroot")
    for name, data in LOCAL.items():
        write(folder / name, data, MTIME)
    return folder


@pytest.fixture(scope="module")
def site(serve: Serve, root: Path, origin: Origin) -> Site:
    return Site(serve(root, "--allow-url", f"{origin.base}/ok/"), root, origin)


@pytest.fixture(scope="module")
def whole(site: Site) -> dict[str, tuple[dict[str, Any], httpx.Response]]:
    """Each sized format's link and its whole download."""
    out = {}
    for fmt, compression in SIZED:
        answer = link(site.server, manifest_of(site.entries(), fmt, compression))
        r = fetch(answer["url"])
        assert r.status_code == 200, r.text
        out[fmt] = answer, r
    return out


# --- sized: a manifest's stored ZIP and tar have everything a folder's have -------------------------


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_sized_archive_has_its_length_a_strong_etag_and_the_same_head(
        whole: dict[str, tuple[dict[str, Any], httpx.Response]], fmt: str) -> None:
    answer, r = whole[fmt]
    assert r.headers["content-length"] == str(len(r.content)) == str(answer["size"])
    assert r.headers["etag"] == answer["etag"] and r.headers["etag"].startswith('"')
    assert r.headers["accept-ranges"] == "bytes"
    assert [m.name for m in members(fmt, r.content)] == [
        "Big/remote one.bin", "Invoices/2024-03 ACME.pdf", "Empty/", "b.txt", "A/a.txt"]
    head = httpx.head(answer["url"], timeout=TIMEOUT)
    assert head.status_code == 200 and head.content == b""
    for key in ("content-length", "etag", "accept-ranges", "content-type", "content-disposition",
                "last-modified"):
        assert head.headers[key] == r.headers[key], key


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_random_ranges_are_slices_of_the_whole(
        whole: dict[str, tuple[dict[str, Any], httpx.Response]], fmt: str) -> None:
    answer, r = whole[fmt]
    body, pick = r.content, random.Random(fmt)
    for _ in range(12):
        lo = pick.randrange(len(body))
        hi = min(len(body) - 1, lo + pick.choice([0, 1, 511, 70_000, 3_000_000]))
        part = fetch(answer["url"], Range=f"bytes={lo}-{hi}", **{"If-Range": answer["etag"]})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes {lo}-{hi}/{len(body)}"
        assert part.content == body[lo:hi + 1]


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_if_range_with_a_wrong_etag_is_the_whole_archive(
        whole: dict[str, tuple[dict[str, Any], httpx.Response]], fmt: str) -> None:
    answer, r = whole[fmt]
    again = fetch(answer["url"], Range="bytes=100-", **{"If-Range": '"zs3-not-this-one"'})
    assert again.status_code == 200
    assert again.content == r.content


def changed_site(serve: Serve, tmp: Path) -> tuple[Server, Origin, Path]:
    """Start an origin and a server of their own (files here get replaced); return both and the root."""
    (tmp / "o").mkdir()
    origin = start_origin(tmp / "o", {})
    write(origin.www / "ok/c.bin", rng.randbytes(70_000), MTIME)
    write(tmp / "root/c.bin", rng.randbytes(70_000), MTIME)
    return serve(tmp / "root", "--allow-url", f"{origin.base}/ok/"), origin, tmp / "root"


@pytest.mark.parametrize("which", ["http", "local"])
@pytest.mark.parametrize(("fmt", "compression"), SIZED)
def test_a_pinned_link_answers_412_once_a_source_changes(
        server_factory: Serve, tmp_path: Path, which: str, fmt: str, compression: str | None) -> None:
    server, origin, root = changed_site(server_factory, tmp_path)
    try:
        entries = [{"source": f"{origin.base}/ok/c.bin", "name": "web.bin"},
                   {"source": "c.bin", "name": "disk.bin"}]
        answer = link(server, manifest_of(entries, fmt, compression))
        assert "etag=" in answer["url"]
        before = fetch(answer["url"])
        assert before.status_code == 200 and before.headers["etag"] == answer["etag"]
        target = origin.www / "ok/c.bin" if which == "http" else root / "c.bin"
        replace(target, rng.randbytes(70_000), MTIME + 60)
        after = fetch(answer["url"], Range="bytes=10-")
        assert after.status_code == 412, after.text
        assert httpx.head(answer["url"], timeout=TIMEOUT).status_code == 412
        unpinned = link(server, manifest_of(entries, fmt, compression), pin="0")
        assert "etag=" not in unpinned["url"] and unpinned["etag"] != answer["etag"]
        assert fetch(unpinned["url"]).status_code == 200
    finally:
        stop_origin(origin)


# --- missing files ------------------------------------------------------------------------------


def with_missing(site: Site) -> list[dict[str, Any]]:
    return [*site.entries()[:2],
            {"source": "u/81/gone", "name": "Invoices/gone.pdf"},
            {"source": f"{site.origin.base}/ok/gone.bin", "name": "web/gone.bin"},
            *site.entries()[2:]]


def test_missing_fail_is_404_listing_every_missing_entry(site: Site) -> None:
    before = len(site.origin.settled())
    r = post(site.server, manifest_of(with_missing(site), "zip", "store"))
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "missing"
    listed = {(m["entry"], m["name"], m["source"]) for m in error["missing"]}
    assert listed == {(2, "Invoices/gone.pdf", "u/81/gone"),
                      (3, "web/gone.bin", f"{site.origin.base}/ok/gone.bin")}
    gets = [line for line in site.origin.settled()[before:] if " GET " in line]
    assert gets == []  # nothing was read: only HEADs stat'ed the sources


def test_a_link_whose_file_went_away_is_404_listing_it(site: Site, tmp_path: Path) -> None:
    doomed = write(site.root / "doomed.txt", b"soon gone\n", MTIME)
    entries = [{"source": "doomed.txt", "name": "d.txt"}, site.entries()[1]]
    answer = link(site.server, manifest_of(entries, "zip", "store"), pin="0")
    doomed.unlink()
    r = fetch(answer["url"])
    assert r.status_code == 404
    assert [m["name"] for m in r.json()["error"]["missing"]] == ["d.txt"]


@pytest.mark.parametrize(("fmt", "compression"), [("zip", "store"), ("tar.gz", None)])
def test_missing_skip_adds_a_report_naming_each_skipped_entry(
        site: Site, fmt: str, compression: str | None) -> None:
    answer = link(site.server, manifest_of(with_missing(site), fmt, compression, missing="skip"))
    assert [s["name"] for s in answer["skipped"]] == ["Invoices/gone.pdf", "web/gone.bin"]
    got = members(fmt, fetch(answer["url"]).content)
    names = [m.name for m in got]
    assert names[:-1] == [e["name"] for e in site.entries()]
    assert names[-1] == "MISSING.txt"
    report = got[-1].data.decode()
    for skipped in answer["skipped"]:
        assert skipped["name"] in report and skipped["why"] in report
    assert "u/81/gone" in report and "/ok/gone.bin" in report


def test_head_of_a_link_reads_no_object(site: Site) -> None:
    answer = link(site.server, manifest_of(site.entries(), "zip", "store"), pin="0")
    before = len(site.origin.settled())
    head = httpx.head(answer["url"], timeout=TIMEOUT)
    assert head.status_code == 200 and head.headers["content-length"] == str(answer["size"])
    made = site.origin.settled()[before:]
    assert made and all(" HEAD " in line for line in made), made


def variants(site: Site) -> dict[str, list[dict[str, Any]]]:
    """Return manifests' entries that differ in one way each from the first."""
    base = site.entries()[1:4]
    return {
        "base": base,
        "an mtime": [{**base[0], "mtime": MTIME + 1}, *base[1:]],
        "a folder's mtime": [base[0], {"name": "Empty/", "mtime": MTIME + 2}, base[2]],
        "a name": [{**base[0], "name": "Invoices/2024-03 ACME 2.pdf"}, *base[1:]],
        "the order": base[::-1],
    }


@pytest.mark.parametrize(("fmt", "compression"), SIZED)
def test_the_etag_changes_with_every_byte_and_only_then(site: Site, fmt: str,
                                                        compression: str | None) -> None:
    seen: dict[str, bytes] = {}
    for label, entries in variants(site).items():
        answer = link(site.server, manifest_of(entries, fmt, compression))
        body = fetch(answer["url"]).content
        assert answer["etag"] not in seen, label
        seen[answer["etag"]] = body
        renamed = link(site.server, manifest_of(entries, fmt, compression, name="Other name"))
        assert renamed["etag"] == answer["etag"] and fetch(renamed["url"]).content == body
    assert len(set(seen.values())) == len(seen)


def test_a_cold_stored_zip_reads_each_remote_object_once(serve: Serve, root: Path,
                                                          origin: Origin) -> None:
    # A new server knows no CRC: big.bin (2.5 MB) is fetched ahead whole for its header's CRC and
    # sent from the same bytes, not read once for the CRC and again for the data.
    server = serve(root, "--allow-url", f"{origin.base}/ok/")
    answer = link(server, manifest_of(Site(server, root, origin).entries(), "zip", "store"))
    before = len(origin.settled())
    r = fetch(answer["url"])
    assert r.status_code == 200 and len(r.content) == answer["size"]
    assert [m.name for m in members("zip", r.content)][0] == "Big/remote one.bin"
    gets = sorted(line for line in origin.settled()[before:] if " GET " in line)
    assert gets == ["127.0.0.1 GET /ok/b.txt 206", "127.0.0.1 GET /ok/big.bin 206"]
