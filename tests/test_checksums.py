"""checksums=sha256: a ZIP whose last entry, SHA256SUMS, lists every file's SHA-256, taken while streaming.

The sample tree (a non-ASCII name, an empty file, a long path, stored and
deflated entries) is downloaded under each compression, extracted by unzip
and 7z, and `sha256sum -c` checks every file against the archive's own list.
"""

from __future__ import annotations

import hashlib
import io
import os
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
    assert r.status_code == 200 and "content-length" not in r.headers  # streamed, not sized
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
    ("format=tar&checksums=sha256", "checksums=sha256 is served for zip only"),
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
