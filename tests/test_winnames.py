"""names=windows: each hostile character, device name, length and collision; properties over random trees."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zipserve.core.winnames import (
    COMPONENT_CAP,
    FLOOR,
    PATH_CAP,
    fold,
    reserved,
    units,
    valid,
    windows_names,
)

HOSTILE = '<>:"|?*\\' + "".join(map(chr, range(32)))


@pytest.mark.parametrize("char", list(HOSTILE), ids=[f"0x{ord(c):02x}" for c in HOSTILE])
def test_hostile_character_becomes_underscore(char: str) -> None:
    assert windows_names([f"a{char}b.txt"]) == {f"a{char}b.txt": "a_b.txt"}


@pytest.mark.parametrize(("name", "expected"), [
    ("name.", "name"),
    ("name. . ", "name"),
    ("trailing space ", "trailing space"),
    ("...", "_"),
    (" ", "_"),
    ("a.b.", "a.b"),
    (" leading space", " leading space"),  # valid on Windows: kept
    ("dot.in.middle.txt", "dot.in.middle.txt"),
])
def test_trailing_dots_and_spaces_are_dropped(name: str, expected: str) -> None:
    assert windows_names([name])[name] == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("CON", "CON_"), ("con", "con_"), ("Prn", "Prn_"), ("AUX", "AUX_"), ("nul", "nul_"),
    ("nul.txt", "nul_.txt"), ("Com1.tar.gz", "Com1_.tar.gz"), ("COM9", "COM9_"), ("com0", "com0_"),
    ("LPT1", "LPT1_"), ("lpt9.log", "lpt9_.log"), ("COM\u00b9", "COM\u00b9_"),
    ("com\u00b2.txt", "com\u00b2_.txt"),
    ("LPT\u00b3", "LPT\u00b3_"), ("CONIN$", "CONIN$_"), ("conout$.x", "conout$_.x"),
    ("nul .txt", "nul _.txt"), ("AUX.", "AUX_"), ("con:", "con_"),
    # not devices
    ("CONSOLE", "CONSOLE"), ("COM10", "COM10"), ("xnul", "xnul"), ("nul_", "nul_"), ("LPT", "LPT"),
    ("COM\u2074", "COM\u2074"), (".nul", ".nul"),
])
def test_device_names_get_an_underscore(name: str, expected: str) -> None:
    assert windows_names([name])[name] == expected
    assert not reserved(expected)


def test_device_name_as_folder_renames_descendants() -> None:
    got = windows_names(["aux", "aux/file.txt", "aux/sub/deep.txt"])
    assert got == {"aux": "aux_", "aux/file.txt": "aux_/file.txt", "aux/sub/deep.txt": "aux_/sub/deep.txt"}


@pytest.mark.parametrize(("names", "expected"), [
    (["A.txt", "a.txt"], ["A.txt", "a (2).txt"]),
    (["A.txt", "a.TXT", "a.txt"], ["A.txt", "a (2).TXT", "a (3).txt"]),
    # a name that needs no change keeps it; the renamed one moves aside
    (["a:b", "a_b"], ["a_b (2)", "a_b"]),
    (["a (2).txt", "a.txt", "A.txt"], ["a (2).txt", "a (3).txt", "A.txt"]),
    (["a", "a."], ["a", "a (2)"]),
    (["x?", "x*", "x|"], ["x_ (2)", "x_", "x_ (3)"]),  # sorted order: * < ? < |
    (["\u00df", "SS"], ["\u00df (2)", "SS"]),  # ß and SS: Windows may keep both, folding more is safe
    (["I", "\u0131"], ["I", "\u0131 (2)"]),  # dotless i upper-cases to I
    (["archive.tar.gz", "ARCHIVE.tar.gz"], ["archive.tar (2).gz", "ARCHIVE.tar.gz"]),
    (["Docs", "Docs/x", "docs", "docs/y"], ["Docs", "Docs/x", "docs (2)", "docs (2)/y"]),
    (["A", "a/b"], ["A", "a (2)/b"]),  # a file and an implicit folder collide too
])
def test_case_insensitive_collisions_are_numbered(names: list[str], expected: list[str]) -> None:
    got = windows_names(names)
    assert [got[n] for n in names] == expected


def test_renamed_folder_moves_every_descendant() -> None:
    names = ["x:y", "x:y/a", "x:y/b", "x:y/b/c.txt", "x_y", "x_y/a"]
    got = windows_names(names)
    assert got["x_y"] == "x_y" and got["x_y/a"] == "x_y/a"
    assert got["x:y"] == "x_y (2)"
    assert [got[n] for n in names[1:4]] == ["x_y (2)/a", "x_y (2)/b", "x_y (2)/b/c.txt"]


def test_implicit_parent_is_renamed_too() -> None:
    assert windows_names(["p?q/file", "p?q/other"]) == {"p?q/file": "p_q/file", "p?q/other": "p_q/other"}


@pytest.mark.parametrize(("name", "length"), [
    ("a" * 296 + ".txt", PATH_CAP),
    ("\U0001f600" * 200, PATH_CAP),  # astral characters count two units
    ("b" + "\U0001f600" * 150, PATH_CAP - 1),  # a surrogate pair is never split
    ("b" * 300, PATH_CAP),
])
def test_long_name_is_cut_to_the_cap_in_utf16_units(name: str, length: int) -> None:
    assert PATH_CAP < COMPONENT_CAP  # so a single name is cut to the path cap
    got = windows_names([name])[name]
    assert units(got) == length
    assert got.encode("utf-16-le") == got.encode("utf-16-le", "surrogatepass")  # no lone surrogate
    if name.endswith(".txt"):
        assert got.endswith(".txt")


def test_long_path_is_cut_under_the_cap_and_folders_stay_consistent() -> None:
    folders = ["f" * 60, "g" * 60, "h" * 60]
    deep = "/".join(folders)
    names = [folders[0], "/".join(folders[:2]), deep, deep + "/" + "x" * 60 + ".txt", deep + "/short.txt"]
    got = windows_names(names)
    for name in names:
        assert units(got[name]) <= PATH_CAP
    assert got[deep + "/short.txt"].startswith(got[deep] + "/")
    assert got[deep + "/" + "x" * 60 + ".txt"].endswith(".txt")
    assert got[deep].startswith(got["/".join(folders[:2])] + "/")


def test_long_folder_over_short_descendants_is_kept() -> None:
    top = "Photos from the summer vacation 2023"
    names = [top + "/" + "/".join("abcdefghijkl"[: i + 1]) for i in range(12)]
    got = windows_names(names)
    assert got == {n: n for n in names}  # the whole path fits: nothing is cut


def test_valid_names_are_unchanged() -> None:
    names = ["docs", "docs/readme.txt", "photos/caf\u00e9 \u00fcber.txt", "a" * 120 + "/" + "b" * 75 + ".txt"]
    assert windows_names(names) == {n: n for n in names}


def test_many_colliding_names_stay_fast_and_distinct() -> None:
    names = [format(i, "016b").replace("0", "a").replace("1", "A") for i in range(4096)]
    got = windows_names(sorted(names))
    assert len({fold(v) for v in got.values()}) == len(names)


# -- properties ---------------------------------------------------------------------

PIECES = st.sampled_from(list(HOSTILE) + list("aAbB. \u00e9\u00c9\u00df\u0131I") + [
    "\U0001f600", "CON", "nul", "com1", "LPT\u00b9", ".txt", "x" * 40, " (2)"])
COMPONENTS = st.lists(PIECES, min_size=1, max_size=8).map("".join)
PATHS = st.lists(COMPONENTS, min_size=1, max_size=4).map("/".join)


def _prefixes(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _check(names: list[str], got: dict[str, str]) -> None:
    """Assert got is valid, within the caps, collision-free and consistent with the tree of names."""
    assert list(got) == names
    for old, new in got.items():
        assert new.count("/") == old.count("/")
        for component in new.split("/"):
            assert valid(component) and units(component) <= COMPONENT_CAP, (old, new)
        if old.count("/") < PATH_CAP // (FLOOR + 1):
            assert units(new) <= PATH_CAP, (old, new)
    # Two prefixes are one folder after renaming exactly when they were one before.
    pairs: dict[str, str] = {}
    for old, new in got.items():
        for a, b in zip(_prefixes(old), _prefixes(new), strict=True):
            assert pairs.setdefault(a, b) == b  # one folder, one new name
    by_fold: dict[str, str] = {}
    for a, b in pairs.items():
        assert by_fold.setdefault(fold(b), a) == a, (a, b)


@settings(max_examples=400, deadline=None)
@given(st.lists(PATHS, max_size=30))
def test_output_is_valid_collision_free_and_stable(paths: list[str]) -> None:
    names = sorted(set(paths))
    got = windows_names(names)
    _check(names, got)
    assert windows_names(names) == got
    again = windows_names(list(got.values()))
    assert again == {v: v for v in got.values()}  # valid names are kept


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.text(alphabet="abAB.:<", min_size=1, max_size=60), min_size=1, max_size=11)
                .map("/".join), min_size=1, max_size=10))
def test_paths_of_eleven_levels_fit_the_cap(paths: list[str]) -> None:
    names = sorted(set(paths))
    got = windows_names(names)
    _check(names, got)
    assert max(units(v) for v in got.values()) <= PATH_CAP


# -- real extractors ------------------------------------------------------------------

def _hostile_names() -> list[str]:
    names = [f"h{c}x.txt" for c in HOSTILE if c != "\x00"] + [f"h{c}x.txt" for c in "_"]
    names += ["CON", "con.txt", "Nul", "COM1.log", "com\u00b9", "dots...", "space ", "Case.txt", "CASE.TXT",
              "case.txt", "dir:1/a.txt", "DIR_1/b.txt", "dir_1/c.txt"]
    return sorted(names)


@pytest.mark.parametrize("tool", ["7z", "unzip"])
def test_extractors_write_every_renamed_entry_as_a_distinct_file(tool: str, tmp_path: Path) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    names = _hostile_names()
    got = windows_names(names)
    archive = tmp_path / "names.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in names:
            zf.writestr(got[name], name.encode("utf-8", "surrogatepass"))
    out = tmp_path / "out"
    cmd = (["7z", "x", "-y", f"-o{out}", str(archive)] if tool == "7z"
           else ["unzip", "-q", str(archive), "-d", str(out)])
    subprocess.run(cmd, check=True, capture_output=True)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(files) == len(names)
    assert len({fold(str(p.relative_to(out))) for p in files}) == len(names)  # distinct on Windows too
    for name in names:
        assert (out / got[name]).read_bytes() == name.encode("utf-8")
