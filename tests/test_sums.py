"""SHA256SUMS: the bytes GNU sha256sum writes, verified by sha256sum -c after extraction; the hash store."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import need_tool
from zipserve.core.formats.sums import SUMS_NAME, line, sums, sums_size
from zipserve.sources.hashes import HashStore, Sha256s, StreamHash, beside

EMPTY = hashlib.sha256(b"").digest()
HEX = EMPTY.hex().encode()


@pytest.mark.parametrize(("name", "expected"), [
    ("a.txt", HEX + b"  a.txt\n"),
    ("dir/with space.txt", HEX + b"  dir/with space.txt\n"),
    ("caf\u00e9.txt", HEX + b"  caf\xc3\xa9.txt\n"),
    ("*star", HEX + b"  *star\n"),
    (" lead", HEX + b"   lead\n"),
    ("a\\b", b"\\" + HEX + b"  a\\\\b\n"),
    ("n\nl", b"\\" + HEX + b"  n\\nl\n"),
    ("c\rr", b"\\" + HEX + b"  c\\rr\n"),
    ("all\\\n\r", b"\\" + HEX + b"  all\\\\\\n\\r\n"),
])
def test_line_is_what_gnu_sha256sum_writes(name: str, expected: bytes) -> None:
    assert line(name, EMPTY) == expected
    assert sums_size([name]) == len(expected)


def test_lines_are_sorted_by_utf8_bytes() -> None:
    got = sums([("b", EMPTY), ("\u00e9", EMPTY), ("B", EMPTY), ("a/z", EMPTY), ("a z", EMPTY)])
    assert [ln.split(b"  ", 1)[1] for ln in got.splitlines()] == [b"B", b"a z", b"a/z", b"b", b"\xc3\xa9"]


def test_wrong_sized_digest_is_refused() -> None:
    with pytest.raises(ValueError):
        line("a", b"\x00" * 20)


@given(st.lists(st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s), max_size=20))
def test_size_is_known_from_the_names_alone(names: list[str]) -> None:
    assert sums_size(names) == len(sums([(n, hashlib.sha256(n.encode()).digest()) for n in names]))


HOSTILE = ["plain.txt", "with space.txt", "back\\slash", "new\nline", "carriage\rreturn", "caf\u00e9",
           "sub/dir/deep.bin", "*star", "tab\there"]


def _files(root: Path, names: list[str]) -> dict[str, bytes]:
    files = {}
    for i, name in enumerate(names):
        data = f"file {i}: {name!r}\n".encode() * (i + 1)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[name] = data
    return files


def test_same_bytes_as_sha256sum_and_it_checks_them(tmp_path: Path) -> None:
    need_tool("sha256sum")
    files = _files(tmp_path, HOSTILE)
    ours = sums((n, hashlib.sha256(d).digest()) for n, d in files.items())
    ordered = sorted(files, key=lambda n: n.encode())
    theirs = subprocess.run(["sha256sum", "--", *ordered], cwd=tmp_path, check=True, capture_output=True)
    assert ours == theirs.stdout
    (tmp_path / SUMS_NAME).write_bytes(ours)
    subprocess.run(["sha256sum", "-c", "--strict", "--quiet", SUMS_NAME], cwd=tmp_path, check=True)


def _archive(tree: Path, path: Path) -> None:
    """Given a tree, write a ZIP of its files with a SHA256SUMS at the root, as the server will."""
    files = {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(SUMS_NAME, sums((n, hashlib.sha256(d).digest()) for n, d in files.items()))


@pytest.mark.parametrize("tool", ["unzip", "7z"])
def test_sha256sum_checks_the_extracted_tree(tool: str, tree: Path, tmp_path: Path) -> None:
    need_tool(tool)
    need_tool("sha256sum")
    archive, out = tmp_path / "sums.zip", tmp_path / "out"
    _archive(tree, archive)
    cmd = ["unzip", "-q", str(archive), "-d", str(out)] if tool == "unzip" else \
        ["7z", "x", "-y", f"-o{out}", str(archive)]
    subprocess.run(cmd, check=True, capture_output=True)
    check = ["sha256sum", "-c", "--strict", "--quiet", SUMS_NAME]
    subprocess.run(check, cwd=out, check=True)
    (out / "top.txt").write_bytes(b"changed\n")
    assert subprocess.run(check, cwd=out, capture_output=True).returncode == 1  # and a change is caught


# -- the hash store -----------------------------------------------------------------------

KEY = "local|2049|131|750|1700000000000000000|1700000000000000000"


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HashStore]:
    s = HashStore(tmp_path / "cache" / "sha256.sqlite3" if request.param == "sqlite" else None)
    yield s
    s.close()


def test_store_keeps_and_forgets_digests(store: HashStore) -> None:
    digest = hashlib.sha256(b"x").digest()
    assert store.get(KEY) is None
    store.put(KEY, digest)
    assert store.get(KEY) == digest
    store.forget(KEY)
    assert store.get(KEY) is None
    with pytest.raises(ValueError):
        store.put(KEY, b"short")


def test_digests_persist_and_are_shared_through_the_file(tmp_path: Path) -> None:
    path = beside(tmp_path / "crc.sqlite3")
    assert path == tmp_path / "sha256.sqlite3"
    first, second = HashStore(path), HashStore(path)  # two workers of one machine
    digests = {f"local|1|{i}|10|5|5": hashlib.sha256(str(i).encode()).digest() for i in range(1200)}
    for k, d in digests.items():
        first.put(k, d)
    assert second.get_many([*digests, "absent"]) == digests  # batched past SQLite's parameter cap
    first.close()
    second.close()
    again = HashStore(path)
    assert again.get(next(iter(digests))) == next(iter(digests.values()))
    again.close()


def test_sha256s_reads_a_file_once_then_asks_the_store(store: HashStore) -> None:
    reads: list[int] = []

    def read() -> Iterator[bytes]:
        reads.append(1)
        yield b"hello "
        yield b"zipserve\n"

    hashes = Sha256s(store)
    expected = hashlib.sha256(b"hello zipserve\n").digest()
    assert hashes.of(KEY, read) == expected
    assert hashes.of(KEY, read) == expected
    assert len(reads) == 1 and hashes.computed == 1


def test_stream_hash_stores_what_the_archive_streamed(store: HashStore) -> None:
    h = StreamHash(store, KEY)
    for chunk in (b"a" * 1000, b"", b"b" * 7):
        h.update(chunk)
    expected = hashlib.sha256(b"a" * 1000 + b"b" * 7).digest()
    assert h.finish() == expected
    assert store.get(KEY) == expected
