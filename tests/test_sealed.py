"""Encrypted ZIPs (WinZip AES-256, AE-2) as the encoder writes them: headers, readers, ranges, repeatability.

Plans come from a real Service over the sample tree (plus a few files big
enough to span several encryption blocks); archives go to 7z, bsdtar and
pyzipper, and every one must give back the tree byte for byte.
"""

from __future__ import annotations

import io
import os
import random
import struct
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyzipper  # type: ignore[import-untyped]

from tests.helpers import CLI_ENV, MTIME, need_tool
from zipserve.core.formats import zip, zipextra
from zipserve.core.node import Entry, Node
from zipserve.core.plan import ArchivePlan
from zipserve.service import Service
from zipserve.settings import Settings

PASSWORD = "correct horse \u00e9"
SECRET = "server secret for tests"
COMPRESSIONS = ["store", "auto", "deflate"]


@pytest.fixture
def root(tree: Path) -> Path:
    """The sample tree with files over one encryption block (256 KiB) and over one read chunk."""
    (tree / "big.bin").write_bytes(os.urandom(1_300_000))
    (tree / "docs" / "big.txt").write_bytes(b"".join(b"line %d\n" % i for i in range(300_000)))
    os.utime(tree / "big.bin", (MTIME, MTIME))
    return tree


def _service(root: Path, tmp: Path, secret: str = SECRET) -> Service:
    return Service(Settings(root, secret=secret, crc_cache=tmp / f"crc-{secret}.sqlite3"))


@pytest.fixture
def service(root: Path, tmp_path: Path) -> Iterator[Service]:
    svc = _service(root, tmp_path)
    yield svc
    svc.close()


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def body(service: Service, plan: ArchivePlan, start: int = 0, stop: int | None = None) -> bytes:
    return b"".join(service.encoder.body(plan, start, stop))


def sealed_plan(service: Service, compression: str, password: str = PASSWORD) -> ArchivePlan:
    return service.archive(["."], "zip", compression=compression, password=password)


@pytest.fixture(params=COMPRESSIONS)
def archive(request: pytest.FixtureRequest, service: Service, tmp_path: Path) -> Path:
    path = tmp_path / f"{request.param}.zip"
    path.write_bytes(body(service, sealed_plan(service, request.param)))
    return path


def test_store_is_sized_and_deflate_streamed(service: Service) -> None:
    stored, deflated = sealed_plan(service, "store"), sealed_plan(service, "deflate")
    assert stored.sized and stored.total == len(body(service, stored)) and stored.etag
    assert not deflated.sized and deflated.etag is None


def test_pyzipper_reads_the_tree_byte_identical(archive: Path, root: Path) -> None:
    with pyzipper.AESZipFile(archive) as zf:
        zf.setpassword(PASSWORD.encode())
        got = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
        assert zf.testzip() is None
    assert got == files_of(root)


def test_pyzipper_refuses_a_wrong_password(archive: Path) -> None:
    with pyzipper.AESZipFile(archive) as zf:
        zf.setpassword(b"wrong")
        with pytest.raises(RuntimeError, match="[Bb]ad password"):
            zf.read("top.txt")


def test_7z_extracts_the_tree_byte_identical(archive: Path, root: Path, tmp_path: Path) -> None:
    need_tool("7z")
    out = tmp_path / "x7"
    subprocess.run(["7z", "x", "-y", f"-p{PASSWORD}", f"-o{out}", str(archive)], check=True,
                   capture_output=True, env=CLI_ENV)
    assert files_of(out) == files_of(root)
    assert (out / "empty-folder").is_dir()


def test_7z_refuses_a_wrong_password(archive: Path) -> None:
    need_tool("7z")
    run = subprocess.run(["7z", "t", "-pwrong", str(archive)], capture_output=True, text=True,
                         env=CLI_ENV)
    assert run.returncode != 0 and "Wrong password" in run.stdout + run.stderr


def test_bsdtar_extracts_the_tree_byte_identical(archive: Path, root: Path, tmp_path: Path) -> None:
    need_tool("bsdtar")  # libarchive reads WinZip AES (since 3.1) given --passphrase
    out = tmp_path / "xb"
    out.mkdir()
    subprocess.run(["bsdtar", "-xf", str(archive), "--passphrase", PASSWORD, "-C", str(out)],
                   check=True, capture_output=True, env=CLI_ENV)
    assert files_of(out) == files_of(root)


def test_bsdtar_refuses_a_wrong_password(archive: Path, tmp_path: Path) -> None:
    need_tool("bsdtar")
    out = tmp_path / "xw"
    out.mkdir()
    run = subprocess.run(["bsdtar", "-xf", str(archive), "--passphrase", "wrong", "-C", str(out)],
                         capture_output=True, text=True, env=CLI_ENV)
    assert run.returncode != 0 and "incorrect passphrase" in run.stderr.lower()


