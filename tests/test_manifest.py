"""Tables for zipserve.core.manifest and core.names: every rule, hostile names, one canonical form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from zipserve.core.manifest import (
    Manifest,
    ManifestEntry,
    SourceRef,
    download_name,
    load_manifest,
    parse_manifest,
    parse_source,
    to_json,
)
from zipserve.core.missing import missing_report, report_name
from zipserve.core.names import first_conflict, parse_entry_name
from zipserve.core.selection import Options
from zipserve.errors import BadRequest, TooLarge

CAP = 100


def one(entry: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"entries": [entry], **top}


def refusal(data: object) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_manifest(data, max_entries=CAP)
    assert isinstance(caught.value, BadRequest)
    return caught.value


# ---------------------------------------------------------------- a whole manifest


def test_a_full_manifest_parses_to_plain_data() -> None:
    m = parse_manifest({
        "name": "March invoices", "format": "ZIP", "compression": "Store", "missing": "skip",
        "level": 6,
        "entries": [
            {"source": "s3://bucket/u/81/a8f3e1", "name": "Invoices/2024-03 ACME.pdf",
             "size": 48213, "crc32": "1C291CA3", "mtime": "2024-03-31T09:00:00Z"},
            {"source": "./docs//notes/./a.txt", "name": "Notes/a.txt", "mtime": 1711875600},
            {"source": "HTTPS://Files.Example:443/x/../y.bin?sig=1", "name": "y.bin"},
            {"name": "Empty folder/", "mtime": 0},
        ]}, max_entries=CAP)
    assert (m.name, m.format, m.compression, m.missing, m.level) == (
        "March invoices", "zip", "store", "skip", 6)
    s3, local, http, folder = m.entries
    assert s3 == ManifestEntry(SourceRef("s3", "s3://bucket/u/81/a8f3e1", bucket="bucket",
                                         key="u/81/a8f3e1"),
                               "Invoices/2024-03 ACME.pdf", 48213, 0x1C291CA3, 1711875600)
    assert local.source is not None and local.source.path == ("docs", "notes", "a.txt")
    assert local.source.text == "docs/notes/a.txt"
    assert http.source is not None and http.source.text == "https://files.example/y.bin?sig=1"
    assert folder == ManifestEntry(None, "Empty folder", mtime=0, is_dir=True)
    assert m.options(default_level=1) == Options("zip", "store", 6)


def test_defaults_are_zip_auto_fail_and_the_servers_level() -> None:
    m = parse_manifest(one({"source": "a.txt", "name": "a.txt"}), max_entries=CAP)
    assert (m.name, m.format, m.compression, m.missing, m.level) == (None, "zip", "auto", "fail", None)
    assert m.options(default_level=3) == Options("zip", "auto", 3)


def test_nulls_mean_absent() -> None:
    m = parse_manifest({"name": None, "format": None, "level": None, "entries": [
        {"source": "a", "name": "a", "size": None, "crc32": None, "mtime": None}]}, max_entries=CAP)
    assert m.entries[0] == ManifestEntry(parse_source("a"), "a")


def test_entries_keep_the_order_given() -> None:
    names = ["z", "a", "m/x", "b"]
    m = parse_manifest({"entries": [{"source": n, "name": n} for n in names]}, max_entries=CAP)
    assert [e.name for e in m.entries] == names


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ([], "JSON object"),
        ("entries", "JSON object"),
        ({}, "non-empty list"),
        ({"entries": []}, "non-empty list"),
        ({"entries": {"a": 1}}, "non-empty list"),
        (one({"source": "a", "name": "a"}, Entries=[]), "unknown key 'Entries'"),
        (one({"source": "a", "name": "a"}, compresion="store"), "unknown key 'compresion'"),
        (one({"source": "a", "name": "a"}, format="rar"), "unknown format"),
        (one({"source": "a", "name": "a"}, format=7), "must be a string"),
        (one({"source": "a", "name": "a"}, compression="lzma"), "compression"),
        (one({"source": "a", "name": "a"}, missing="ignore"), "missing"),
        (one({"source": "a", "name": "a"}, level=0), "level"),
        (one({"source": "a", "name": "a"}, level=10), "level"),
        (one({"source": "a", "name": "a"}, level="5"), "level"),
        (one({"source": "a", "name": "a"}, level=True), "level"),
        (one({"source": "a", "name": "a"}, name=["x"]), "must be a string"),
        (one({"source": "a", "name": "a"}, name="a\nb"), "control character"),
        (one({"source": "a", "name": "a"}, name="\ud800"), "UTF-8"),
        (one({"source": "a", "name": "a"}, name="x" * 256), "longer than 255"),
        ({"format": "gz", "entries": [{"source": "a", "name": "a"}, {"source": "b", "name": "b"}]},
         "gz holds exactly one file"),
        (one({"name": "d/"}, format="gz"), "gz holds exactly one file"),
    ],
)
def test_malformed_manifests_are_refused(data: object, why: str) -> None:
    assert why in refusal(data).message


def test_gz_of_exactly_one_file_is_fine() -> None:
    m = parse_manifest(one({"source": "a.csv", "name": "report.csv"}, format="gz"), max_entries=CAP)
    assert m.format == "gz" and download_name(m) == "report.csv.gz"


def test_more_entries_than_the_cap_is_too_large_before_any_is_read() -> None:
    data = {"entries": [{"source": "a", "name": "a"}] * 3 + [None]}
    with pytest.raises(TooLarge):
        parse_manifest(data, max_entries=3)


# ---------------------------------------------------------------- entry names

HOSTILE_NAMES = [
    ("", "empty"),
    ("../etc/passwd", "'..'"),
    ("a/../../b", "'..'"),
    ("..", "'..'"),
    ("a/..", "'..'"),
    ("./a", "'.'"),
    ("a/./b", "'.'"),
    (".", "'.'"),
    ("a//b", "empty component"),
    ("//a", "relative"),
    ("a//", "empty component"),
    ("/", "relative"),
    ("/etc/passwd", "relative"),
    ("C:/Windows/x", "drive letter"),
    ("c:x", "drive letter"),
    ("a\\b", "backslash"),
    ("..\\..\\x", "backslash"),
    ("a\x00.txt", "NUL"),
    ("a\nb", "U+000A"),
    ("a\rb", "U+000D"),
    ("a\tb", "U+0009"),
    ("a\x1b[31mred", "U+001B"),
    ("a\x7f", "U+007F"),
    ("a\x85b", "U+0085"),
    ("invoice\u202efdp.exe", "U+202E"),
    ("a\u2066b", "U+2066"),
    ("a\u2028b", "U+2028"),
    ("\ud800.txt", "UTF-8"),
    ("a/\udcff", "UTF-8"),
    ("x" * 256, "longer than 255"),
    ("d/" + "\u00e9" * 128, "longer than 255"),  # 256 bytes in UTF-8
    ("/".join(["d" * 200] * 21), "longer than 4096"),
]


@pytest.mark.parametrize(("name", "why"), HOSTILE_NAMES)
def test_hostile_entry_names_are_refused_naming_the_entry(name: str, why: str) -> None:
    data = {"entries": [{"source": "ok", "name": "ok"}, {"source": "a.txt", "name": name}]}
    exc = refusal(data)
    assert why in exc.message
    assert exc.message.startswith("entries[1]: ")
    assert exc.path is not None and exc.path.startswith("entries[1]: ")
    assert exc.path.isprintable() and exc.path.isascii() and len(exc.path) <= 220


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("a.txt", ("a.txt", False)),
        ("Invoices/2024-03 ACME.pdf", ("Invoices/2024-03 ACME.pdf", False)),
        ("a/b/", ("a/b", True)),
        ("...", ("...", False)),
        ("a..b/..c", ("a..b/..c", False)),
        (".hidden", (".hidden", False)),
        ("ab:c", ("ab:c", False)),
        ("caf\u00e9/\u65e5\u672c.txt", ("caf\u00e9/\u65e5\u672c.txt", False)),
        ("\u05e9\u05dc\u05d5\u05dd.txt", ("\u05e9\u05dc\u05d5\u05dd.txt", False)),  # RTL text is fine
        ("x" * 255, ("x" * 255, False)),
        (" lead and trail ", (" lead and trail ", False)),
    ],
)
def test_ordinary_entry_names_are_kept(name: str, parsed: tuple[str, bool]) -> None:
    assert parse_entry_name(name) == parsed


def test_the_longest_names_allowed_are_kept() -> None:
    name = "/".join(["d" * 255] * 16)  # 4095 bytes
    assert parse_entry_name(name) == (name, False)


@pytest.mark.parametrize(
    ("names", "clash"),
    [
        (["a/b", "a/b"], "entries[1]: name has the same name as entries[0]"),
        (["a/b", "a/b/"], "entries[1]: name has the same name as entries[0]"),
        (["d/", "d/"], "entries[1]: name has the same name as entries[0]"),
        (["d/", "d"], "entries[1]: name has the same name as entries[0]"),
        (["caf\u00e9", "cafe\u0301"], "entries[1]: name has the same name as entries[0]"),
        (["x", "a", "a/b"], "entries[2]: name is inside entries[1], which is a file"),
        (["a/b/c", "a/b"], "entries[0]: name is inside entries[1], which is a file"),
        (["a/b/c/", "a"], "entries[0]: name is inside entries[1], which is a file"),
    ],
)
def test_names_that_extract_to_one_place_are_refused(names: list[str], clash: str) -> None:
    data = {"entries": [{"name": n} if n.endswith("/") else {"source": "s", "name": n}
                        for n in names]}
    assert refusal(data).message == clash


@pytest.mark.parametrize(
    "names",
    [["a", "A"], ["d/", "d/x", "d/y/"], ["d/x", "d/"], ["a/b", "a/c"], ["ab", "a/b"]],
)
def test_names_that_differ_are_fine(names: list[str]) -> None:
    entries = [(n.rstrip("/"), n.endswith("/")) for n in names]
    assert first_conflict(entries) is None


# ---------------------------------------------------------------- entries and sources


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("a.txt", "must be an object"),
        (None, "must be an object"),
        ({"source": "a"}, 'needs "name"'),
        ({"source": "a", "name": 5}, 'needs "name"'),
        ({"name": "a"}, 'needs "source"'),
        ({"source": "a", "name": "a", "Size": 1}, "unknown key 'Size'"),
        ({"source": "a", "name": "a", "path": "a"}, "unknown key 'path'"),
        ({"source": "a", "name": "d/"}, "takes no \"source\""),
        ({"name": "d/", "size": 0}, "takes no \"size\""),
        ({"name": "d/", "crc32": "00000000"}, "takes no \"crc32\""),
        ({"source": 5, "name": "a"}, "must be a string"),
        ({"source": "", "name": "a"}, "served folder itself"),
        ({"source": ".", "name": "a"}, "served folder itself"),
        ({"source": "/", "name": "a"}, "served folder itself"),
        ({"source": "../etc/passwd", "name": "a"}, "'..'"),
        ({"source": "docs/../../x", "name": "a"}, "'..'"),
        ({"source": "/etc/passwd", "name": "a"}, "relative"),
        ({"source": "C:/x", "name": "a"}, "relative"),  # a drive letter: read as a scheme
        ({"source": "a\\b", "name": "a"}, "relative"),
        ({"source": "a\x00b", "name": "a"}, "NUL"),
        ({"source": "\udcff", "name": "a"}, "UTF-8"),
        ({"source": "file:///etc/passwd", "name": "a"}, "scheme 'file'"),
        ({"source": "ftp://host/x", "name": "a"}, "scheme 'ftp'"),
        ({"source": "gs://bucket/x", "name": "a"}, "scheme 'gs'"),
        ({"source": "javascript:alert(1)", "name": "a"}, "scheme 'javascript'"),
        ({"source": "notes:2024.txt", "name": "a"}, "scheme 'notes'"),
        ({"source": "s3:/bucket/key", "name": "a"}, "s3://bucket/key"),
        ({"source": "s3://bucket", "name": "a"}, "needs a key"),
        ({"source": "s3://bucket/", "name": "a"}, "needs a key"),
        ({"source": "s3://b/key", "name": "a"}, "bucket name"),
        ({"source": "s3://bu/cket/key/../x", "name": "a"}, "bucket name"),
        ({"source": "s3://bucket/a/../b", "name": "a"}, "'..'"),
        ({"source": "s3://bucket/./b", "name": "a"}, "'.'"),
        ({"source": "s3://bucket/a\nb", "name": "a"}, "control character"),
        ({"source": "s3://bucket/" + "k" * 1025, "name": "a"}, "longer than 1024"),
        ({"source": "http://allowed.example@evil/", "name": "a"}, "user information"),
        ({"source": "http://2130706433/", "name": "a"}, "dotted quad"),
        ({"source": "https://a.example/x#y", "name": "a"}, "fragment"),
        ({"source": "https:a.example/x", "name": "a"}, "not an absolute"),
        ({"source": "a", "name": "a", "size": -1}, '"size"'),
        ({"source": "a", "name": "a", "size": 1.0}, '"size"'),
        ({"source": "a", "name": "a", "size": "1"}, '"size"'),
        ({"source": "a", "name": "a", "size": True}, '"size"'),
        ({"source": "a", "name": "a", "size": 1 << 63}, '"size"'),
        ({"source": "a", "name": "a", "crc32": "1c291ca"}, '"crc32"'),
        ({"source": "a", "name": "a", "crc32": "1c291ca3f"}, '"crc32"'),
        ({"source": "a", "name": "a", "crc32": "0x1c291c"}, '"crc32"'),
        ({"source": "a", "name": "a", "crc32": "zz291ca3"}, '"crc32"'),
        ({"source": "a", "name": "a", "crc32": 473504931}, '"crc32"'),
        ({"source": "a", "name": "a", "mtime": "yesterday"}, '"mtime"'),
        ({"source": "a", "name": "a", "mtime": "2024-03-31T09:00:00"}, "needs an offset"),
        ({"source": "a", "name": "a", "mtime": "2024-03-31"}, "needs an offset"),
        ({"source": "a", "name": "a", "mtime": 1.5}, '"mtime"'),
        ({"source": "a", "name": "a", "mtime": False}, '"mtime"'),
        ({"source": "a", "name": "a", "mtime": -1}, "between 1970 and 9999"),
        ({"source": "a", "name": "a", "mtime": "1969-12-31T23:59:59Z"}, "between 1970 and 9999"),
        ({"source": "a", "name": "a", "mtime": 253402300800}, "between 1970 and 9999"),
        ({"source": "a", "name": "a", "mtime": "x" * 65}, '"mtime"'),
    ],
)
def test_malformed_entries_are_refused_naming_the_entry(entry: object, why: str) -> None:
    exc = refusal({"entries": [entry]})
    assert why in exc.message
    assert exc.message.startswith("entries[0]: ")
    assert exc.path is not None and exc.path.startswith("entries[0]: ")


@pytest.mark.parametrize(
    ("source", "kind", "text"),
    [
        ("a.txt", "local", "a.txt"),
        ("./docs//a.txt", "local", "docs/a.txt"),
        ("docs/", "local", "docs"),
        ("./notes:2024.txt", "local", "./notes:2024.txt"),
        ("./C:x", "local", "./C:x"),
        ("s3://my-bucket/u/81/a8f3e1", "s3", "s3://my-bucket/u/81/a8f3e1"),
        ("s3://my.bucket/key with space%20", "s3", "s3://my.bucket/key with space%20"),
        ("S3://bucket/k", "s3", "s3://bucket/k"),
        ("http://a.example/x", "http", "http://a.example/x"),
        ("HTTP://A.example:80/./x", "http", "http://a.example/x"),
        ("https://a.example:8443/x?X-Amz-Signature=ab%2f", "http",
         "https://a.example:8443/x?X-Amz-Signature=ab%2F"),
        ("http://127.0.0.1:8080/x", "http", "http://127.0.0.1:8080/x"),
    ],
)
def test_sources_have_one_spelling(source: str, kind: str, text: str) -> None:
    ref = parse_source(source)
    assert (ref.kind, ref.text) == (kind, text)
    assert parse_source(ref.text) == ref


@pytest.mark.parametrize(
    ("mtime", "seconds"),
    [
        (0, 0),
        (1711875600, 1711875600),
        ("2024-03-31T09:00:00Z", 1711875600),
        ("2024-03-31T11:00:00+02:00", 1711875600),
        ("2024-03-31T09:00:00.999Z", 1711875600),
        ("20240331T090000Z", 1711875600),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_mtime_is_posix_seconds_or_iso_8601(mtime: object, seconds: int) -> None:
    m = parse_manifest(one({"source": "a", "name": "a", "mtime": mtime}), max_entries=CAP)
    assert m.entries[0].mtime == seconds


# ---------------------------------------------------------------- canonical form and strict JSON


SAMPLE = {
    "name": "caf\u00e9 invoices", "format": "tgz", "missing": "SKIP", "level": 9,
    "entries": [
        {"source": "./a//b.txt", "name": "A/b.txt", "crc32": "ABCDEF01", "size": 0,
         "mtime": "2024-03-31T11:00:00+02:00"},
        {"source": "https://X.example:443/a/./b?q=%7e", "name": "\u65e5\u672c.bin"},
        {"source": "./k:v", "name": "k"},
        {"name": "empty/"},
    ],
}


def test_to_json_parses_back_to_the_same_manifest() -> None:
    m = parse_manifest(SAMPLE, max_entries=CAP)
    canonical = to_json(m)
    assert parse_manifest(canonical, max_entries=CAP) == m
    assert to_json(parse_manifest(canonical, max_entries=CAP)) == canonical
    assert canonical["format"] == "tar.gz" and canonical["missing"] == "skip"
    assert canonical["entries"][0] == {"source": "a/b.txt", "name": "A/b.txt", "crc32": "abcdef01",
                                       "size": 0, "mtime": 1711875600}
    assert canonical["entries"][1]["source"] == "https://x.example/a/b?q=~"
    assert canonical["entries"][3] == {"name": "empty/"}


def test_load_manifest_reads_json_text() -> None:
    m = load_manifest(json.dumps(SAMPLE).encode(), max_entries=CAP)
    assert m == parse_manifest(SAMPLE, max_entries=CAP)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff{}", "not valid JSON"),
        (b'{"entries": [], "entries": [{"source": "a", "name": "a"}]}', "key 'entries' twice"),
        (b'{"entries": [{"source": "a", "name": "a", "name": "../x"}]}', "key 'name' twice"),
        (b'{"entries": [{"source": "a", "name": "a", "size": NaN}]}', "NaN"),
        (b'{"entries": [{"source": "a", "name": "a", "mtime": Infinity}]}', "Infinity"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"entries": [{"source": "a", "name": "a", "size": 1' + b"0" * 5000 + b"}]}",
         "not valid JSON"),
    ],
)
def test_load_manifest_refuses_what_json_loads_would_bend(raw: bytes, why: str) -> None:
    with pytest.raises(BadRequest) as caught:
        load_manifest(raw, max_entries=CAP)
    assert why in caught.value.message


# ---------------------------------------------------------------- download name and the report


@pytest.mark.parametrize(
    ("top", "entries", "expected"),
    [
        ({"name": "March invoices"}, ["a", "b"], "March invoices.zip"),
        ({"name": "March.ZIP"}, ["a", "b"], "March.zip"),
        ({"name": "a/b\\c"}, ["a", "b"], "a_b_c.zip"),
        ({"name": "  "}, ["a", "b"], "archive.zip"),
        ({}, ["docs/report.pdf"], "report.pdf.zip"),
        ({}, ["a", "b"], "archive.zip"),
        ({}, ["d/"], "archive.zip"),
        ({"format": "tar.zst"}, ["a", "b"], "archive.tar.zst"),
    ],
)
def test_download_name(top: dict[str, Any], entries: list[str], expected: str) -> None:
    data = {**top, "entries": [{"name": n} if n.endswith("/") else {"source": "s", "name": n}
                               for n in entries]}
    assert download_name(parse_manifest(data, max_entries=CAP)) == expected


@pytest.mark.parametrize(
    ("names", "report"),
    [
        (["a"], "MISSING.txt"),
        (["MISSING.txt"], "MISSING-2.txt"),
        (["MISSING.txt/x", "MISSING-2.txt"], "MISSING-3.txt"),
        (["d/MISSING.txt"], "MISSING.txt"),
        (["missing.txt"], "MISSING.txt"),
    ],
)
def test_the_report_never_replaces_an_entry(names: list[str], report: str) -> None:
    m = parse_manifest({"entries": [{"source": "s", "name": n} for n in names]}, max_entries=CAP)
    assert report_name(m) == report


def test_the_missing_report_names_each_skipped_entry_and_why() -> None:
    m = parse_manifest({"missing": "skip", "entries": [
        {"source": "s3://bucket/u/1", "name": "Invoices/caf\u00e9.pdf"},
        {"source": "https://a.example/x?X-Amz-Signature=secret", "name": "x.bin"},
    ]}, max_entries=CAP)
    text = missing_report([(m.entries[0], "not found"), (m.entries[1], "HTTP 403\nforged")])
    assert text.decode("utf-8").splitlines() == [
        "2 entries were left out of this archive (missing=skip):",
        "",
        "Invoices/caf\u00e9.pdf\ts3://bucket/u/1\tnot found",
        "x.bin\thttps://a.example/x\tHTTP 403\\nforged",
    ]
    assert b"secret" not in text


def test_manifests_are_frozen_and_hashable() -> None:
    m = parse_manifest(SAMPLE, max_entries=CAP)
    assert isinstance(m, Manifest) and hash(m) == hash(parse_manifest(SAMPLE, max_entries=CAP))


@pytest.mark.parametrize(("top", "why"), [
    ({"names": "dos"}, '"names" must be one of'),
    ({"checksums": "md5"}, '"checksums" must be one of'),
    ({"format": "gz", "checksums": "sha256"}, "not served for gz"),
    ({"format": "tar", "password": "p"}, "zip only"),
    ({"encryption": "aes256"}, "come together"),
    ({"encryption": "none", "password": "p"}, "come together"),
    ({"password": ""}, "non-empty string"),
    ({"password": 5}, "non-empty string"),
])
def test_archive_options_that_cannot_work_are_refused(top: dict[str, Any], why: str) -> None:
    with pytest.raises(BadRequest, match=why):
        parse_manifest(one({"source": "a", "name": "a"}, **top), max_entries=CAP)


def test_archive_options_reach_the_options_and_round_trip() -> None:
    m = parse_manifest(one({"source": "a", "name": "a"}, names="windows", checksums="sha256",
                           password="pw"), max_entries=CAP)
    o = m.options(6)
    assert (o.names, o.checksums, o.encryption, o.level) == ("windows", "sha256", "aes256", 6)
    assert parse_manifest(to_json(m), max_entries=CAP) == m
    assert parse_manifest(to_json(m), max_entries=CAP).password == "pw"
