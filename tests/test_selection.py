"""Tables for zipserve.selection: requested names -> safe parts, formats, selections, names."""

from __future__ import annotations

import pytest

from zipserve.core.selection import (
    Options,
    Selection,
    download_name,
    make_selection,
    parse_options,
    parse_path,
    split_extension,
)
from zipserve.errors import BadRequest, Forbidden

# ---------------------------------------------------------------- parse_path


@pytest.mark.parametrize("raw", ["", ".", "/"])
def test_parse_path_root_forms_are_the_root(raw: str) -> None:
    assert parse_path(raw) == ()


@pytest.mark.parametrize(
    ("raw", "parts"),
    [
        ("top.txt", ("top.txt",)),
        ("docs/notes/long.txt", ("docs", "notes", "long.txt")),
        ("docs/notes/", ("docs", "notes")),  # trailing slash
        ("docs//notes", ("docs", "notes")),  # empty part
        ("./docs/./notes", ("docs", "notes")),  # "." parts
        ("photos/caf\u00e9 \u00fcber.txt", ("photos", "caf\u00e9 \u00fcber.txt")),
        ("a..b/c..", ("a..b", "c..")),  # dots inside a name are not "..": a plain name
        ("...", ("...",)),
        ("ab:c", ("ab:c",)),  # a colon after more than one letter is no drive
    ],
)
def test_parse_path_splits_relative_paths_into_parts(raw: str, parts: tuple[str, ...]) -> None:
    assert parse_path(raw) == parts


@pytest.mark.parametrize(
    "raw",
    [
        "..",
        "../etc/passwd",
        "docs/../../etc",
        "docs/..",
        "docs/notes/../..",
        "./..",
        "/etc/passwd",
        "//etc/passwd",
        "/docs",
        "..\\etc",
        "docs\\readme.txt",
        "\\\\srv\\share",
        "C:",
        "C:file",
        "c:\\windows\\win.ini",
        "Z:/x",
    ],
)
def test_parse_path_refuses_escapes_as_forbidden(raw: str) -> None:
    with pytest.raises(Forbidden):
        parse_path(raw)


@pytest.mark.parametrize("raw", ["\x00", "file\x00.txt", "docs/\x00/x", "..\x00"])
def test_parse_path_refuses_nul_as_bad_request(raw: str) -> None:
    with pytest.raises(BadRequest):
        parse_path(raw)


def test_parse_path_refuses_a_path_over_max_bytes() -> None:
    with pytest.raises(BadRequest):
        parse_path("a/" * 2048 + "b", max_bytes=4096)  # 4,097 bytes


def test_parse_path_accepts_a_path_of_exactly_max_bytes() -> None:
    raw = "a/" * 2047 + "bc"  # 4,096 bytes
    assert parse_path(raw, max_bytes=4096) == ("a",) * 2047 + ("bc",)


def test_parse_path_counts_bytes_not_characters() -> None:
    with pytest.raises(BadRequest):
        parse_path("\u00e9" * 11, max_bytes=21)  # 11 characters, 22 bytes


def test_parse_path_refuses_one_name_over_255_bytes() -> None:
    with pytest.raises(BadRequest):
        parse_path("docs/" + "x" * 256)


def test_parse_path_error_names_the_path_bounded() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_path("a/" * 5000)
    assert caught.value.path is not None
    assert caught.value.path.startswith("a/a/")
    assert len(caught.value.path) <= 210


# ------------------------------------------------------------ split_extension


@pytest.mark.parametrize(
    ("raw", "fmt", "expected"),
    [
        ("docs.zip", None, ("docs", "zip")),
        ("docs.tar", None, ("docs", "tar")),
        ("docs.tar.gz", None, ("docs", "tar.gz")),  # not docs.tar as gz: longest wins
        ("docs.tgz", None, ("docs", "tar.gz")),  # alias
        ("docs.tar.zst", None, ("docs", "tar.zst")),
        ("docs/readme.txt.gz", None, ("docs/readme.txt", "gz")),
        ("a.b/c.d.zip", None, ("a.b/c.d", "zip")),
        ("x.tar.gz.zip", None, ("x.tar.gz", "zip")),
        # ?format= strips a matching extension and takes any other name whole.
        ("docs.zip", "zip", ("docs", "zip")),
        ("docs", "zip", ("docs", "zip")),
        ("docs", "tgz", ("docs", "tar.gz")),
        ("docs.tgz", "tar.gz", ("docs", "tar.gz")),
        ("docs.tar.gz", "tgz", ("docs", "tar.gz")),
        ("x.tar.gz", "gz", ("x.tar", "gz")),  # a file x.tar, gzipped
        ("x.tar.gz", "tar", ("x.tar.gz", "tar")),  # a folder named x.tar.gz, as tar
        ("docs.zip", "tar", ("docs.zip", "tar")),
        ("docs", "TAR.GZ", ("docs", "tar.gz")),
        ("docs", ".zip", ("docs", "zip")),
    ],
)
def test_split_extension_table(raw: str, fmt: str | None, expected: tuple[str, str]) -> None:
    assert split_extension(raw, fmt) == expected


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        ("docs", None),
        ("docs.rar", None),
        ("docs.7z", None),
        ("docs.zipx", None),
        ("docs.tar.bz2", None),
        ("docszip", None),  # no dot before the extension
        ("docs.zip", "rar"),
        ("docs", ""),
        ("docs", "zip; rm -rf"),
    ],
)
def test_split_extension_unknown_is_bad_request(raw: str, fmt: str | None) -> None:
    with pytest.raises(BadRequest):
        split_extension(raw, fmt)


