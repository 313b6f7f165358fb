"""WinZip AES-256 (AE-2): keystream, keys, salts, authentication code; archives 7z, bsdtar, pyzipper open."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
from pathlib import Path

import pytest
import pyzipper  # type: ignore[import-untyped]
from Cryptodome.Cipher import AES  # type: ignore[import-untyped]  # pyzipper's own dependency
from Cryptodome.Util import Counter  # type: ignore[import-untyped]

from tests.helpers import need_tool
from tests.ziptools import DEFLATED, Member, aes_member, assemble
from zipserve.encode import aes

PASSWORD = b"correct horse"
SECRET = b"server secret for tests"


def _reference(password: bytes, salt: bytes, data: bytes, offset: int = 0) -> bytes:
    """AES-256 CTR with a little-endian counter from pycryptodome: an independent implementation."""
    key = aes.derive_keys(password, salt).aes
    counter = Counter.new(128, initial_value=offset // 16 + 1, little_endian=True)
    stream = AES.new(key, AES.MODE_CTR, counter=counter).encrypt(bytes(offset % 16 + len(data)))
    return bytes(a ^ b for a, b in zip(data, stream[offset % 16:], strict=True))


@pytest.mark.parametrize(("first", "count"), [
    (1, 1), (1, 3), (0xFFFF, 2), (0xFFFE, 5), (3 * 0x10000 - 2, 70_000), (2**40 + 5, 4),
    (0x0102030405060708, 3), (2**64 - 1, 3), (2**100 + 0xFFFF, 2),
])
def test_counter_blocks_are_little_endian_counters(first: int, count: int) -> None:
    expected = b"".join(c.to_bytes(16, "little") for c in range(first, first + count))
    assert aes.counter_blocks(first, count) == expected


@pytest.mark.parametrize("chunk", [1, 15, 16, 17, 4095, aes.PIECE - 1, aes.PIECE + 1, 1 << 20, 3_000_000])
def test_keystream_matches_pycryptodome_at_any_chunk_boundary(chunk: int) -> None:
    salt = bytes(range(16))
    data = os.urandom(min(3 * (1 << 20), 3000 * chunk) + 123)
    offset = max(0, (1 << 20) - len(data) // 2)  # the data crosses the first 65,536-counter run
    enc = aes.AesEncryptor(PASSWORD, salt, offset=offset)
    got = b"".join(enc.update(data[i: i + chunk]) for i in range(0, len(data), chunk))
    assert got == _reference(PASSWORD, salt, data, offset)


@pytest.mark.parametrize("offset", [0, 5, 16, 1 << 20, (1 << 20) - 3, 16 * 0x01020304 - 7, 2**40 + 9])
def test_encryptor_started_at_an_offset_continues_the_same_keystream(offset: int) -> None:
    salt = bytes(16)
    data = os.urandom(10_000)
    enc = aes.AesEncryptor(PASSWORD, salt, offset=offset)
    assert enc.update(data[:777]) + enc.update(data[777:]) == _reference(PASSWORD, salt, data, offset)
    if offset:
        with pytest.raises(ValueError):
            enc.finish()


def test_authentication_code_is_hmac_sha1_over_the_ciphertext() -> None:
    salt = aes.derive_salt(SECRET, PASSWORD, "a.txt|3")
    data = os.urandom(100_000)
    sealed = aes.encrypt(PASSWORD, salt, data)
    keys = aes.derive_keys(PASSWORD, salt)
    assert len(sealed) == aes.encrypted_size(len(data)) == len(data) + 28
    assert sealed[:18] == salt + keys.verifier
    assert sealed[-10:] == hmac.new(keys.mac, sealed[18:-10], hashlib.sha1).digest()[:10]


def test_keys_are_pbkdf2_hmac_sha1_1000_iterations_split_32_32_2() -> None:
    salt = b"0123456789abcdef"
    material = hashlib.pbkdf2_hmac("sha1", PASSWORD, salt, 1000, 66)
    assert aes.derive_keys(PASSWORD, salt) == (material[:32], material[32:64], material[64:])
    with pytest.raises(ValueError):
        aes.derive_keys(PASSWORD, b"short")


@pytest.mark.parametrize(("a", "b"), [
    ((SECRET, b"pw", "a.txt|1|100"), (SECRET, b"pw", "a.txt|1|101")),  # another version
    ((SECRET, b"pw", "a.txt|1|100"), (SECRET, b"pw2", "a.txt|1|100")),  # another password
    ((SECRET, b"pw", "a.txt|1|100"), (b"other", b"pw", "a.txt|1|100")),  # another server secret
    ((SECRET, b"ab", "c"), (SECRET, b"a", "bc")),  # the parts are length-prefixed
])
def test_salts_differ_whenever_password_identity_or_secret_do(a: tuple[bytes, bytes, str],
                                                             b: tuple[bytes, bytes, str]) -> None:
    assert aes.derive_salt(*a) != aes.derive_salt(*b)
    assert aes.derive_salt(*a) == aes.derive_salt(*a)  # and are the same on every call
    assert len(aes.derive_salt(*a)) == 16


def test_same_password_and_entry_give_identical_bytes() -> None:
    salt = aes.derive_salt(SECRET, PASSWORD, "docs/readme.txt|local|1|2|700|1700000000000000000")
    data = b"hello zipserve\n" * 50
    assert aes.encrypt(PASSWORD, salt, data) == aes.encrypt(PASSWORD, salt, data)


# -- archives read back by real readers --------------------------------------------------

def _members(tree: Path, *, descriptor: bool = False) -> tuple[list[Member], dict[str, bytes]]:
    """Given the sample tree, return AE-2 members of its files (text deflated, others stored) and bytes."""
    files = {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}
    members = []
    for name, data in files.items():
        method = DEFLATED if name.endswith(".txt") else 0
        salt = aes.derive_salt(SECRET, PASSWORD, f"{name}|{len(data)}")
        members.append(aes_member(name, data, PASSWORD, salt, method=method, descriptor=descriptor))
    return members, files


def _extracted(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(params=[False, True], ids=["sized", "descriptor"])
def archive(request: pytest.FixtureRequest, tree: Path, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    members, files = _members(tree, descriptor=request.param)
    path = tmp_path / "aes.zip"
    path.write_bytes(assemble(members))
    return path, files


def test_7z_tests_and_extracts_byte_identical(archive: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    need_tool("7z")
    path, files = archive
    subprocess.run(["7z", "t", "-p" + PASSWORD.decode(), str(path)], check=True, capture_output=True)
    out = tmp_path / "x7"
    subprocess.run(["7z", "x", "-y", "-p" + PASSWORD.decode(), f"-o{out}", str(path)], check=True,
                   capture_output=True)
    assert _extracted(out) == files


def test_7z_refuses_a_wrong_password(archive: tuple[Path, dict[str, bytes]]) -> None:
    need_tool("7z")
    path, _ = archive
    run = subprocess.run(["7z", "t", "-pwrong", str(path)], capture_output=True, text=True)
    assert run.returncode != 0
    assert "Wrong password" in run.stdout + run.stderr


def test_bsdtar_extracts_byte_identical(archive: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    need_tool("bsdtar")
    path, files = archive
    out = tmp_path / "xb"
    out.mkdir()
    subprocess.run(["bsdtar", "-xf", str(path), "--passphrase", PASSWORD.decode(), "-C", str(out)],
                   check=True, capture_output=True)
    assert _extracted(out) == files


def test_bsdtar_refuses_a_wrong_password(archive: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    need_tool("bsdtar")
    path, _ = archive
    out = tmp_path / "xw"
    out.mkdir()
    run = subprocess.run(["bsdtar", "-xf", str(path), "--passphrase", "wrong", "-C", str(out)],
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert "incorrect passphrase" in run.stderr.lower()
    # bsdtar leaves each file it could not decrypt as zeros of its size: never wrongly decrypted bytes
    assert not [p for p in out.rglob("*") if p.is_file() and p.read_bytes().strip(b"\0")]


def test_pyzipper_reads_byte_identical(archive: tuple[Path, dict[str, bytes]]) -> None:
    path, files = archive
    with pyzipper.AESZipFile(path) as zf:
        zf.setpassword(PASSWORD)
        assert {i.filename: zf.read(i) for i in zf.infolist()} == files
        assert zf.testzip() is None


def test_pyzipper_refuses_a_wrong_password(archive: tuple[Path, dict[str, bytes]]) -> None:
    path, _ = archive
    with pyzipper.AESZipFile(path) as zf:
        zf.setpassword(b"wrong")
        with pytest.raises(RuntimeError, match="[Bb]ad password"):
            zf.read(zf.infolist()[0])


def test_pyzipper_catches_a_flipped_ciphertext_byte(tree: Path, tmp_path: Path) -> None:
    data = b"x" * 1000
    member = aes_member("a.bin", data, PASSWORD, aes.derive_salt(SECRET, PASSWORD, "a.bin"))
    broken = bytearray(member.payload)
    broken[100] ^= 1
    member.payload = bytes(broken)
    path = tmp_path / "broken.zip"
    path.write_bytes(assemble([member]))
    with pyzipper.AESZipFile(path) as zf:
        zf.setpassword(PASSWORD)
        with pytest.raises(pyzipper.BadZipFile):
            zf.read("a.bin")
