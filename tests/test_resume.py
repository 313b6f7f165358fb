"""Resumable archives on the real server: plain tar and all-stored ZIP.

Their bytes are a pure function of the selection and the files, so they carry
Content-Length, a strong ETag and Range like a static file; curl -C - and
wget -c resume them; ?etag= pins a snapshot. A Range starts where it starts
(with a warm CRC cache, files before it are not read: measured with the
server's /proc/PID/io rchar), and a CRC cache that lies makes the transfer
abort before the entry's last byte, never a whole-looking wrong archive.
"""

from __future__ import annotations

import io
import os
import random
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.helpers import (
    MTIME,
    TIMEOUT,
    Server,
    Site,
    build_tree,
    rchar,
    run,
    stop_server,
    try_run,
)
from zipserve.errors import SourceChanged
from zipserve.service import Service
from zipserve.settings import Settings
from zipserve.sources.crc import CrcCache
from zipserve.sources.local.source import Local

MiB = 1 << 20
ZIP = "/archive?path=.&format=zip&compression=store"
TAR = "/archive?path=.&format=tar"
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"  # MTIME as an IMF-fixdate
CAT = "photos/2024/cat.jpg"  # 200,000 random bytes


def pinned(url: str, etag: str) -> str:
    return f"{url}&etag={quote(etag.strip(chr(34)))}"


@pytest.fixture(scope="module")
def full(http: httpx.Client) -> dict[str, httpx.Response]:
    """The whole stored ZIP and tar of the sample tree, fetched once."""
    out = {}
    for fmt, url in (("zip", ZIP), ("tar", TAR)):
        r = http.get(url)
        assert r.status_code == 200
        out[fmt] = r
    return out


# --- where things are in the archives, found by the standard library -------------------------


def zip_marks(data: bytes) -> dict[str, int]:
    """Given a small stored ZIP, return named offsets inside it (found by zipfile and the end record)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos = {i.filename: i for i in z.infolist()}
    cd_start = struct.unpack_from("<L", data, len(data) - 6)[0]

    def data_start(name: str) -> int:
        at = infos[name].header_offset
        nlen, elen = struct.unpack_from("<HH", data, at + 26)
        return at + 30 + nlen + elen
    return {
        "in a local header": infos["docs/readme.txt"].header_offset + 11,
        "at an entry boundary": infos["photos/2024/dog.png"].header_offset,
        "in a small file's data": data_start("docs/readme.txt") + 100,
        "in the biggest file's data": data_start(CAT) + 123_457,
        "in the central directory": cd_start + 60,
        "in the end record": len(data) - 9,
    }


def tar_marks(data: bytes) -> dict[str, int]:
    """Given a tar, return named offsets inside it (found by tarfile)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t.getmembers()}
    return {
        "in a header": members["docs/readme.txt"].offset + 100,
        "in a long name's pax header": members["a" * 120 + "/" + "b" * 120 + ".txt"].offset + 3,
        "in the biggest file's data": members[CAT].offset_data + 123_457,
        "in the end blocks": len(data) - 700,
    }


def marks(fmt: str, data: bytes) -> dict[str, int]:
    return zip_marks(data) if fmt == "zip" else tar_marks(data)


ZIP_MARKS = ["in a local header", "at an entry boundary", "in a small file's data",
             "in the biggest file's data", "in the central directory", "in the end record"]
TAR_MARKS = ["in a header", "in a long name's pax header", "in the biggest file's data",
             "in the end blocks"]
MARKS = [("zip", m) for m in ZIP_MARKS] + [("tar", m) for m in TAR_MARKS]


# --- headers and single ranges -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_head_has_length_ranges_strong_etag_and_last_modified(http: httpx.Client,
                                                              full: dict[str, httpx.Response],
                                                              fmt: str) -> None:
    r = http.head(ZIP if fmt == "zip" else TAR)
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["content-length"]) == len(full[fmt].content)
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"] == full[fmt].headers["etag"]
    assert r.headers["etag"].startswith('"') and not r.headers["etag"].startswith("W/")
    assert r.headers["last-modified"] == LAST_MODIFIED


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_random_ranges_are_slices_of_the_whole(http: httpx.Client,
                                               full: dict[str, httpx.Response],
                                               fmt: str) -> None:
    body = full[fmt].content
    rng = random.Random(f"ranges-{fmt}")
    for _ in range(40):
        start = rng.randrange(len(body))
        end = min(start + rng.choice([1, 17, 512, 4096, 70_000, len(body)]), len(body)) - 1
        r = http.get(ZIP if fmt == "zip" else TAR, headers={"Range": f"bytes={start}-{end}"})
        assert r.status_code == 206
        assert r.headers["content-range"] == f"bytes {start}-{end}/{len(body)}"
        assert r.content == body[start:end + 1], (start, end)