# ------------------------------------------------------------- parse_options


@pytest.mark.parametrize(
    ("compression", "level", "expected"),
    [
        (None, None, Options("zip", "auto", 6)),
        ("", "", Options("zip", "auto", 6)),
        ("store", "1", Options("zip", "store", 1)),
        ("DEFLATE", "9", Options("zip", "deflate", 9)),
        ("auto", "5", Options("zip", "auto", 5)),
    ],
)
def test_parse_options_table(compression: str | None, level: str | None,
                             expected: Options) -> None:
    assert parse_options("zip", compression, level, default_level=6) == expected


@pytest.mark.parametrize(("fmt", "expected"),
                         [("zip", "zip"), ("tgz", "tar.gz"), ("TAR.ZST", "tar.zst"), ("gz", "gz")])
def test_parse_options_makes_the_format_canonical(fmt: str, expected: str) -> None:
    assert parse_options(fmt, None, None, default_level=1).format == expected


@pytest.mark.parametrize("fmt", ["rar", "", "zipx", "tar.bz2"])
def test_parse_options_refuses_an_unknown_format(fmt: str) -> None:
    with pytest.raises(BadRequest):
        parse_options(fmt, None, None, default_level=1)


@pytest.mark.parametrize(
    ("compression", "level"),
    [("lzma", None), ("store ", None), (None, "0"), (None, "10"), (None, "+5"), (None, "1_0"),
     (None, "\u0663"), (None, " 5"), (None, "5.0"), (None, "-1")],
)
def test_parse_options_refuses_bad_values(compression: str | None, level: str | None) -> None:
    with pytest.raises(BadRequest):
        parse_options("zip", compression, level, default_level=6)


# ------------------------------------------------------------ make_selection


@pytest.mark.parametrize(
    ("paths", "kept", "base"),
    [
        # One folder keeps its own name: names are relative to its parent.
        ([("a", "b", "c")], [("a", "b", "c")], ("a", "b")),
        ([("top.txt",)], [("top.txt",)], ()),
        # The deepest folder holding every path.
        ([("a", "b"), ("a", "c")], [("a", "b"), ("a", "c")], ("a",)),
        ([("a", "b", "x"), ("a", "c", "y")], [("a", "b", "x"), ("a", "c", "y")], ("a",)),
        ([("a", "b", "x"), ("a", "b", "y")], [("a", "b", "x"), ("a", "b", "y")], ("a", "b")),
        ([("a",), ("b",)], [("a",), ("b",)], ()),
        # A selected folder is never flattened: base is its parent, not itself.
        ([("a", "b"), ("a", "b", "c", "d")], [("a", "b")], ("a",)),
        # Parts, not string prefixes.
        ([("a",), ("ab",)], [("a",), ("ab",)], ()),
        ([("a", "b"), ("a", "bc")], [("a", "b"), ("a", "bc")], ("a",)),
        # Duplicates and nested selections are dropped: never an entry twice.
        ([("a",), ("a",)], [("a",)], ()),
        ([("a", "b"), ("a", "b", "c"), ("a", "d")], [("a", "b"), ("a", "d")], ("a",)),
        ([("x", "y", "z"), ("x", "y")], [("x", "y")], ("x",)),
        # The root wins over everything.
        ([(), ("a",)], [()], ()),
        ([("a", "b"), ()], [()], ()),
        ([()], [()], ()),
    ],
)
def test_make_selection_table(paths: list[tuple[str, ...]], kept: list[tuple[str, ...]],
                              base: tuple[str, ...]) -> None:
    selection = make_selection(paths)
    assert selection.paths == tuple(kept)
    assert selection.base == base


def test_make_selection_is_independent_of_order() -> None:
    paths = [("b", "y"), ("a",), ("b", "x")]
    assert make_selection(paths) == make_selection(list(reversed(paths)))


def test_make_selection_of_nothing_is_bad_request() -> None:
    with pytest.raises(BadRequest):
        make_selection([])


