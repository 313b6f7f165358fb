"""checksums=sha256: a last entry, SHA256SUMS, lists every file's SHA-256, taken while streaming.

The sample tree (a non-ASCII name, an empty file, a long path, stored and
deflated entries) is downloaded under each compression, extracted by unzip
and 7z (tars by tar), and `sha256sum -c` checks every file against the
archive's own list. A plain tar or stored ZIP stays sized: its list's size is known from
the names, and a range past the files takes their digests from the hash store
or reads them.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.helpers import Serve, Site, need_tool, run

ROOT_ZIP = "/archive?path=.&format=zip&checksums=sha256"


def expected_sums(root: Path) -> dict[str, str]:
    """Given the tree, return every file's name -> hex SHA-256."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("compression", ["store", "auto", "deflate"])
@pytest.mark.parametrize("tool", ["unzip", "7z"])
def test_extracted_tree_passes_sha256sum_c(sample: Site, tmp_path: Path, compression: str,
                                           tool: str) -> None:
    need_tool(tool)
    need_tool("sha256sum")
    r = httpx.get(f"{sample.url}{ROOT_ZIP}&compression={compression}", timeout=60)
    # A stored ZIP stays sized (SHA256SUMS laid out like a tar's); a deflated one streams it.
    assert r.status_code == 200 and ("content-length" in r.headers) == (compression == "store")
    archive, out = tmp_path / "t.zip", tmp_path / "out"
    archive.write_bytes(r.content)
    out.mkdir()
    if tool == "7z":
        run("7z", "x", f"-o{out}", str(archive))
    else:
        run("unzip", "-q", str(archive), "-d", str(out))
    checked = run("sha256sum", "-c", "--strict", "SHA256SUMS", cwd=out)
    listed = {line.split(": ")[0]: line.split(": ")[1] for line in checked.splitlines()}
    assert set(listed) == set(expected_sums(sample.root)) and set(listed.values()) == {"OK"}


def test_sums_entry_is_last_and_lists_every_file(sample: Site) -> None:
    r = httpx.get(f"{sample.url}{ROOT_ZIP}", timeout=60)
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.namelist()[-1] == "SHA256SUMS" and zf.testzip() is None
        text = zf.read("SHA256SUMS").decode()
    got = {line[66:]: line[:64] for line in text.splitlines()}
    assert got == expected_sums(sample.root)
    assert list(got) == sorted(got, key=lambda n: n.encode())


def test_plain_zip_has_no_sums(sample: Site) -> None:
    r = httpx.get(f"{sample.url}/archive?path=.&format=zip&compression=store", timeout=60)
    assert "content-length" in r.headers
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert "SHA256SUMS" not in zf.namelist()


@pytest.mark.parametrize(("query", "message"), [
    ("format=gz&path=top.txt&checksums=sha256", "checksums=sha256 is not served for gz"),
    ("format=zip&checksums=md5", "checksums must be one of: none, sha256"),
])
def test_checksums_refusals(sample: Site, query: str, message: str) -> None:
    r = httpx.get(f"{sample.url}/archive?path=.&{query}", timeout=60)
    assert r.status_code == 400 and message in r.text


@pytest.mark.parametrize("compression", ["store", "auto", "deflate"])
def test_large_files_are_hashed_as_they_stream(tmp_path: Path, server_factory: Serve,
                                               compression: str) -> None:
    root = tmp_path / "big"
    root.mkdir()
    (root / "random.bin").write_bytes(os.urandom(3 << 20))  # auto tries it, then stores it
    (root / "text.txt").write_bytes(b"".join(b"line %d\n" % i for i in range(400_000)))
    url = server_factory(root).url
    r = httpx.get(f"{url}{ROOT_ZIP}&compression={compression}", timeout=60)
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.testzip() is None
        text = zf.read("SHA256SUMS").decode()
    assert {line[66:]: line[:64] for line in text.splitlines()} == expected_sums(root)


def test_a_tree_with_its_own_sha256sums_is_refused(tmp_path: Path, server_factory: Serve) -> None:
    root = tmp_path / "own"
    root.mkdir()
    (root / "SHA256SUMS").write_bytes(b"mine\n")
    r = httpx.get(f"{server_factory(root).url}{ROOT_ZIP}", timeout=60)
    assert r.status_code == 400 and "holds a SHA256SUMS of its own" in r.text


TARS = [("tar", []), ("tar.gz", ["-z"]), ("tar.zst", ["--zstd"])]


@pytest.mark.parametrize(("fmt", "flags"), TARS, ids=[t[0] for t in TARS])
def test_tar_extracted_by_tar_passes_sha256sum_c(sample: Site, tmp_path: Path, fmt: str,
                                                 flags: list[str]) -> None:
    need_tool("sha256sum")
    r = httpx.get(f"{sample.url}/archive?path=.&format={fmt}&checksums=sha256", timeout=60)
    assert r.status_code == 200
    archive, out = tmp_path / f"t.{fmt}", tmp_path / "out"
    archive.write_bytes(r.content)
    out.mkdir()
    run("tar", "-x", *flags, "-f", str(archive), "-C", str(out))
    checked = run("sha256sum", "-c", "--strict", "SHA256SUMS", cwd=out)
    listed = {line.split(": ")[0]: line.split(": ")[1] for line in checked.splitlines()}
    assert set(listed) == set(expected_sums(sample.root)) and set(listed.values()) == {"OK"}


def test_plain_tar_with_sums_is_sized_and_only_adds_the_last_member(sample: Site) -> None:
    plain = httpx.get(f"{sample.url}/archive?path=.&format=tar", timeout=60)
    r = httpx.get(f"{sample.url}/archive?path=.&format=tar&checksums=sha256", timeout=60)
    assert int(r.headers["content-length"]) == len(r.content) and r.headers["etag"] != plain.headers["etag"]
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tf, \
            tarfile.open(fileobj=io.BytesIO(plain.content)) as before:
        members = tf.getmembers()
        assert members[-1].name == "SHA256SUMS"
        assert [m.get_info() for m in members[:-1]] == [m.get_info() for m in before.getmembers()]
        assert all(tf.extractfile(m).read() == before.extractfile(m.name).read()  # type: ignore[union-attr]
                   for m in members[:-1] if m.isfile())


@pytest.mark.parametrize("fmt", ["tar", "zip&compression=store"], ids=["tar", "stored zip"])
@pytest.mark.parametrize("whole_first", [True, False], ids=["store warm", "store cold"])
def test_ranges_of_a_sized_archive_with_sums_are_slices(tree: Path, server_factory: Serve,
                                                        whole_first: bool, fmt: str) -> None:
    url = f"{server_factory(tree).url}/archive?path=.&format={fmt}&checksums=sha256"
    # Whole first: every file is hashed on the way into the store. Range first, on a fresh
    # server: the list's digests come from reading the files it starts past.
    whole = httpx.get(url, timeout=60).content if whole_first else b""
    tail = httpx.get(url, headers={"Range": "bytes=-1500"}, timeout=60)
    whole = whole or httpx.get(url, timeout=60).content
    assert tail.status_code == 206 and tail.content == whole[-1500:]
    for a, b in [(0, 99), (len(whole) // 2, len(whole) - 1), (len(whole) - 3000, len(whole) - 2000)]:
        r = httpx.get(url, headers={"Range": f"bytes={a}-{b}"}, timeout=60)
        assert r.status_code == 206 and r.content == whole[a: b + 1]