def test_every_file_is_encrypted_and_no_folder(archive: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
    assert {i.filename for i in infos if i.flag_bits & 1} == {i.filename for i in infos if not i.is_dir()}
    assert all(i.compress_type == zipextra.AES_METHOD and i.CRC == 0 for i in infos if not i.is_dir())


def test_sized_ranges_are_slices_of_the_whole(service: Service) -> None:
    plan = sealed_plan(service, "store")
    whole = body(service, plan)
    assert plan.layout is not None
    # Every piece boundary of every entry, and random spans: a range may start or stop anywhere.
    edges = sorted({p.start + d for p in plan.layout.pieces for d in (-1, 0, 1, 5)} & set(range(len(whole))))
    rng = random.Random(7)
    spans = [(a, min(a + rng.randrange(1, 400_000), len(whole))) for a in edges]
    spans += [tuple(sorted(rng.sample(range(len(whole) + 1), 2))) for _ in range(40)]
    for start, stop in spans:
        assert body(service, plan, start, stop) == whole[start:stop], (start, stop)


def test_sized_bytes_repeat_on_another_server_with_the_same_secret(service: Service, root: Path,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = _service(root, tmp_path / "other")  # its own CRC cache: nothing learned is shared
    try:
        a, b = sealed_plan(service, "store"), sealed_plan(other, "store")
        assert a.etag == b.etag and body(service, a) == body(other, b)
    finally:
        other.close()


@pytest.mark.parametrize("change", ["password", "secret", "encryption"])
def test_etag_and_bytes_change_with_password_secret_and_encryption(service: Service, root: Path,
                                                                  tmp_path: Path, change: str) -> None:
    plan = sealed_plan(service, "store")
    other = _service(root, tmp_path, "another secret") if change == "secret" else service
    try:
        if change == "encryption":
            changed = other.archive(["."], "zip", compression="store")
        else:
            changed = sealed_plan(other, "store", "other password" if change == "password" else PASSWORD)
        assert changed.etag != plan.etag
        assert body(other, changed) != body(service, plan)
        assert PASSWORD not in str(changed.etag) + repr(changed) + repr(plan)
    finally:
        if other is not service:
            other.close()


def test_deflated_entries_get_fresh_salts(service: Service) -> None:
    plan = sealed_plan(service, "deflate")
    assert body(service, plan) != body(service, plan)  # random salts: unsized, nothing repeats


# -- the headers of an encrypted entry, table by table ---------------------------------------------

NODE = Node(path=("a.txt",), kind="file", size=1000, mtime_ns=MTIME * 10**9, mode=0o644, dev=1,
            ino=2, ctime_ns=0)
_LOCAL = struct.Struct("<4s2B4HL2L2H")


def _local(entry: Entry, how: str) -> bytes:
    if how == "stored":
        return zip.stored_local_header(entry, 0x1234ABCD)
    if how == "deflated, size known":
        return zip.local_header(entry, 0x1234ABCD, deflated=True, compressed=600 + 28)
    return zip.local_header(entry, 0x1234ABCD, deflated=True)  # a data descriptor follows


@pytest.mark.parametrize(("how", "method", "flags", "csize"), [
    ("stored", 0, 0x1, 1028),
    ("deflated, size known", 8, 0x1, 628),
    ("deflated, descriptor", 8, 0x9, 0),
])
@pytest.mark.parametrize("name", ["a.txt", "caf\u00e9.txt"])
def test_encrypted_local_header_fields(how: str, method: int, flags: int, csize: int, name: str) -> None:
    entry = Entry(name, NODE, deflate=method == 8, sealed=True)
    head = _local(entry, how)
    (sig, version, _, flag, meth, _, _, crc, compressed, size, name_len,
     extra_len) = _LOCAL.unpack_from(head)
    utf8 = 0x800 if not name.isascii() else 0
    assert (sig, version, flag, meth, crc) == (b"PK\x03\x04", 51, flags | utf8, 99, 0)
    assert (compressed, size) == ((csize, 1000) if csize else (0, 0))
    extra = head[30 + name_len: 30 + name_len + extra_len]
    assert zipextra.parse_aes(extra) == (2, b"AE", 3, method)
    assert (zipextra.parse_unicode_path(extra) is not None) == bool(utf8)


@pytest.mark.parametrize("deflated", [False, True])
def test_encrypted_central_record_fields(deflated: bool) -> None:
    entry = Entry("a.txt", NODE, deflate=deflated, sealed=True)
    record = bytes(zip.info(entry, 0x1234ABCD, deflated=deflated, compressed=628 if deflated else None,
                            offset=77).central_record())
    (sig, made, _, needed, _, flag, meth, _, _, crc, compressed, size, name_len, extra_len, _, _, _, _,
     offset) = struct.unpack_from("<4s4B4HL2L5H2L", record)
    assert (sig, made, needed, flag & 0x1, meth, crc) == (b"PK\x01\x02", 51, 51, 1, 99, 0)
    assert (compressed, size, offset) == (628 if deflated else 1028, 1000, 77)
    extra = record[46 + name_len: 46 + name_len + extra_len]
    assert zipextra.parse_aes(extra) == (2, b"AE", 3, 8 if deflated else 0)


def test_zipfile_sees_the_sizes_the_layout_counts(service: Service) -> None:
    plan = sealed_plan(service, "store")
    with zipfile.ZipFile(io.BytesIO(body(service, plan))) as zf:
        for info in zf.infolist():
            if not info.is_dir():
                assert info.compress_size == info.file_size + 28
