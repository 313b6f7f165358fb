"""Deflated ZIPs sized once their entries' compressed lengths are known (warmed).

A first download streams unsized and teaches every entry's length; after it
(or after HEAD ?prepare=1, or `zipserve warm`) the same ZIP has a
Content-Length, a strong ETag and Range, with the very bytes the unsized
download had. A file changed since falls back to unsized streaming; a length
that proves wrong cuts the body and is forgotten, never a wrong archive.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.helpers import MTIME, TIMEOUT, Serve, run, wait_until
from tests.s3.support import new_bucket, upload_tree
from zipserve.core.formats import zip, zippacked
from zipserve.core.manifest import load_manifest
from zipserve.core.node import Entry, Node
from zipserve.encode import compress
from zipserve.errors import SourceChanged
from zipserve.service import Service
from zipserve.settings import Settings

AUTO = "/archive?path=.&format=zip"
DEFLATE = "/archive?path=.&format=zip&compression=deflate&level=6"
URLS = [AUTO, DEFLATE]


def build(root: Path) -> Path:
    """Given an empty folder, fill it with files taking every path of the streamed writer."""
    rng = random.Random(14)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"deflate", b"zip", b"\n"]
    files = {
        "docs/readme.txt": b"hello zipserve\n" * 50,  # small, deflated whole
        "docs/medium.txt": b" ".join(rng.choice(words) for _ in range(90_000)),  # > 1 block
        "docs/big.log": b"".join(b"%d GET /x/%d 200\n" % (i, rng.randrange(9999)) for i in range(160_000)),
        "media/noise.bin": rng.randbytes(700_000),  # large: auto stores it
        "media/tiny.bin": rng.randbytes(3000),  # small: auto stores it
        "media/photo.jpg": rng.randbytes(5000),  # stored by its name
        "caf\u00e9/\u00fcber.txt": b"non-ASCII name\n" * 20,
        "empty.txt": b"",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty-folder").mkdir()
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (MTIME, MTIME))
    return root


def pinned(url: str, etag: str) -> str:
    return f"{url}&etag={quote(etag.strip(chr(34)))}"


def check_zip(path: Path) -> None:
    """Given a downloaded ZIP, assert zipfile, unzip, 7z and bsdtar accept it."""
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
    assert "No errors detected" in run("unzip", "-t", str(path))
    assert "Everything is Ok" in run("7z", "t", str(path))
    assert "docs/big.log" in run("bsdtar", "-tf", str(path))


@pytest.fixture(scope="module")
def site(serve: Serve, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = build(tmp_path_factory.mktemp("sized") / "root")
    return serve(root).url, root


@pytest.fixture(scope="module")
def cold(site: tuple[str, Path]) -> dict[str, httpx.Response]:
    """Each ZIP as first downloaded, before anything was warmed: unsized."""
    return {url: httpx.get(site[0] + url, timeout=TIMEOUT) for url in URLS}


@pytest.fixture(scope="module")
def warm(site: tuple[str, Path], cold: dict[str, httpx.Response]) -> dict[str, httpx.Response]:
    """Each ZIP downloaded again, once the first download taught its entries' lengths."""
    return {url: httpx.get(site[0] + url, timeout=TIMEOUT) for url in URLS}


@pytest.mark.parametrize("url", URLS)
def test_a_warmed_zip_is_sized_with_the_bytes_of_the_unsized_one(
        cold: dict[str, httpx.Response], warm: dict[str, httpx.Response], url: str) -> None:
    assert "content-length" not in cold[url].headers and "etag" not in cold[url].headers
    assert warm[url].headers["content-length"] == str(len(cold[url].content))
    assert warm[url].headers["etag"].startswith('"zs') and warm[url].headers["accept-ranges"] == "bytes"
    assert warm[url].content == cold[url].content
    with zipfile.ZipFile(io.BytesIO(warm[url].content)) as z:
        methods = {i.filename: i.compress_type for i in z.infolist()}
    assert methods["docs/big.log"] == zipfile.ZIP_DEFLATED  # deflated entries, sized all the same
    assert methods["media/noise.bin"] == (zipfile.ZIP_STORED if url == AUTO else zipfile.ZIP_DEFLATED)


