"""Extra fields: Info-ZIP Unicode Path (0x7075) and WinZip AES (0x9901), parsed back, read by real tools."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.ziptools import assemble, central_extras, stored, unicode_member
from zipserve.core.formats import zipextra
from zipserve.core.formats.zipextra import AesInfo, UnicodePath


@pytest.mark.parametrize("name", [
    "caf\u00e9.txt",
    "photos/caf\u00e9 \u00fcber.txt",
    "\u65e5\u672c\u8a9e/\u30d5\u30a1\u30a4\u30eb.txt",
    "folder\u00e9/",
    "\U0001f600 smile.png",
    "\u05e2\u05d1\u05e8\u05d9\u05ea.txt",
])
def test_unicode_path_parses_back_with_the_crc_of_the_written_name(name: str) -> None:
    utf8 = name.encode()
    extra = zipextra.unicode_path(name)
    assert extra[:2] == b"\x75\x70"  # 0x7075, little-endian
    assert len(extra) == zipextra.unicode_path_size(name) == 9 + len(utf8)
    assert zipextra.parse_unicode_path(extra) == UnicodePath(1, zlib.crc32(utf8), name)
    assert zipextra.wants_unicode_path(name)


def test_unicode_path_bytes_are_as_appnote_4_6_9_lays_them_out() -> None:
    extra = zipextra.unicode_path("\u00e9", b"\x82")  # é in code page 437 is 0x82
    assert extra == b"\x75\x70\x07\x00" + b"\x01" + zlib.crc32(b"\x82").to_bytes(4, "little") + b"\xc3\xa9"


@pytest.mark.parametrize(("name", "wanted"), [
    ("readme.txt", False), ("a/b/c", False), ("tab\there", False), ("caf\u00e9", True), ("\u00a0", True),
])
def test_only_non_ascii_names_want_the_field(name: str, wanted: bool) -> None:
    assert zipextra.wants_unicode_path(name) is wanted


def test_fields_walks_every_field_and_finds_ours_among_others() -> None:
    timestamp = zipextra.field(0x5455, b"\x01\x00\x00\x00\x00")
    extra = timestamp + zipextra.unicode_path("\u00e9") + zipextra.aes_extra(8)
    assert [tag for tag, _ in zipextra.fields(extra)] == [0x5455, 0x7075, 0x9901]
    assert zipextra.parse_unicode_path(extra) == UnicodePath(1, zlib.crc32(b"\xc3\xa9"), "\u00e9")
    assert zipextra.parse_aes(extra) == AesInfo(2, b"AE", 3, 8)
    assert zipextra.parse_unicode_path(timestamp) is None


@pytest.mark.parametrize("extra", [b"\x75", b"\x75\x70\x09\x00\x01\x00", b"\x75\x70\x02\x00\x01\x00"])
def test_malformed_extra_blocks_are_refused(extra: bytes) -> None:
    with pytest.raises(ValueError):
        zipextra.parse_unicode_path(extra)


@pytest.mark.parametrize(("method", "expected"), [
    (0, b"\x01\x99\x07\x00\x02\x00AE\x03\x00\x00"),
    (8, b"\x01\x99\x07\x00\x02\x00AE\x03\x08\x00"),
])
def test_aes_field_bytes(method: int, expected: bytes) -> None:
    assert zipextra.aes_extra(method) == expected
    assert len(expected) == zipextra.AES_EXTRA_SIZE
    assert zipextra.parse_aes(expected) == AesInfo(2, b"AE", 3, method)


def test_assembled_archive_carries_the_field_in_its_central_record() -> None:
    archive = assemble([unicode_member("caf\u00e9.txt", b"x", b"caf\x82.txt")])
    extras = central_extras(archive)
    assert zipextra.parse_unicode_path(extras[b"caf\x82.txt"]) == UnicodePath(
        1, zlib.crc32(b"caf\x82.txt"), "caf\u00e9.txt")


# -- real readers: a legacy header name, the real name only in the field ---------------

# The header names are other names, so only the field can give the real ones.
LEGACY = [("caf\u00e9.txt", b"cafe.txt"), ("\u00fcber/na\u00efve.txt", b"uber/naive.txt"),
          ("\u65e5\u672c.txt", b"__.txt")]


def _extract(tool: str, archive: Path, out: Path) -> set[str]:
    if tool == "unzip":
        cmd = ["unzip", "-q", str(archive), "-d", str(out)]
    else:
        cmd = ["7z", "x", "-y", f"-o{out}", str(archive)]
    subprocess.run(cmd, check=True, capture_output=True)
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


@pytest.mark.parametrize("tool", ["unzip", "7z"])
def test_readers_take_the_unicode_name_when_its_crc_matches(tool: str, tmp_path: Path) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    archive = tmp_path / "legacy.zip"
    archive.write_bytes(assemble([unicode_member(n, n.encode(), w) for n, w in LEGACY]))
    assert _extract(tool, archive, tmp_path / "out") == {n for n, _ in LEGACY}


@pytest.mark.parametrize("tool", ["unzip", "7z"])
def test_readers_ignore_a_field_whose_crc_belongs_to_another_name(tool: str, tmp_path: Path) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    stale = unicode_member("caf\u00e9.txt", b"x", b"plain.txt")
    stale.extra = zipextra.unicode_path("caf\u00e9.txt", b"other.txt")  # CRC of another name
    archive = tmp_path / "stale.zip"
    archive.write_bytes(assemble([stale, stored("top.txt", b"t")]))
    assert _extract(tool, archive, tmp_path / "out") == {"plain.txt", "top.txt"}


@pytest.mark.parametrize("tool", ["unzip", "7z", "bsdtar"])
def test_utf8_flag_and_field_together_read_as_the_one_name(tool: str, tmp_path: Path) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    members = []
    for name, _ in LEGACY:
        m = stored(name, name.encode())
        m.extra = zipextra.unicode_path(name)  # what the server emits: bit 11 and the field
        members.append(m)
    archive = tmp_path / "utf8.zip"
    archive.write_bytes(assemble(members))
    out = tmp_path / "out"
    if tool == "bsdtar":
        out.mkdir()
        subprocess.run(["bsdtar", "-xf", str(archive), "-C", str(out)], check=True, capture_output=True)
        got = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    else:
        got = _extract(tool, archive, out)
    assert got == {n for n, _ in LEGACY}
    assert {i.filename for i in zipfile.ZipFile(archive).infolist()} == got
