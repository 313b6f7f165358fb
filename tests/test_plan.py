"""Tables for zipserve.plan on hand-built Nodes: naming, order, sizing, gz rules and the ETag."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from zipserve.core.formats import tar, zip
from zipserve.core.node import Entry, Node
from zipserve.core.plan import MIN_DEFLATE, ArchivePlan, build
from zipserve.core.selection import Options, make_selection
from zipserve.errors import BadRequest

MTIME_NS = 1_700_000_000 * 10**9
_inodes = itertools.count(100)


def file(path: str, size: int = 1000, *, mode: int = 0o644, mtime_ns: int = MTIME_NS) -> Node:
    return Node(path=tuple(path.split("/")), kind="file", size=size, mtime_ns=mtime_ns,
                mode=mode, dev=1, ino=next(_inodes), ctime_ns=mtime_ns)


def folder(path: str, *, mode: int = 0o755, mtime_ns: int = MTIME_NS) -> Node:
    parts = tuple(path.split("/")) if path else ()
    return Node(path=parts, kind="dir", size=0, mtime_ns=mtime_ns, mode=mode, dev=1,
                ino=next(_inodes), ctime_ns=mtime_ns)


def plan_of(paths: list[str], nodes: list[Node], fmt: str = "tar",
            compression: str = "auto", level: int = 1) -> ArchivePlan:
    selection = make_selection([tuple(p.split("/")) if p else () for p in paths])
    return build(selection, nodes, Options(fmt, compression, level), "x." + fmt)


def names(plan: ArchivePlan) -> list[str]:
    return [e.name for e in plan.entries]


# ------------------------------------------------------------------- naming

# Nodes as a walk of the selected paths yields them (each top first).
ABC = [folder("a/b/c"), file("a/b/c/d.txt"), folder("a/b/c/e"), file("a/b/c/e/f.txt")]
ROOT = [folder(""), folder("docs"), file("docs/r.txt"), folder("empty"), file("top.txt")]


@pytest.mark.parametrize(
    ("paths", "nodes", "expected"),
    [
        # One folder a/b/c -> c/... (the folder keeps its own name, as an entry).
        (["a/b/c"], ABC, ["c", "c/d.txt", "c/e", "c/e/f.txt"]),
        # One file -> its base name.
        (["a/b/f.txt"], [file("a/b/f.txt")], ["f.txt"]),
        # A selection -> relative to the deepest common folder; folders not flattened.
        (["a/b/x.txt", "a/c"], [file("a/b/x.txt"), folder("a/c"), file("a/c/y.txt")],
         ["b/x.txt", "c", "c/y.txt"]),
        (["a/b/x.txt", "a/b/y.txt"], [file("a/b/x.txt"), file("a/b/y.txt")],
         ["x.txt", "y.txt"]),
        (["p", "q/r"], [folder("p"), file("p/1"), file("q/r")], ["p", "p/1", "q/r"]),
        # The root's entries sit at the top level; the root itself is no entry.
        ([""], ROOT, ["docs", "docs/r.txt", "empty", "top.txt"]),
        ([".", "docs"], ROOT, ["docs", "docs/r.txt", "empty", "top.txt"]),
    ],
)
def test_entries_are_named_per_spec(paths: list[str], nodes: list[Node],
                                    expected: list[str]) -> None:
    assert names(plan_of(paths, nodes)) == expected


def test_entry_names_never_start_with_a_slash_or_dot() -> None:
    for plan in (plan_of([""], ROOT), plan_of(["a/b/c"], ABC)):
        assert all(not n.startswith(("/", "./")) and ".." not in n.split("/")
                   for n in names(plan))


def test_a_node_walked_twice_is_one_entry() -> None:
    nodes = [folder("a"), file("a/x"), file("a/x"), folder("a"), file("a/y")]
    assert names(plan_of(["a"], nodes)) == ["a", "a/x", "a/y"]


def test_nested_selection_gives_each_entry_once() -> None:
    # A walk of "a" and of "a/b" as the service would run them, were both kept.
    walk_a = [folder("a"), folder("a/b"), file("a/b/z")]
    walk_ab = [folder("a/b"), file("a/b/z")]
    plan = plan_of(["a", "a/b"], walk_a + walk_ab)
    assert names(plan) == ["a", "a/b", "a/b/z"]


def test_entries_are_ordered_by_utf8_bytes_not_by_walk_or_locale() -> None:
    listed = ["\U0001f600.txt", "\u00e9.txt", "\ufffd.txt", "a/b.txt", "Z.txt", "a.txt",
              "a-b.txt", "\u00e4.txt"]
    nodes = [folder("")] + [file(n) for n in listed] + [folder("a")]
    # '-' (0x2d) < '.' (0x2e) < '/' (0x2f); U+FFFD (EF BF BD) < U+1F600 (F0 ...),
    # the other way round in UTF-16.
    assert names(plan_of([""], nodes)) == [
        "Z.txt", "a", "a-b.txt", "a.txt", "a/b.txt", "\u00e4.txt", "\u00e9.txt",
        "\ufffd.txt", "\U0001f600.txt"]


def test_order_of_the_walk_does_not_change_the_plan() -> None:
    forward = plan_of([""], ROOT)
    backward = plan_of([""], list(reversed(ROOT)))
    assert names(forward) == names(backward)
    assert forward.etag == backward.etag


# ------------------------------------------------------------------- sizing


def sized(fmt: str, compression: str, nodes: list[Node]) -> bool:
    return plan_of([""], [folder(""), *nodes], fmt, compression).sized


TEXT = file("notes.txt", 5000)
JPEG = file("cat.jpg", 200_000)
PNG = file("dog.PNG", 50_000)
EMPTY = file("empty.txt", 0)
TINY = file("tiny.txt", MIN_DEFLATE - 1)
DIR = folder("sub")


@pytest.mark.parametrize(
    ("fmt", "compression", "nodes", "expected"),
    [
        ("tar", "auto", [TEXT, JPEG, DIR], True),
        ("tar", "deflate", [TEXT], True),  # compression is a ZIP option only
        ("zip", "store", [TEXT, JPEG, EMPTY, DIR], True),
        # auto: sized only when nothing would be deflated.
        ("zip", "auto", [JPEG, PNG, EMPTY, DIR], True),
        ("zip", "auto", [TINY, EMPTY], True),
        ("zip", "auto", [], True),
        ("zip", "auto", [JPEG, TEXT], False),
        ("zip", "auto", [file("t.txt", MIN_DEFLATE)], False),
        ("zip", "deflate", [JPEG], False),
        ("zip", "deflate", [TEXT], False),
        ("tar.gz", "auto", [JPEG], False),
        ("tar.gz", "store", [EMPTY], False),
        ("tar.zst", "auto", [JPEG], False),
    ],
)
def test_sized_decision(fmt: str, compression: str, nodes: list[Node], expected: bool) -> None:
    assert sized(fmt, compression, nodes) is expected


def test_zip_deflate_with_only_empty_files_is_sized() -> None:
    # Nothing to deflate in an empty file: it is stored, so the size is known.
    assert sized("zip", "deflate", [EMPTY, DIR])


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_sized_plan_has_total_and_strong_etag(fmt: str) -> None:
    plan = plan_of([""], [folder(""), JPEG, EMPTY, DIR], fmt, "store")
    assert plan.total is not None
    assert plan.total > JPEG.size
    assert plan.etag is not None
    assert plan.etag.startswith('"')
    assert plan.etag.endswith('"')


def test_tar_total_is_whole_records() -> None:
    plan = plan_of([""], [folder(""), TEXT, JPEG, DIR], "tar")
    assert plan.total is not None
    assert plan.total % 10240 == 0
    assert plan.total >= TEXT.size + JPEG.size + 3 * 512 + 1024


@pytest.mark.parametrize(("fmt", "compression"),
                         [("zip", "deflate"), ("tar.gz", "auto"), ("tar.zst", "auto"),
                          ("gz", "auto")])
def test_unsized_plan_has_no_total_and_no_etag(fmt: str, compression: str) -> None:
    plan = plan_of(["notes.txt"], [TEXT], fmt, compression)
    assert plan.total is None
    assert plan.etag is None


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("zip", "application/zip"), ("tar", "application/x-tar"),
     ("tar.gz", "application/gzip"), ("gz", "application/gzip"),
     ("tar.zst", "application/zstd")],
)
def test_content_type_per_format(fmt: str, content_type: str) -> None:
    assert plan_of(["notes.txt"], [TEXT], fmt).content_type == content_type


@pytest.mark.parametrize(
    ("fmt", "compression", "laid_out_as"),
    [("zip", "store", "zip"), ("zip", "deflate", None), ("tar", "auto", "tar"),
     ("tar.gz", "auto", "tar"), ("tar.zst", "auto", "tar"), ("gz", "auto", None)],
)
def test_layout_per_format(fmt: str, compression: str, laid_out_as: str | None) -> None:
    # A compressed tar is laid out as the tar inside; a deflated ZIP and gz are not laid out.
    plan = plan_of(["notes.txt"], [TEXT], fmt, compression)
    expected = {"zip": zip.layout, "tar": tar.layout, None: lambda entries: None}[laid_out_as]
    assert plan.layout == expected(list(plan.entries))


def test_last_modified_is_the_newest_entry() -> None:
    newer = file("new.txt", mtime_ns=MTIME_NS + 5 * 10**9 + 999)
    plan = plan_of([""], [folder(""), TEXT, newer])
    assert plan.last_modified == 1_700_000_005


@pytest.mark.parametrize(
    ("compression", "deflated"),
    [("store", []), ("deflate", ["big.jpg", "notes.txt", "tiny.txt"]), ("auto", ["notes.txt"])],
)
def test_zip_entries_marked_for_deflate(compression: str, deflated: list[str]) -> None:
    nodes = [folder(""), file("notes.txt", 5000), file("big.jpg", 5000), file("tiny.txt", 10),
             file("empty.txt", 0), folder("sub")]
    plan = plan_of([""], nodes, "zip", compression)
    marked = [e.name for e in plan.entries if e.deflate and e.node.size]
    assert marked == deflated


# ----------------------------------------------------------------------- gz


def test_gz_of_one_file_is_one_entry_named_by_its_base_name() -> None:
    plan = plan_of(["docs/readme.txt"], [file("docs/readme.txt")], "gz")
    assert names(plan) == ["readme.txt"]


@pytest.mark.parametrize(
    ("paths", "nodes"),
    [
        (["docs"], [folder("docs"), file("docs/a")]),
        (["empty"], [folder("empty")]),
        (["a", "b"], [file("a"), file("b")]),
        ([""], [folder(""), file("a")]),
    ],
)
def test_gz_of_a_folder_or_several_files_is_bad_request(paths: list[str],
                                                        nodes: list[Node]) -> None:
    with pytest.raises(BadRequest) as caught:
        plan_of(paths, nodes, "gz")
    assert caught.value.message == "gz holds exactly one file; use tar.gz for a folder or a selection"


# --------------------------------------------------------------------- ETag

BASE = [folder(""), file("a.txt", 10), folder("d"), file("d/b.jpg", 3000)]


def etag(nodes: list[Node], fmt: str = "zip", compression: str = "store",
         level: int = 1) -> str | None:
    return plan_of([""], nodes, fmt, compression, level).etag


def changed(index: int, **changes: object) -> list[Node]:
    nodes = list(BASE)
    nodes[index] = dataclasses.replace(nodes[index], **changes)
    return nodes


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param(changed(1, path=("A.txt",)), id="name"),
        pytest.param(changed(2, path=("e",)), id="folder-name"),
        pytest.param(changed(1, kind="dir", size=0), id="kind"),
        pytest.param(changed(1, mode=0o755), id="mode"),
        pytest.param(changed(2, mode=0o700), id="folder-mode"),
        pytest.param(changed(1, size=11), id="size"),
        pytest.param(changed(3, mtime_ns=BASE[3].mtime_ns + 1), id="mtime_ns"),
        pytest.param(changed(2, mtime_ns=BASE[2].mtime_ns + 10**9), id="folder-mtime"),
        pytest.param([*BASE, file("d/c.txt", 0)], id="added"),
        pytest.param(BASE[:3], id="removed"),
    ],
)
def test_etag_changes_when_an_entry_changes(nodes: list[Node]) -> None:
    assert etag(nodes) != etag(BASE)


@pytest.mark.parametrize(
    ("fmt", "compression", "level"),
    [("tar", "store", 1), ("zip", "auto", 1), ("zip", "store", 9)],
)
def test_etag_changes_when_an_option_changes(fmt: str, compression: str, level: int) -> None:
    other = etag(BASE, fmt, compression, level)
    assert other is not None  # still sized: only .jpg and tiny files
    assert other != etag(BASE)


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param([dataclasses.replace(n, ino=n.ino + 1000) for n in BASE], id="inode"),
        pytest.param([dataclasses.replace(n, dev=7) for n in BASE], id="device"),
        pytest.param([dataclasses.replace(n, ctime_ns=1) for n in BASE], id="ctime"),
        pytest.param(list(reversed(BASE)), id="walk-order"),
        pytest.param([*BASE, BASE[1]], id="walked-twice"),
    ],
)
def test_etag_is_unchanged_by_what_does_not_shape_the_bytes(nodes: list[Node]) -> None:
    assert etag(nodes) == etag(BASE)


def test_etag_is_unchanged_by_the_download_name() -> None:
    selection = make_selection([()])
    options = Options("zip", "store", 1)
    assert build(selection, BASE, options, "a.zip").etag == \
        build(selection, BASE, options, "b.zip").etag


def test_etag_differs_between_selections_with_the_same_files() -> None:
    # "d" as a folder entry named "d" versus its file named "b.jpg" alone.
    whole = plan_of(["d"], [BASE[2], BASE[3]], "tar")
    one = plan_of(["d/b.jpg"], [BASE[3]], "tar")
    assert whole.etag != one.etag


ZIP_SIZE_NODES = [
    ("a.txt", "file", 0), ("a.txt", "file", 5), ("caf\u00e9/\u00fcber \U0001f600.txt", "file", 7),
    ("d", "dir", 0), ("\u65e5\u672c", "dir", 0), ("x" * 300, "file", 1),
    ("big", "file", zip.ZIP64_LIMIT - 1), ("big", "file", zip.ZIP64_LIMIT),
    ("big", "file", zip.ZIP64_LIMIT + 1), ("big", "file", 1 << 40),
    ("big", "file", zip.ZIP64_LIMIT - 28), ("big", "file", zip.ZIP64_LIMIT - 29),
]
ZIP_OFFSETS = [0, 1, zip.ZIP64_LIMIT - 1, zip.ZIP64_LIMIT, 1 << 36]


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "aes"])
@pytest.mark.parametrize(("name", "kind", "size"), ZIP_SIZE_NODES)
def test_zip_header_sizes_are_the_rendered_lengths(name: str, kind: str, size: int,
                                                   sealed: bool) -> None:
    node = Node(path=(name,), kind=kind, size=size, mtime_ns=1_700_000_000 * 10**9, mode=0o644,
                dev=1, ino=2, ctime_ns=0)
    entry = Entry(name, node, sealed=sealed and kind == "file")
    assert zip.local_header_size(entry) == len(zip.local_header(entry, 0x12345678))
    for offset in ZIP_OFFSETS:
        record = zip.info(entry, 0xFFFFFFFF, offset=offset).central_record()
        assert zip.central_record_size(entry, offset) == len(record), offset


ZIP_TIMES = [0, -5 * 10**9, 315_532_799 * 10**9, 1_700_000_000_123_456_789, 4_354_819_199 * 10**9,
             (1 << 33) * 10**9]


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "aes"])
@pytest.mark.parametrize(("name", "kind", "size"), ZIP_SIZE_NODES)
@pytest.mark.parametrize("mtime_ns", ZIP_TIMES)
def test_stored_zip_records_are_zipstream_ngs_bytes(name: str, kind: str, size: int,
                                                     mtime_ns: int, sealed: bool) -> None:
    for mode in (0o644, 0o755, 0o4777):
        node = Node(path=(name,), kind=kind, size=size, mtime_ns=mtime_ns, mode=mode, dev=1,
                    ino=2, ctime_ns=0)
        entry = Entry(name, node, sealed=sealed and kind == "file")
        crc = 0 if kind == "dir" else 0x89ABCDEF
        assert zip.stored_local_header(entry, crc) == bytes(zip.local_header(entry, crc))
        for offset in ZIP_OFFSETS:
            rendered = zip.info(entry, crc, offset=offset).central_record()
            assert zip.stored_central_record(entry, crc, offset) == bytes(rendered)
