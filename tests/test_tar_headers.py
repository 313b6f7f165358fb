"""The fast ustar header is byte for byte what tarfile writes, and tarfile still writes the rest."""

from __future__ import annotations

import itertools
import tarfile

import pytest

from zipserve.core.formats import tar
from zipserve.core.node import Entry, Node

NAMES = ["a", "a/b.txt", "x" * 99, "x" * 100, "x" * 101, "caf\u00e9", "d/" + "y" * 97]
SIZES = [0, 1, 8**11 - 1, 8**11]  # 8**11 needs a PAX size record
TIMES = [0, 1_700_000_000, 8**11 - 1, 8**11]
MODES = [0o644, 0o755, 0o4755, 0o7777]


def by_tarfile(entry: Entry) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.type = tarfile.DIRTYPE if entry.is_dir else tarfile.REGTYPE
    info.mode = entry.node.mode
    info.size = entry.node.size
    info.mtime = entry.node.mtime_ns // 1_000_000_000
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def entry(name: str, kind: str, size: int, mtime: int, mode: int) -> Entry:
    return Entry(name, Node((name,), kind, size if kind == "file" else 0, mtime * 10**9,
                            mode, 0, 0, 0))


CASES = [entry(*c) for c in itertools.product(NAMES, ["file", "dir"], SIZES, TIMES, MODES)]


@pytest.mark.parametrize("name", NAMES)
def test_every_header_equals_tarfiles(name):
    for e in (c for c in CASES if c.name == name):
        assert tar.header(e) == by_tarfile(e), e


def test_header_size_matches_the_header():
    assert all(tar.header_size(e) == len(by_tarfile(e)) for e in CASES)


@pytest.mark.parametrize("e,blocks", [
    (entry("a.txt", "file", 10, 1_700_000_000, 0o644), 1),
    (entry("x" * 101, "file", 10, 1_700_000_000, 0o644), 3),  # PAX path record
    (entry("caf\u00e9", "file", 10, 1_700_000_000, 0o644), 3),  # non-ASCII name
    (entry("big", "file", 8**11, 1_700_000_000, 0o644), 3),  # over 8 GiB
])
def test_pax_records_only_where_needed(e, blocks):
    assert len(tar.header(e)) == blocks * 512