@pytest.mark.parametrize("url", URLS)
def test_head_gives_the_length_and_random_ranges_are_slices(
        site: tuple[str, Path], warm: dict[str, httpx.Response], url: str) -> None:
    body = warm[url].content
    head = httpx.head(site[0] + url)
    assert head.headers["content-length"] == str(len(body))
    assert head.headers["etag"] == warm[url].headers["etag"]
    rng = random.Random(url)
    with httpx.Client(base_url=site[0], timeout=TIMEOUT) as http:
        for _ in range(25):
            start = rng.randrange(len(body))
            end = min(start + rng.choice([1, 100, 5000, 300_000, len(body)]), len(body)) - 1
            r = http.get(url, headers={"Range": f"bytes={start}-{end}",
                                       "If-Range": warm[url].headers["etag"]})
            assert r.status_code == 206 and r.content == body[start:end + 1], (start, end)


def cut_points(body: bytes) -> list[int]:
    """Given a ZIP, return 10 places to cut it: in headers, packed data, a descriptor, the directory."""
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        infos = {i.filename: i for i in z.infolist()}
    big, medium = infos["docs/big.log"], infos["docs/medium.txt"]
    cd = body.rfind(b"PK\x01\x02", 0, len(body) - 22)
    return [1, infos["docs/readme.txt"].header_offset + 40, medium.header_offset + 7,
            medium.header_offset + 200, big.header_offset + 100_000,
            big.header_offset + big.compress_size // 2, infos["empty.txt"].header_offset,
            body.find(b"PK\x07\x08") + 3, cd - 30, len(body) - 5]


@pytest.mark.parametrize("tool", ["curl", "wget"])
@pytest.mark.parametrize("url", URLS)
def test_curl_and_wget_resume_from_ten_cut_points(site: tuple[str, Path], warm: dict[str, httpx.Response],
                                                  tmp_path: Path, tool: str, url: str) -> None:
    body = warm[url].content
    link = pinned(site[0] + url, warm[url].headers["etag"])
    out = tmp_path / "download.zip"
    for cut in cut_points(body):
        out.write_bytes(body[:cut])
        if tool == "curl":
            run("curl", "-sS", "--fail", "-C", "-", "-o", str(out), link)
        else:
            run("wget", "-q", "-c", "-O", str(out), link)
        assert out.read_bytes() == body, cut
    check_zip(out)


def test_prepare_on_head_sizes_a_zip_without_sending_it(tmp_path: Path, serve: Serve) -> None:
    root = build(tmp_path / "root")
    url = serve(root).url + DEFLATE
    assert "content-length" not in httpx.head(url).headers
    prepared = httpx.head(url + "&prepare=1", timeout=TIMEOUT)
    assert prepared.status_code == 200 and prepared.content == b""
    body = httpx.get(url, timeout=TIMEOUT)
    assert prepared.headers["content-length"] == body.headers["content-length"] == str(len(body.content))
    assert prepared.headers["etag"] == body.headers["etag"]
    path = tmp_path / "out.zip"
    path.write_bytes(body.content)
    check_zip(path)


def test_zipserve_warm_sizes_the_servers_zip(tmp_path: Path, serve: Serve) -> None:
    root = build(tmp_path / "root")
    cache = tmp_path / "cache" / "crc.sqlite3"
    said = subprocess.run([sys.executable, "-m", "zipserve", "warm", str(root), ".", "--crc-cache",
                           str(cache), "--compression", "deflate", "--level", "6"],
                          capture_output=True, timeout=TIMEOUT, check=True).stdout.decode()
    srv = serve(root, "--crc-cache", str(cache))
    head = httpx.head(srv.url + DEFLATE)
    assert f"{head.headers['content-length']} bytes, ETag {head.headers['etag']}" in said


def test_a_file_changed_after_warming_changes_the_etag_and_streams_unsized(
        tmp_path: Path, serve: Serve) -> None:
    root = build(tmp_path / "root")
    url = serve(root).url + AUTO
    httpx.get(url, timeout=TIMEOUT)
    before = httpx.get(url, timeout=TIMEOUT)
    assert "content-length" in before.headers
    path = root / "docs/big.log"
    path.write_bytes(path.read_bytes().upper())  # as long, other bytes and another length deflated
    os.utime(path, (MTIME, MTIME))
    after = httpx.get(url, timeout=TIMEOUT)
    assert "content-length" not in after.headers and "etag" not in after.headers
    with zipfile.ZipFile(io.BytesIO(after.content)) as z:
        assert z.read("docs/big.log") == path.read_bytes()
    stale = httpx.get(pinned(url, before.headers["etag"]), headers={"Range": "bytes=1000-"})
    assert stale.status_code == 412
    again = httpx.get(url, timeout=TIMEOUT)  # the changed file's length is learned in turn
    assert again.headers["content-length"] == str(len(after.content)) and again.content == after.content