@pytest.mark.parametrize(
    ("paths", "path", "name"),
    [
        ([("a", "b", "c")], ("a", "b", "c"), ("c",)),
        ([("a", "b", "c")], ("a", "b", "c", "d", "e.txt"), ("c", "d", "e.txt")),
        ([("a", "b", "f.txt")], ("a", "b", "f.txt"), ("f.txt",)),
        ([("a", "b"), ("a", "c", "y")], ("a", "c", "y"), ("c", "y")),
        ([()], ("docs", "readme.txt"), ("docs", "readme.txt")),
    ],
)
def test_selection_names_entries_relative_to_its_base(paths: list[tuple[str, ...]],
                                                      path: tuple[str, ...],
                                                      name: tuple[str, ...]) -> None:
    assert make_selection(paths).name_of(path) == name


# ------------------------------------------------------------- download_name


def sel(*paths: tuple[str, ...]) -> Selection:
    return make_selection(list(paths))


@pytest.mark.parametrize(
    ("selection", "fmt", "name", "expected"),
    [
        (sel(("photos", "2024")), "zip", None, "2024.zip"),
        (sel(("docs", "readme.txt")), "zip", None, "readme.txt.zip"),
        (sel(("docs", "readme.txt")), "gz", None, "readme.txt.gz"),
        (sel(("docs",)), "tar.gz", None, "docs.tar.gz"),
        (sel(("docs",)), "tar.zst", None, "docs.tar.zst"),
        (sel(("docs",)), "tar", None, "docs.tar"),
        # A selection: the common folder's name, else "archive".
        (sel(("a", "b", "x"), ("a", "b", "y")), "zip", None, "b.zip"),
        (sel(("a", "x"), ("b", "y")), "tar", None, "archive.tar"),
        (sel(()), "zip", None, "archive.zip"),
        (sel(()), "tar.gz", None, "archive.tar.gz"),
        # name= wins; its extension is not doubled; slashes cannot make a path.
        (sel(("docs",)), "zip", "bundle", "bundle.zip"),
        (sel(("docs",)), "zip", "bundle.zip", "bundle.zip"),
        (sel(("docs",)), "zip", "BUNDLE.ZIP", "BUNDLE.zip"),
        (sel(("docs",)), "tar.gz", "bundle.tar.gz", "bundle.tar.gz"),
        (sel(("docs",)), "zip", "bundle.tar", "bundle.tar.zip"),
        (sel(()), "zip", "a/b", "a_b.zip"),
        (sel(()), "zip", "../../etc/passwd", ".._.._etc_passwd.zip"),
        (sel(()), "zip", "a\\b", "a_b.zip"),
        (sel(()), "zip", "/", "_.zip"),
        (sel(("docs",)), "zip", "   ", "archive.zip"),
        (sel(("docs",)), "zip", "", "docs.zip"),
        (sel(()), "zip", "caf\u00e9", "caf\u00e9.zip"),
    ],
)
def test_download_name_table(selection: Selection, fmt: str, name: str | None,
                             expected: str) -> None:
    assert download_name(selection, fmt, name) == expected


@pytest.mark.parametrize("name", ["a/b", "../x", "/etc/passwd", "a\\..\\b", "x/"])
def test_download_name_never_contains_a_path_separator(name: str) -> None:
    result = download_name(sel(()), "zip", name)
    assert "/" not in result
    assert "\\" not in result


@pytest.mark.parametrize(("names", "expected"), [(None, "keep"), ("", "keep"), ("keep", "keep"),
                                                 ("windows", "windows"), ("Windows", "windows")])
def test_parse_options_names(names: str | None, expected: str) -> None:
    assert parse_options("zip", None, None, default_level=1, names=names).names == expected


@pytest.mark.parametrize("names", ["dos", "win", " windows"])
def test_parse_options_refuses_unknown_names(names: str) -> None:
    with pytest.raises(BadRequest, match="names must be one of: keep, windows"):
        parse_options("zip", None, None, default_level=1, names=names)


@pytest.mark.parametrize(("fmt", "checksums", "expected"), [
    ("zip", None, "none"), ("zip", "sha256", "sha256"), ("zip", "SHA256", "sha256"),
    ("tar", "none", "none"),
])
def test_parse_options_checksums(fmt: str, checksums: str | None, expected: str) -> None:
    assert parse_options(fmt, None, None, default_level=1, checksums=checksums).checksums == expected


@pytest.mark.parametrize(("fmt", "checksums"), [("zip", "md5"), ("tar", "md5"), ("gz", "sha256")])
def test_parse_options_refuses_checksums_it_cannot_serve(fmt: str, checksums: str) -> None:
    with pytest.raises(BadRequest, match="checksums"):
        parse_options(fmt, None, None, default_level=1, checksums=checksums)