@pytest.mark.parametrize(("fmt", "mark"), MARKS)
def test_range_from_a_landmark_is_the_rest_of_the_archive(http: httpx.Client,
                                                          full: dict[str, httpx.Response],
                                                          fmt: str, mark: str) -> None:
    body = full[fmt].content
    at = marks(fmt, body)[mark]
    r = http.get(ZIP if fmt == "zip" else TAR, headers={"Range": f"bytes={at}-"})
    assert r.status_code == 206
    assert r.content == body[at:]


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_suffix_range_is_the_end_of_the_archive(http: httpx.Client,
                                                full: dict[str, httpx.Response],
                                                fmt: str) -> None:
    r = http.get(ZIP if fmt == "zip" else TAR, headers={"Range": "bytes=-1000"})
    assert r.status_code == 206 and r.content == full[fmt].content[-1000:]


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_unsatisfiable_range_is_416_naming_the_length(http: httpx.Client,
                                                      full: dict[str, httpx.Response],
                                                      fmt: str) -> None:
    size = len(full[fmt].content)
    r = http.get(ZIP if fmt == "zip" else TAR, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{size}"


def test_if_none_match_with_the_current_etag_is_304(http: httpx.Client,
                                                    full: dict[str, httpx.Response]) -> None:
    r = http.get(ZIP, headers={"If-None-Match": full["zip"].headers["etag"]})
    assert r.status_code == 304 and r.content == b""


# --- If-Range and pinned snapshots -------------------------------------------------------------


def test_if_range_with_the_current_etag_is_206(http: httpx.Client,
                                               full: dict[str, httpx.Response]) -> None:
    r = http.get(ZIP, headers={"Range": "bytes=1000-", "If-Range": full["zip"].headers["etag"]})
    assert r.status_code == 206 and r.content == full["zip"].content[1000:]


@pytest.mark.parametrize("validator", ['"zs1-0123456789abcdef"', LAST_MODIFIED,
                                       "Thu, 01 Jan 2099 00:00:00 GMT"])
def test_if_range_with_a_stale_etag_or_a_date_is_the_whole_archive(
        http: httpx.Client, full: dict[str, httpx.Response], validator: str) -> None:
    # An archive has no Last-Modified of its own to compare exactly: only its ETag proves it.
    r = http.get(ZIP, headers={"Range": "bytes=1000-", "If-Range": validator})
    assert r.status_code == 200 and r.content == full["zip"].content


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_pinned_current_etag_is_served_with_ranges(http: httpx.Client,
                                                   full: dict[str, httpx.Response],
                                                   fmt: str) -> None:
    url = pinned(ZIP if fmt == "zip" else TAR, full[fmt].headers["etag"])
    assert http.get(url).content == full[fmt].content
    r = http.get(url, headers={"Range": "bytes=500-"})
    assert r.status_code == 206 and r.content == full[fmt].content[500:]


def test_bytes_are_the_same_on_every_request(http: httpx.Client,
                                             full: dict[str, httpx.Response]) -> None:
    for fmt, url in (("zip", ZIP), ("tar", TAR)):
        again = http.get(url)
        assert again.content == full[fmt].content
        assert again.headers["etag"] == full[fmt].headers["etag"]


# --- from each source: local disk and S3 --------------------------------------------------------


@pytest.mark.parametrize("target", [ZIP, TAR])
def test_random_ranges_of_sized_archives_are_its_slices(served_http: httpx.Client,
                                                        target: str) -> None:
    whole = served_http.get(target)
    size = len(whole.content)
    rng = random.Random(7)
    for _ in range(12):
        a = rng.randrange(size)
        b = rng.randrange(a, min(size, a + 300_000))
        r = served_http.get(target, headers={"Range": f"bytes={a}-{b}",
                                             "If-Range": whole.headers["etag"]})
        assert r.status_code == 206
        assert r.content == whole.content[a:b + 1], (a, b)


@pytest.mark.parametrize("target", [ZIP, TAR])
def test_curl_resumes_a_cut_archive_byte_for_byte(served: Site, served_http: httpx.Client,
                                                  tmp_path: Path, target: str) -> None:
    whole = served_http.get(target)
    out = tmp_path / "download"
    for cut in (1, len(whole.content) // 3, len(whole.content) - 1):
        out.write_bytes(whole.content[:cut])
        run("curl", "-sS", "--fail", "-C", "-", "-o", str(out),
            pinned(served.url + target, whole.headers["etag"]))
        assert out.read_bytes() == whole.content, cut


# --- resuming with curl and wget ---------------------------------------------------------------


def check_archive(fmt: str, path: Path) -> None:
    """Given a downloaded archive, assert the users' tools accept it."""
    if fmt == "zip":
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None
        assert "No errors detected" in run("unzip", "-t", str(path))
        assert "Everything is Ok" in run("7z", "t", str(path))
    else:
        with tarfile.open(path) as t:
            for member in t.getmembers():
                if member.isfile():
                    f = t.extractfile(member)
                    assert f is not None and len(f.read()) == member.size
        assert "docs/readme.txt" in run("tar", "-tf", str(path))
    assert "docs/readme.txt" in run("bsdtar", "-tf", str(path))


def resume_with(tool: str, out: Path, url: str) -> None:
    if tool == "curl":
        run("curl", "-sS", "--fail", "-C", "-", "-o", str(out), url)
    else:
        run("wget", "-q", "-c", "-O", str(out), url)


@pytest.mark.parametrize("tool", ["curl", "wget"])
@pytest.mark.parametrize(("fmt", "mark"), MARKS)
def test_a_cut_download_resumes_to_the_same_bytes(sample: Site, full: dict[str, httpx.Response],
                                                  tmp_path: Path, tool: str, fmt: str,
                                                  mark: str) -> None:
    body = full[fmt].content
    cut = marks(fmt, body)[mark]
    out = tmp_path / f"download.{fmt}"
    out.write_bytes(body[:cut])
    resume_with(tool, out, pinned(sample.url + (ZIP if fmt == "zip" else TAR),
                             full[fmt].headers["etag"]))
    assert out.read_bytes() == body
    check_archive(fmt, out)


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_resume_fetches_only_the_missing_part(sample: Site, full: dict[str, httpx.Response],
                                              tmp_path: Path, tool: str) -> None:
    # A marked first part stays as it is: only the bytes from the cut on were sent.
    body = full["zip"].content
    out = tmp_path / "download.zip"
    out.write_bytes(b"X" * 100_001)
    resume_with(tool, out, pinned(sample.url + ZIP, full["zip"].headers["etag"]))
    assert out.read_bytes() == b"X" * 100_001 + body[100_001:]


# --- when the files change ---------------------------------------------------------------------


def modify(tree: Path) -> None:
    """Rewrite one file of the tree with other bytes of the same length and a later mtime."""
    path = tree / "docs/readme.txt"
    path.write_bytes(path.read_bytes().upper())
    os.utime(path, (MTIME + 60, MTIME + 60))


def test_touching_a_file_changes_the_etag(tree: Path,
                                          server_factory: Callable[..., Server]) -> None:
    srv = server_factory(tree)
    before = httpx.head(srv.url + ZIP).headers["etag"]
    os.utime(tree / "top.txt", (MTIME + 1, MTIME + 1))
    assert httpx.head(srv.url + ZIP).headers["etag"] != before


@pytest.mark.parametrize("url", [ZIP, TAR])
def test_if_range_with_the_old_etag_gets_the_whole_new_archive(
        tree: Path, server_factory: Callable[..., Server], url: str) -> None:
    srv = server_factory(tree)
    old = httpx.get(srv.url + url)
    modify(tree)
    r = httpx.get(srv.url + url, headers={"Range": "bytes=1000-", "If-Range": old.headers["etag"]})
    new = httpx.get(srv.url + url)
    assert r.status_code == 200 and r.content == new.content
    assert new.content != old.content and new.headers["etag"] != old.headers["etag"]


def test_pinned_stale_etag_is_412_json_saying_the_files_changed(
        tree: Path, server_factory: Callable[..., Server]) -> None:
    srv = server_factory(tree)
    url = pinned(srv.url + ZIP, httpx.head(srv.url + ZIP).headers["etag"])
    modify(tree)
    r = httpx.get(url, headers={"Range": "bytes=1000-"})
    assert r.status_code == 412
    error = r.json()["error"]
    assert error["code"] == "precondition_failed" and "changed" in error["message"]


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_resuming_a_stale_pinned_link_fails_and_keeps_the_part(
        tree: Path, server_factory: Callable[..., Server], tmp_path: Path, tool: str) -> None:
    srv = server_factory(tree)
    old = httpx.get(srv.url + ZIP)
    out = tmp_path / "download.zip"
    out.write_bytes(old.content[:5000])
    modify(tree)
    cmd = (["curl", "-sS", "--fail", "-C", "-", "-o", str(out)] if tool == "curl"
           else ["wget", "-q", "-c", "-O", str(out)])
    assert try_run(*cmd, pinned(srv.url + ZIP, old.headers["etag"])).returncode != 0
    assert out.read_bytes() == old.content[:5000]  # never a splice of old and new bytes


@pytest.mark.parametrize("url", [ZIP, TAR])
def test_bytes_are_the_same_after_a_restart_with_a_cold_cache(
        tree: Path, server_factory: Callable[..., Server], tmp_path: Path, url: str) -> None:
    first = server_factory(tree)
    warm = httpx.get(first.url + url)
    warm_range = httpx.get(first.url + url, headers={"Range": "bytes=-3000"})
    stop_server(first)
    second = server_factory(tree, "--crc-cache", str(tmp_path / "cold.sqlite3"))
    cold_range = httpx.get(second.url + url, headers={"Range": "bytes=-3000"})
    cold = httpx.get(second.url + url)
    assert cold.content == warm.content and cold.headers["etag"] == warm.headers["etag"]
    assert cold_range.content == warm_range.content == warm.content[-3000:]


# --- what the server reads: HEAD, warm and cold ranges, the persistent CRC cache ---------------

BIG_FILES = ("f1.bin", "f2.bin", "f3.bin")
BIG = 32 * MiB


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three files of 32 MiB of random bytes."""
    root = tmp_path_factory.mktemp("big") / "root"
    root.mkdir()
    for name in BIG_FILES:
        with (root / name).open("wb") as f:
            for _ in range(BIG // (4 * MiB)):
                f.write(os.urandom(4 * MiB))
    return root


def read_during(server: Server, request: Callable[[], httpx.Response],
                status: int) -> tuple[int, bytes]:
    """Make a request and check its status; return (bytes the server read meanwhile, the body)."""
    before = rchar(server)
    r = request()
    assert r.status_code == status
    return rchar(server) - before, r.content


def last_mib(server: Server) -> httpx.Response:
    return httpx.get(server.url + ZIP, headers={"Range": f"bytes=-{MiB}"}, timeout=TIMEOUT)


def misses(server: Server) -> list[str]:
    return [line for line in server.log_text().splitlines() if "CRC cache miss" in line]


def test_head_of_a_big_stored_zip_reads_no_file_data(big_tree: Path,
                                                     server_factory: Callable[..., Server]
                                                     ) -> None:
    srv = server_factory(big_tree)  # cold cache: a HEAD must not compute a CRC either
    read, _ = read_during(srv, lambda: httpx.head(srv.url + ZIP, timeout=TIMEOUT), 200)
    assert read < MiB, read
    assert int(httpx.head(srv.url + ZIP).headers["content-length"]) > 3 * BIG
    assert misses(srv) == []


def test_warm_range_of_the_last_mib_reads_only_what_it_sends(
        big_tree: Path, server_factory: Callable[..., Server]) -> None:
    srv = server_factory(big_tree)
    whole_read, body = read_during(srv, lambda: httpx.get(srv.url + ZIP, timeout=TIMEOUT), 200)
    assert whole_read >= 3 * BIG  # the measure sees file reads
    read, tail = read_during(srv, lambda: last_mib(srv), 206)
    assert tail == body[-MiB:]
    assert read < 8 * MiB, read


def test_cold_range_of_the_last_mib_reads_the_files_for_their_crcs(
        big_tree: Path, server_factory: Callable[..., Server]) -> None:
    srv = server_factory(big_tree)
    read, tail = read_during(srv, lambda: last_mib(srv), 206)
    assert read >= 3 * BIG, read  # the central directory needs every file's CRC
    for name in BIG_FILES:
        assert any(name in line for line in misses(srv)), (name, misses(srv))
    assert tail == httpx.get(srv.url + ZIP, timeout=TIMEOUT).content[-MiB:]


def test_crc_cache_survives_a_restart(big_tree: Path, server_factory: Callable[..., Server]
                                      ) -> None:
    first = server_factory(big_tree)
    expected = last_mib(first).content
    stop_server(first)
    second = server_factory(big_tree)  # the same --crc-cache file
    read, tail = read_during(second, lambda: last_mib(second), 206)
    assert tail == expected
    assert read < 8 * MiB, read
    assert misses(second) == []


def test_no_crc_cache_keeps_nothing_across_a_restart(big_tree: Path,
                                                     server_factory: Callable[..., Server],
                                                     tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    env = {"XDG_CACHE_HOME": str(xdg)}
    first = server_factory(big_tree, "--no-crc-cache", env=env)
    expected = last_mib(first).content
    stop_server(first)
    second = server_factory(big_tree, "--no-crc-cache", env=env)
    read, tail = read_during(second, lambda: last_mib(second), 206)
    assert read >= 3 * BIG, read
    assert tail == expected
    assert list(xdg.iterdir()) == [] and not (tmp_path / "crc.sqlite3").exists()


def test_a_tar_download_fills_the_crc_cache_for_zips(big_tree: Path,
                                                     server_factory: Callable[..., Server]
                                                     ) -> None:
    srv = server_factory(big_tree)
    assert len(httpx.get(srv.url + TAR, timeout=TIMEOUT).content) > 3 * BIG
    read, tail = read_during(srv, lambda: last_mib(srv), 206)
    assert read < 8 * MiB, read
    assert misses(srv) == []
    assert tail == httpx.get(srv.url + ZIP, timeout=TIMEOUT).content[-MiB:]


# --- a CRC cache that lies: the transfer is cut before the entry's last byte -------------------


def test_stale_cached_crc_aborts_the_body_before_the_entrys_last_byte(tree: Path) -> None:
    service = Service(Settings(root=tree, crc_cache=None, chunk_size=4096))
    try:
        plan = service.archive(["."], "zip", compression="store")
        assert plan.layout is not None
        node = service.root.stat(tuple(CAT.split("/")))
        right = service.crcs.of(node)
        service.cache.put(node, right ^ 1)  # as if the file were rewritten with the same times
        piece = next(p for p in plan.layout.pieces
                     if p.kind == "data" and plan.entries[p.index].name == CAT)
        end = piece.start + piece.size
        sent = 0
        with pytest.raises(SourceChanged):
            for chunk in service.encoder.body(plan):
                sent += len(chunk)
        assert end - 2 * 4096 <= sent < end, (piece, sent)
        assert service.cache.get(node) is None  # the lie is forgotten
    finally:
        service.close()


def test_stale_cached_crc_cuts_the_http_transfer_on_the_read_path(
        tmp_path: Path, server_factory: Callable[..., Server]) -> None:
    # Where bytes are read to be sent (--no-direct-send, S3), a whole entry is
    # checked against its header's CRC. (A Wire sends files unread and trusts the
    # cache's ctime key instead: see test_rewrite_under_a_restored_mtime_...)
    tree = build_tree(tmp_path / "root")
    (tree / "video.bin").write_bytes(os.urandom(3 * MiB))  # more than one 1 MiB read
    cache_file = tmp_path / "stale.sqlite3"
    source = Local(tree)
    cache = CrcCache(cache_file, key_of=source.crc_key)
    cache.put(source.stat(("video.bin",)), 0x12345678)
    cache.close()
    srv = server_factory(tree, "--crc-cache", str(cache_file), "--no-direct-send")
    out = tmp_path / "cut.zip"
    done = try_run("curl", "-sS", "-o", str(out), srv.url + ZIP)
    assert done.returncode == 18, done.stderr  # transfer closed with bytes outstanding
    good = httpx.get(srv.url + ZIP, timeout=TIMEOUT)  # the lie was forgotten: now it is whole
    with zipfile.ZipFile(io.BytesIO(good.content)) as z:
        assert z.testzip() is None
        info = z.getinfo("video.bin")
    nlen, elen = struct.unpack_from("<HH", good.content, info.header_offset + 26)
    data_end = info.header_offset + 30 + nlen + elen + info.file_size
    assert out.stat().st_size < data_end
    assert "aborted a transfer" in srv.log_text()


def test_rewrite_under_a_restored_mtime_gets_a_fresh_crc(tmp_path: Path,
                                                         server_factory: Callable[..., Server]
                                                         ) -> None:
    # A Wire sends cached-CRC files unread; the cache key holds the ctime, which
    # every write and utimes moves, so new bytes under the old size and mtime
    # (cp -p, rsync -t, touch -d) miss the cache and get their own CRC.
    tree = build_tree(tmp_path / "root")
    video = tree / "video.bin"
    video.write_bytes(os.urandom(3 * MiB))
    srv = server_factory(tree, "--crc-cache", str(tmp_path / "crc.sqlite3"))
    assert zipfile.ZipFile(io.BytesIO(httpx.get(srv.url + ZIP, timeout=TIMEOUT).content)
                           ).testzip() is None  # the cache now holds video.bin's CRC
    before = video.stat()
    fresh = os.urandom(3 * MiB)
    video.write_bytes(fresh)
    os.utime(video, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (video.stat().st_size, video.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    again = httpx.get(srv.url + ZIP, timeout=TIMEOUT)
    with zipfile.ZipFile(io.BytesIO(again.content)) as z:
        assert z.testzip() is None
        assert z.read("video.bin") == fresh
    assert '"path": "direct"' in srv.log_text()