def test_a_warmed_zip_from_each_source_has_the_unsized_bytes(served_http: httpx.Client) -> None:
    url = "/archive?path=.&format=zip&compression=deflate&level=3"
    first = served_http.get(url)
    second = served_http.get(url)
    assert "content-length" not in first.headers
    assert second.headers["content-length"] == str(len(first.content)) and second.content == first.content
    tail = served_http.get(url, headers={"Range": "bytes=100000-"})
    assert tail.status_code == 206 and tail.content == first.content[100_000:]


# --- in process: lengths that lie, and what a range reads -------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    root = build(tmp_path / "root")
    svc = Service(Settings(root=root, crc_cache=tmp_path / "cache" / "crc.sqlite3", compress_workers=2))
    try:
        yield svc
    finally:
        svc.close()


@pytest.mark.parametrize(("name", "delta"), [("docs/readme.txt", 1), ("docs/big.log", -1)])
def test_a_kept_length_that_lies_cuts_the_body_and_is_forgotten(service: Service, name: str,
                                                              delta: int) -> None:
    plan = service.archive(["."], "zip", compression="deflate")
    whole = b"".join(service.encoder.body(plan))
    entry = next(e for e in plan.entries if e.name == name)
    options = plan.options
    service.packs.learn(entry.node, options, service.packs.lookup([entry.node], options)[0] + delta)
    lying = service.archive(["."], "zip", compression="deflate")
    assert lying.sized and lying.total == len(whole) + delta
    with pytest.raises(SourceChanged):
        b"".join(service.encoder.body(lying))
    assert not service.archive(["."], "zip", compression="deflate").sized


def test_a_range_in_the_last_entry_reads_none_before_it(service: Service) -> None:
    plan = service.archive(["docs"], "zip", compression="deflate")
    whole = b"".join(service.encoder.body(plan))
    plan = service.archive(["docs"], "zip", compression="deflate")
    assert plan.sized and plan.layout is not None
    last = max(p.start for p in plan.layout.pieces if p.kind == "packed")  # readme.txt, whole
    read: list[str] = []
    real = service.root.read

    def counted(node: Node, lo: int, hi: int, chunk: int) -> Iterator[bytes]:
        read.append(node.shown)
        return real(node, lo, hi, chunk)

    service.root.read = counted  # type: ignore[method-assign]
    assert b"".join(service.encoder.body(plan, last + 10)) == whole[last + 10:]
    assert "docs/big.log" not in read and "docs/medium.txt" not in read


# --- pure: computed lengths are the rendered ones -------------------------------------------------


def entry(name: str, size: int, packed: int) -> Entry:
    node = Node(tuple(name.split("/")), "file", size, MTIME * 10**9, 0o644, 0, 0, 0)
    return Entry(name, node, deflate=True, packed=packed)


@pytest.mark.parametrize(("name", "size", "packed", "offset"), [
    ("a.txt", 1000, 300, 0),
    ("a.txt", zippacked.WHOLE_DEFLATE, 90_000, 5),
    ("dir/b.log", zippacked.WHOLE_DEFLATE + 1, 70_000, 1 << 20),
    ("caf\u00e9/\u00fcber.txt", 3 << 20, 1 << 20, 0xFFFFFFFF),
    ("huge.bin", 5 << 30, 5 << 30, 0),
    ("near.bin", 0xFFFFFFFF - 100, 1 << 30, 7),
])
def test_computed_record_lengths_are_the_rendered_ones(name: str, size: int, packed: int,
                                                       offset: int) -> None:
    e = entry(name, size, packed)
    assert zippacked.head_size(e) == len(zippacked.head(e, 0x1234))
    assert zippacked.central_size(e, offset) == len(zippacked.central(e, 0x1234, offset))
    want = len(zip.data_descriptor(1, packed, size, zip.needs_zip64_descriptor(e)))
    assert zippacked.descriptor_size(e) == (want if size > zippacked.WHOLE_DEFLATE else 0)


def test_whole_deflate_is_the_encoders_block() -> None:
    assert zippacked.WHOLE_DEFLATE == compress.DEFAULT_BLOCK


def test_a_manifests_deflated_zip_is_sized_once_warmed(service: Service) -> None:
    raw = (b'{"compression": "deflate", "entries": [{"source": "docs/big.log", "name": "a/big.log",'
           b' "mtime": 1700000000}, {"source": "docs/readme.txt", "name": "readme.txt"}]}')
    first = service.manifest(load_manifest(raw, max_entries=10)).plan
    assert not first.sized
    whole = b"".join(service.manifest_encoder.body(first))
    again = service.manifest(load_manifest(raw, max_entries=10)).plan
    assert again.sized and again.total == len(whole)
    assert b"".join(service.manifest_encoder.body(again)) == whole
    assert b"".join(service.manifest_encoder.body(again, 5000)) == whole[5000:]


def test_every_worker_process_sizes_what_one_of_them_learned(tmp_path: Path, serve: Serve) -> None:
    root = build(tmp_path / "root")
    url = serve(root, "--workers", "2").url + DEFLATE
    first = httpx.get(url, timeout=TIMEOUT)
    assert "content-length" not in first.headers
    # New connections, spread over both processes: each reads the lengths from SQLite.
    lengths = {httpx.head(url).headers.get("content-length") for _ in range(8)}
    assert lengths == {str(len(first.content))}


def test_prepare_takes_a_stream_slot(tmp_path: Path, serve: Serve) -> None:
    root = build(tmp_path / "root")
    (root / "media/large.bin").write_bytes(os.urandom(64 << 20))
    srv = serve(root, "--max-streams", "1")
    with httpx.stream("GET", srv.url + "/archive?path=media&format=zip&compression=store",
                      timeout=TIMEOUT) as held:  # not read: it keeps its slot
        assert held.status_code == 200
        assert httpx.head(srv.url + "/archive?path=docs&format=zip&prepare=1").status_code == 503
    url = srv.url + "/archive?path=docs&format=zip&prepare=1"
    assert wait_until(lambda: httpx.head(url, timeout=TIMEOUT).status_code == 200)  # the slot is freed
    assert "content-length" in httpx.head(url).headers


@pytest.mark.parametrize(("fmt", "options"), [
    ("zip", {"checksums": "sha256"}),
    ("tar.gz", {}),
    ("zip", {"compression": "store"}),
])
def test_warm_writes_nothing_for_archives_it_cannot_size(service: Service, fmt: str,
                                                         options: dict[str, str]) -> None:
    plan = service.archive(["docs"], fmt, **options)
    assert not service.warm(plan)
    big = next(e.node for e in plan.entries if e.name.endswith("big.log"))
    assert service.cache.get(big) is None  # not read: a stream would have taught its CRC


@pytest.mark.parametrize("chunk", [1 << 20, 100_000, 64 << 10])
def test_a_range_inside_a_large_entry_deflates_from_the_block_holding_it(tmp_path: Path,
                                                                          chunk: int) -> None:
    root = build(tmp_path / "root")
    svc = Service(Settings(root=root, crc_cache=tmp_path / "c" / "crc.sqlite3", chunk_size=chunk,
                           compress_workers=2))
    try:
        whole = b"".join(svc.encoder.body(svc.archive(["docs"], "zip")))
        plan = svc.archive(["docs"], "zip")
        assert plan.sized and plan.layout is not None
        big = next(p for p in plan.layout.pieces if p.kind == "packed" and p.size > 500_000)
        size = plan.entries[big.index].node.size
        read: list[int] = []
        real = svc.root.read

        def counted(node: Node, lo: int, hi: int, chunk: int) -> Iterator[bytes]:
            read.append(hi - lo)
            return real(node, lo, hi, chunk)

        svc.root.read = counted  # type: ignore[method-assign]
        rng = random.Random(chunk)
        for at in [big.start + big.size * 9 // 10, *(big.start + rng.randrange(big.size) for _ in range(8))]:
            read.clear()
            assert b"".join(svc.encoder.body(plan, at, at + 70_000)) == whole[at:at + 70_000], at
        read.clear()
        b"".join(svc.encoder.body(plan, big.start + big.size * 9 // 10, big.start + big.size))
        assert sum(read) < size // 10 + compress.DEFAULT_BLOCK + chunk, (sum(read), size)
    finally:
        svc.close()


@pytest.mark.parametrize("where", ["resumed", "from the start"])
def test_a_block_that_deflates_otherwise_cuts_the_body(service: Service, where: str) -> None:
    whole = b"".join(service.encoder.body(service.archive(["docs"], "zip")))
    plan = service.archive(["docs"], "zip")
    assert plan.sized and plan.layout is not None
    big = next(p for p in plan.layout.pieces if p.kind == "packed" and p.size > 500_000)
    node = plan.entries[big.index].node
    blocks = service.packs.blocks(node, plan.options)
    assert blocks is not None and len(blocks) > 4
    # Two kept blocks swap a byte of length and carry other CRCs: the total still agrees.
    (n0, c0), (n1, c1) = blocks[1], blocks[2]
    service.packs.learn_blocks(node, plan.options, [blocks[0], (n0 + 1, c0 ^ 1), (n1 - 1, c1), *blocks[3:]])
    # From the start: a span from block 0 into block 1. Resumed: one inside block 2.
    at = big.start + (blocks[0][0] - 500 if where == "from the start" else blocks[0][0] + n0 + 100)
    with pytest.raises(SourceChanged):
        b"".join(service.encoder.body(plan, at, at + 1000))
    assert b"".join(service.encoder.body(plan, big.start + 5, big.start + 4000)) == \
        whole[big.start + 5:big.start + 4000]  # the kept blocks were forgotten with the length


@pytest.mark.ceph
@pytest.mark.parametrize("part", [1 << 20, 3 << 20, 300_000])
def test_ranges_inside_a_large_entry_from_s3_are_slices(services: Callable[..., Service], s3: Any,
                                                        tmp_path: Path, part: int) -> None:
    root = build(tmp_path / "root")
    bucket = new_bucket(s3)
    upload_tree(s3, bucket, "tree/", root)
    svc = services(f"s3://{bucket}/tree", s3_part_size=part, chunk_size=256 << 10, compress_workers=2)
    whole = b"".join(svc.encoder.body(svc.archive(["docs"], "zip")))
    plan = svc.archive(["docs"], "zip")
    assert plan.sized and plan.layout is not None
    big = next(p for p in plan.layout.pieces if p.kind == "packed" and p.size > 500_000)
    rng = random.Random(part)
    for at in [big.start + big.size * 9 // 10, *(big.start + rng.randrange(big.size) for _ in range(6))]:
        assert b"".join(svc.encoder.body(plan, at, at + 50_000)) == whole[at:at + 50_000], at


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_a_pinned_resume_on_a_server_that_never_sent_the_zip(tmp_path: Path, serve: Serve,
                                                             tool: str) -> None:
    root = build(tmp_path / "root")
    first = serve(root, "--crc-cache", str(tmp_path / "first" / "crc.sqlite3")).url + DEFLATE
    httpx.get(first, timeout=TIMEOUT)
    whole = httpx.get(first, timeout=TIMEOUT)
    # Another server (a fleet's other machine, or a lost cache) has never deflated it.
    other = serve(root, "--crc-cache", str(tmp_path / "other" / "crc.sqlite3")).url + DEFLATE
    assert "content-length" not in httpx.head(other).headers
    out = tmp_path / "download.zip"
    out.write_bytes(whole.content[:len(whole.content) * 2 // 3])
    link = pinned(other, whole.headers["etag"])
    if tool == "curl":
        run("curl", "-sS", "--fail", "-C", "-", "-o", str(out), link)
    else:
        run("wget", "-q", "-c", "-O", str(out), link)
    assert out.read_bytes() == whole.content
    assert httpx.get(pinned(other, '"zs3-stale"'), headers={"Range": "bytes=10-"}).status_code == 412


def test_a_pinned_manifest_link_resumes_on_a_server_that_never_sent_it(tmp_path: Path,
                                                                      serve: Serve) -> None:
    root = build(tmp_path / "root")
    first = serve(root, "--crc-cache", str(tmp_path / "a" / "crc.sqlite3")).url
    manifest = {"compression": "deflate", "entries": [{"source": "docs/big.log", "name": "big.log"},
                                                      {"source": "docs/readme.txt", "name": "readme.txt"}]}
    httpx.get(httpx.post(first + "/manifest", json=manifest).json()["url"], timeout=TIMEOUT)  # learns
    minted = httpx.post(first + "/manifest", json=manifest).json()
    assert minted["size"] is not None and minted["etag"]
    whole = httpx.get(minted["url"], timeout=TIMEOUT)
    assert len(whole.content) == minted["size"]
    other = serve(root, "--crc-cache", str(tmp_path / "b" / "crc.sqlite3")).url
    path = minted["path"]
    link = other + (path if "etag=" in path else pinned(path + "?x=1", minted["etag"]))
    r = httpx.get(link, headers={"Range": "bytes=1000-"}, timeout=TIMEOUT)
    assert r.status_code == 206 and r.content == whole.content[1000:]
