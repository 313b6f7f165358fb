"""Every archive format, every way to ask for one, read back by the tools users have.

One real server on the sample tree serves each (format, selection) case once
to httpx and once to curl; the answers are kept for the module, so each test
below checks one behaviour of every case without asking again. httpx's bytes
go through Python's zipfile/tarfile/gzip; curl's (identical, checked) go
through unzip, 7z, bsdtar, GNU tar, gzip and zstd, and are extracted and
compared file by file with the tree.

Most tests run against each source (`served`: the tree on local disk and in an
S3 bucket); times and modes are checked against each source's own truth (an
object has no mode, and its time is when it was uploaded), and the tests that
need the tree's fixed times and modes on disk run on local disk only.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import struct
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from tests.helpers import MTIME, TIMEOUT, Server, Site, run, unzstd

LONG_DIR = "a" * 120
LONG = LONG_DIR + "/" + "b" * 120 + ".txt"
CAFE = "photos/caf\u00e9 \u00fcber.txt"


@dataclass(frozen=True)
class Fmt:
    """A way to ask for a format: ?format= value, URL extension, ?compression=."""

    id: str
    format: str
    ext: str
    compression: str | None
    kind: str  # the format as served: zip, tar, tar.gz, tar.zst, gz
    content_type: str
    sized: bool | None  # None: it depends on the files (zip auto)


FORMATS = [
    Fmt("zip-store", "zip", "zip", "store", "zip", "application/zip", True),
    Fmt("zip-auto", "zip", "zip", "auto", "zip", "application/zip", None),
    Fmt("zip-deflate", "zip", "zip", "deflate", "zip", "application/zip", False),
    Fmt("tar", "tar", "tar", None, "tar", "application/x-tar", True),
    Fmt("tar.gz", "tar.gz", "tar.gz", None, "tar.gz", "application/gzip", False),
    Fmt("tgz", "tgz", "tgz", None, "tar.gz", "application/gzip", False),
    Fmt("tar.zst", "tar.zst", "tar.zst", None, "tar.zst", "application/zstd", False),
]
GZ = Fmt("gz", "gz", "gz", None, "gz", "application/gzip", False)
EXT = {"zip": "zip", "tar": "tar", "tar.gz": "tar.gz", "tar.zst": "tar.zst", "gz": "gz"}


@dataclass(frozen=True)
class Sel:
    """A selection and how it is sent: in the URL path, ?path=, a form POST or a JSON POST."""

    id: str
    how: str  # path | query | form | json
    paths: tuple[str, ...]
    base: str  # the folder entry names are relative to
    names: tuple[str, ...]  # expected entries in archive order; folders end in "/"
    stem: str  # download name without extension
    auto_sized: bool = False  # zip auto stores every file: nothing compresses

    @property
    def files(self) -> list[str]:
        return [n for n in self.names if not n.endswith("/")]


SELECTIONS = [
    Sel("file", "path", ("docs/script.sh",), "docs", ("script.sh",), "script.sh",
        auto_sized=True),
    Sel("folder", "path", ("docs",), "",
        ("docs/", "docs/notes/", "docs/notes/empty.txt", "docs/notes/long.txt",
         "docs/readme.txt", "docs/script.sh"), "docs"),
    Sel("multi", "query", ("photos/2024", CAFE), "photos",
        ("2024/", "2024/cat.jpg", "2024/dog.png", "caf\u00e9 \u00fcber.txt"), "photos",
        auto_sized=True),
    Sel("form", "form", ("top.txt", LONG, "empty-folder"), "",
        (LONG, "empty-folder/", "top.txt"), "archive", auto_sized=True),
    Sel("json", "json", ("docs/notes", "docs/script.sh"), "docs",
        ("notes/", "notes/empty.txt", "notes/long.txt", "script.sh"), "docs"),
    Sel("root", "query", (".",), "",
        (LONG_DIR + "/", LONG, "docs/", "docs/notes/", "docs/notes/empty.txt",
         "docs/notes/long.txt", "docs/readme.txt", "docs/script.sh", "empty-folder/",
         "photos/", "photos/2024/", "photos/2024/cat.jpg", "photos/2024/dog.png",
         CAFE, "top.txt"), "archive"),
]
GZ_SELECTIONS = [
    Sel("gz-path", "path", ("docs/notes/long.txt",), "docs/notes", ("long.txt",), "long.txt"),
    Sel("gz-query", "query", ("docs/readme.txt",), "docs", ("readme.txt",), "readme.txt"),
    Sel("gz-form", "form", ("top.txt",), "", ("top.txt",), "top.txt"),
    Sel("gz-json", "json", ("photos/2024/cat.jpg",), "photos/2024", ("cat.jpg",), "cat.jpg"),
]


@dataclass(frozen=True)
class Case:
    fmt: Fmt
    sel: Sel

    @property
    def id(self) -> str:
        return f"{self.fmt.id}-{self.sel.id}"

    @property
    def filename(self) -> str:
        return f"{self.sel.stem}.{EXT[self.fmt.kind]}"

    @property
    def sized(self) -> bool:
        return self.sel.auto_sized if self.fmt.sized is None else self.fmt.sized


CASES = [Case(f, s) for f in FORMATS for s in SELECTIONS] + [Case(GZ, s) for s in GZ_SELECTIONS]


def cases(where: Callable[[Case], bool] = lambda c: True) -> list[Any]:
    return [pytest.param(c, id=c.id) for c in CASES if where(c)]


# --- fetching, once per case and client ------------------------------------------------


@dataclass
class Fetched:
    """What httpx got: the POST's answer (if any), then GET and HEAD of the archive URL."""

    url: str
    posted: httpx.Response | None
    get: httpx.Response
    head: httpx.Response


def fields(case: Case) -> dict[str, object]:
    out: dict[str, object] = {"format": case.fmt.format}
    if case.fmt.compression:
        out["compression"] = case.fmt.compression
    return out


def get_url(base: str, case: Case) -> str:
    """Given a GET-style case, return its URL."""
    sel = case.sel
    extra = "&".join(f"{k}={quote(str(v))}" for k, v in fields(case).items())
    if sel.how == "path":
        compression = f"?compression={case.fmt.compression}" if case.fmt.compression else ""
        return f"{base}/archive/{quote(sel.paths[0])}.{case.fmt.ext}{compression}"
    paths = "&".join("path=" + quote(p, safe="") for p in sel.paths)
    return f"{base}/archive?{paths}&{extra}"


class Fetcher:
    """Downloads each case once per client, keeping the answers for every test."""

    def __init__(self, server: Server, folder: Path) -> None:
        self.server, self.folder = server, folder
        self.http = httpx.Client(base_url=server.url, timeout=TIMEOUT)
        self._httpx: dict[str, Fetched] = {}
        self._curl: dict[str, Path] = {}

    def close(self) -> None:
        self.http.close()

    def httpx(self, case: Case) -> Fetched:
        if case.id not in self._httpx:
            self._httpx[case.id] = self._fetch(case)
        return self._httpx[case.id]

    def _fetch(self, case: Case) -> Fetched:
        sel, posted = case.sel, None
        if sel.how == "form":
            posted = self.http.post("/archive", data={"path": list(sel.paths), **fields(case)})
        elif sel.how == "json":
            posted = self.http.post("/archive", json={"paths": list(sel.paths), **fields(case)})
        if posted is not None:
            assert posted.status_code == 303, posted.text
            url = self.server.url + posted.headers["location"]
        else:
            url = get_url(self.server.url, case)
        # HEAD first: a GET of a deflated ZIP keeps its entries' lengths, so the next
        # answers for the same files are sized (see test_sized_deflate.py).
        head = self.http.head(url)
        return Fetched(url, posted, self.http.get(url), head)

    def curl(self, case: Case) -> Path:
        if case.id not in self._curl:
            out = self.folder / f"{case.id}.curl.{case.fmt.ext}"
            run("curl", "-sS", "--fail", "-o", str(out), *curl_args(self.server.url, case))
            self._curl[case.id] = out
        return self._curl[case.id]

    def extracted(self, case: Case) -> Path:
        dest = self.folder / f"{case.id}.out"
        if not dest.exists():
            dest.mkdir()
            extract(case, self.curl(case), dest)
        return dest


def curl_args(base: str, case: Case) -> list[str]:
    sel = case.sel
    if sel.how == "form":
        data = [a for p in sel.paths for a in ("--data-urlencode", f"path={p}")]
        data += [a for k, v in fields(case).items() for a in ("--data-urlencode", f"{k}={v}")]
        return ["-L", *data, base + "/archive"]  # -L follows the 303 with a GET
    if sel.how == "json":
        body = json.dumps({"paths": list(sel.paths), **fields(case)})
        return ["-L", "-H", "Content-Type: application/json", "--data-binary", body,
                base + "/archive"]
    return [get_url(base, case)]


@pytest.fixture(scope="module")
def fetchers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Fetcher]]:
    """One Fetcher per server (by URL), so a server's answers are fetched once in the module."""
    made: dict[str, Fetcher] = {}
    yield made
    for f in made.values():
        f.close()


def fetcher_of(site: Site, fetchers: dict[str, Fetcher],
               tmp_path_factory: pytest.TempPathFactory) -> Fetcher:
    if site.url not in fetchers:
        fetchers[site.url] = Fetcher(site.server, tmp_path_factory.mktemp("downloads"))
    return fetchers[site.url]


@pytest.fixture(scope="module")
def fetcher(served: Site, fetchers: dict[str, Fetcher],
            tmp_path_factory: pytest.TempPathFactory) -> Fetcher:
    """The answers of the server on each source."""
    return fetcher_of(served, fetchers, tmp_path_factory)


@pytest.fixture(scope="module")
def local_fetcher(sample: Site, fetchers: dict[str, Fetcher],
                  tmp_path_factory: pytest.TempPathFactory) -> Fetcher:
    """The answers of the server on the local sample tree (the same Fetcher as `fetcher`'s local one)."""
    return fetcher_of(sample, fetchers, tmp_path_factory)


def disk(root: Path, case: Case, name: str) -> Path:
    return root / case.sel.base / name.rstrip("/")


# --- reading archives back in Python ------------------------------------------------------


@dataclass
class Member:
    """An archive entry as Python's readers see it."""

    name: str  # folders end in "/"
    data: bytes | None
    mode: int | None
    mtime: int | None
    extra: dict[str, object] = field(default_factory=dict)


def read_zip(body: bytes) -> list[Member]:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.testzip() is None
        out = []
        for info in zf.infolist():
            data = None if info.is_dir() else zf.read(info)
            out.append(Member(info.filename, data, info.external_attr >> 16 & 0o7777,
                              ut_mtime(info.extra), {"flags": info.flag_bits,
                                                     "utf8": bool(info.flag_bits & 0x800)}))
        return out


def ut_mtime(extra: bytes) -> int | None:
    """Given a ZIP extra field, return the mtime of its 0x5455 (extended timestamp) block."""
    while len(extra) >= 4:
        tag, size = struct.unpack("<HH", extra[:4])
        if tag == 0x5455 and size >= 5 and extra[4] & 1:
            return int(struct.unpack("<I", extra[5:9])[0])
        extra = extra[4 + size:]
    return None


def read_tar(raw: bytes) -> list[Member]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m) if m.isfile() else None
            data = f.read() if f is not None else None
            name = m.name + "/" if m.isdir() else m.name
            out.append(Member(name, data, m.mode, int(m.mtime),
                              {"pax": dict(m.pax_headers), "type": m.type}))
    return out


def read_gz(body: bytes, name: str) -> list[Member]:
    flags, stamp = body[3], struct.unpack("<I", body[4:8])[0]
    fname = body[10:body.index(b"\0", 10)].decode("latin-1") if flags & 0x08 else None
    return [Member(name, gzip.decompress(body), None, stamp, {"fname": fname})]


def members(case: Case, body: bytes) -> list[Member]:
    kind = case.fmt.kind
    if kind == "zip":
        return read_zip(body)
    if kind == "gz":
        return read_gz(body, case.sel.names[0])
    raw = {"tar": lambda b: b, "tar.gz": gzip.decompress, "tar.zst": unzstd}[kind](body)
    return read_tar(raw)


# --- headers --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases())
def test_archive_answers_200(fetcher: Fetcher, case: Case) -> None:
    assert fetcher.httpx(case).get.status_code == 200


@pytest.mark.parametrize("case", cases(lambda c: c.sel.how in ("form", "json")))
def test_post_answers_303_to_a_get_url(fetcher: Fetcher, case: Case) -> None:
    posted = fetcher.httpx(case).posted
    assert posted is not None
    assert posted.status_code == 303
    assert posted.headers["location"].startswith("/archive?s=")
    assert posted.content == b""


@pytest.mark.parametrize("case", cases())
def test_content_type_per_format(fetcher: Fetcher, case: Case) -> None:
    assert fetcher.httpx(case).get.headers["content-type"] == case.fmt.content_type


@pytest.mark.parametrize("case", cases())
def test_content_disposition_names_the_download(fetcher: Fetcher, case: Case) -> None:
    value = fetcher.httpx(case).get.headers["content-disposition"]
    m = re.fullmatch(r'attachment; filename="([^"]+)"; filename\*=UTF-8\'\'(\S+)', value)
    assert m, value
    assert m[1] == case.filename  # every expected name is plain ASCII
    assert unquote(m[2]) == case.filename


@pytest.mark.parametrize("case", cases())
def test_no_proxy_buffering_and_never_content_encoding(fetcher: Fetcher, case: Case) -> None:
    headers = fetcher.httpx(case).get.headers
    assert headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in headers


@pytest.mark.parametrize("case", cases(lambda c: c.sized))
def test_sized_archive_has_content_length_of_its_body(fetcher: Fetcher, case: Case) -> None:
    r = fetcher.httpx(case).get
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["accept-ranges"] == "bytes"
    assert re.fullmatch(r'"[^"]+"', r.headers["etag"])  # strong


@pytest.mark.parametrize("case", cases(lambda c: not c.sized))
def test_streamed_archive_is_chunked_without_length(fetcher: Fetcher, case: Case) -> None:
    r = fetcher.httpx(case).get
    if case.fmt.kind == "zip" and "content-length" in r.headers:
        # Its files came in an earlier case's ZIP, which kept their deflated lengths.
        assert int(r.headers["content-length"]) == len(r.content) and r.headers["etag"].startswith('"')
        return
    assert "content-length" not in r.headers
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.headers.get("accept-ranges", "none") == "none"


@pytest.mark.parametrize("case", cases())
def test_head_has_the_headers_of_get_and_no_body(fetcher: Fetcher, case: Case) -> None:
    got = fetcher.httpx(case)
    skip = {"date", "transfer-encoding"}  # HEAD has no body to frame
    assert got.head.status_code == 200
    assert got.head.content == b""
    assert {k: v for k, v in got.head.headers.items() if k not in skip} == \
        {k: v for k, v in got.get.headers.items() if k not in skip}


# --- bytes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases())
def test_curl_gets_the_same_bytes_as_httpx(fetcher: Fetcher, case: Case) -> None:
    assert fetcher.curl(case).read_bytes() == fetcher.httpx(case).get.content


@pytest.mark.parametrize("case", cases())
def test_python_reader_lists_the_entries_in_order(fetcher: Fetcher, case: Case) -> None:
    got = members(case, fetcher.httpx(case).get.content)
    assert [m.name for m in got] == list(case.sel.names)


@pytest.mark.parametrize("case", cases())
def test_python_reader_gets_every_file_byte_for_byte(fetcher: Fetcher, served: Site,
                                                     case: Case) -> None:
    got = {m.name: m.data for m in members(case, fetcher.httpx(case).get.content)}
    for name in case.sel.names:
        expected = None if name.endswith("/") else disk(served.root, case, name).read_bytes()
        assert got[name] == expected, name


def full_name(case: Case, name: str) -> str:
    return "/".join(p for p in (case.sel.base, name.rstrip("/")) if p)


@pytest.mark.parametrize("case", cases(lambda c: c.fmt.kind != "gz"))
def test_python_reader_sees_the_sources_modes(fetcher: Fetcher, served: Site, case: Case) -> None:
    for m in members(case, fetcher.httpx(case).get.content):
        assert m.mode == served.truth.modes[full_name(case, m.name)], m.name


@pytest.mark.parametrize("case", cases())
def test_python_reader_sees_the_sources_mtimes(fetcher: Fetcher, served: Site, case: Case) -> None:
    for m in members(case, fetcher.httpx(case).get.content):
        assert m.mtime == served.truth.mtimes[full_name(case, m.name)], m.name


@pytest.mark.parametrize("case", cases(lambda c: c.fmt.kind == "zip"))
def test_zip_dos_time_is_the_mtime(local_fetcher: Fetcher, case: Case) -> None:
    with zipfile.ZipFile(io.BytesIO(local_fetcher.httpx(case).get.content)) as zf:
        times = {info.date_time for info in zf.infolist()}
    assert times == {time.gmtime(MTIME)[:6]}


def has(*names: str) -> Callable[[Case], bool]:
    return lambda c: any(n in c.sel.names or n.split("/", 1)[-1] in c.sel.names for n in names)


@pytest.mark.parametrize("case", cases(lambda c: c.fmt.kind == "zip" and has(CAFE)(c)))
def test_zip_flags_non_ascii_names_as_utf8(fetcher: Fetcher, case: Case) -> None:
    body = fetcher.httpx(case).get.content
    cafe = [m for m in read_zip(body) if m.name.endswith("caf\u00e9 \u00fcber.txt")]
    assert len(cafe) == 1
    assert cafe[0].extra["utf8"]
    assert "caf\u00e9 \u00fcber.txt".encode() in body  # raw UTF-8 in the headers


@pytest.mark.parametrize("case", cases(lambda c: c.fmt.kind.startswith("tar")
                                       and has(CAFE, LONG)(c)))
def test_tar_writes_long_and_non_ascii_names_in_pax_headers(fetcher: Fetcher,
                                                            case: Case) -> None:
    got = members(case, fetcher.httpx(case).get.content)
    special = [m for m in got if not m.name.isascii() or len(m.name.encode()) > 100]
    assert special
    for m in special:
        assert m.extra["pax"].get("path", "").rstrip("/") == m.name.rstrip("/")


@pytest.mark.parametrize("case", cases(lambda c: c.fmt.kind == "gz"))
def test_gz_header_names_the_file(fetcher: Fetcher, case: Case) -> None:
    (member,) = members(case, fetcher.httpx(case).get.content)
    assert member.extra["fname"] == case.sel.names[0]


@pytest.mark.parametrize("case", cases())
def test_no_entry_name_could_escape(fetcher: Fetcher, case: Case) -> None:
    for m in members(case, fetcher.httpx(case).get.content):
        name = m.name if case.fmt.kind != "gz" else str(m.extra["fname"])
        assert ".." not in name.split("/"), name
        assert not name.startswith("/"), name
        assert not re.match(r"[A-Za-z]:", name), name
        assert "\0" not in name and "\\" not in name, name


# --- command-line tools ---------------------------------------------------------------------


def listed(out: str) -> list[str]:
    return out.splitlines()


def check_unzip_t(path: Path, case: Case) -> None:
    assert "No errors detected" in run("unzip", "-t", str(path))


def check_7z_t(path: Path, case: Case) -> None:
    assert "Everything is Ok" in run("7z", "t", str(path))


def check_bsdtar_list(path: Path, case: Case) -> None:
    assert listed(run("bsdtar", "-tf", str(path))) == list(case.sel.names)


def check_gnu_tar_list(path: Path, case: Case) -> None:
    flag = {"tar": [], "tar.gz": ["-z"], "tar.zst": ["--zstd"]}[case.fmt.kind]
    assert listed(run("tar", *flag, "-tf", str(path))) == list(case.sel.names)


def check_gzip_t(path: Path, case: Case) -> None:
    run("gzip", "-t", str(path))


def check_zstd_t(path: Path, case: Case) -> None:
    run("zstd", "-q", "-t", str(path))


def check_unzip_names(path: Path, case: Case) -> None:
    assert listed(run("unzip", "-Z1", str(path))) == list(case.sel.names)


CHECKS: dict[str, list[Callable[[Path, Case], None]]] = {
    "zip": [check_unzip_t, check_unzip_names, check_7z_t, check_bsdtar_list],
    "tar": [check_gnu_tar_list, check_bsdtar_list, check_7z_t],
    "tar.gz": [check_gzip_t, check_gnu_tar_list, check_bsdtar_list],
    "tar.zst": [check_zstd_t, check_gnu_tar_list, check_bsdtar_list],
    "gz": [check_gzip_t, check_7z_t],
}


@pytest.mark.parametrize(
    ("case", "check"),
    [pytest.param(c, check, id=f"{c.id}-{check.__name__.removeprefix('check_')}")
     for c in CASES for check in CHECKS[c.fmt.kind]],
)
def test_cli_tool_accepts_the_archive(fetcher: Fetcher, case: Case,
                                      check: Callable[[Path, Case], None]) -> None:
    check(fetcher.curl(case), case)


def extract(case: Case, archive: Path, dest: Path) -> None:
    """Given a downloaded archive, extract it into dest with the usual command-line tool."""
    kind = case.fmt.kind
    if kind == "zip":
        run("unzip", "-q", str(archive), "-d", str(dest))
    elif kind == "gz":
        shutil.copyfile(archive, dest / "download.gz")
        run("gzip", "-d", "-N", "download.gz", cwd=dest)  # -N: the name and time inside
    else:
        flag = {"tar": [], "tar.gz": ["-z"], "tar.zst": ["--zstd"]}[kind]
        run("tar", *flag, "-xf", str(archive), "-C", str(dest))


@pytest.fixture
def extracted(fetcher: Fetcher, case: Case) -> Path:
    """Return the folder curl's download of this case was extracted into (once per module)."""
    return fetcher.extracted(case)


@pytest.fixture
def local_extracted(local_fetcher: Fetcher, case: Case) -> Path:
    """The same, from the server on the local sample tree."""
    return local_fetcher.extracted(case)


def tree_of(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) + ("/" if p.is_dir() else "")
            for p in folder.rglob("*")}


@pytest.mark.parametrize("case", cases())
def test_cli_extracts_exactly_the_entries(extracted: Path, case: Case) -> None:
    expected = set(case.sel.names)
    # Folders that hold a selected path are made by the tool, without an entry.
    parents = {"/".join(n.rstrip("/").split("/")[:i]) + "/"
               for n in expected for i in range(1, n.rstrip("/").count("/") + 1)}
    got = tree_of(extracted)
    assert expected <= got
    assert got - expected <= parents


@pytest.mark.parametrize("case", cases())
def test_cli_extracted_files_equal_the_tree(extracted: Path, served: Site, case: Case) -> None:
    for name in case.sel.files:
        assert (extracted / name).read_bytes() == disk(served.root, case, name).read_bytes(), name


@pytest.mark.parametrize("case", cases(lambda c: c.fmt.kind != "gz"))
def test_cli_extracted_modes_equal_the_tree(local_extracted: Path, sample: Site, case: Case) -> None:
    for name in case.sel.names:
        mode = (local_extracted / name).stat().st_mode & 0o7777
        assert mode == disk(sample.root, case, name).stat().st_mode & 0o7777, name


@pytest.mark.parametrize("case", cases())
def test_cli_extracted_mtimes_are_kept(local_extracted: Path, case: Case) -> None:
    for name in case.sel.names:
        assert (local_extracted / name).stat().st_mtime == MTIME, name


@pytest.mark.parametrize("case", cases(has("docs/script.sh")))
def test_script_stays_executable(local_extracted: Path, case: Case) -> None:
    (script,) = [n for n in case.sel.names if n.endswith("script.sh")]
    assert (local_extracted / script).stat().st_mode & 0o777 == 0o755
    others = [n for n in case.sel.files if n != script]
    assert all(not (local_extracted / n).stat().st_mode & 0o111 for n in others)


@pytest.mark.parametrize("case", cases(has("empty-folder/")))
def test_empty_folder_is_extracted(extracted: Path, case: Case) -> None:
    assert (extracted / "empty-folder").is_dir()
    assert list((extracted / "empty-folder").iterdir()) == []


@pytest.mark.parametrize("case", cases(has(CAFE, LONG)))
def test_long_and_non_ascii_names_extract_exactly(extracted: Path, case: Case) -> None:
    special = [n for n in case.sel.names if not n.isascii() or len(n.encode()) > 100]
    assert special
    for name in special:
        parent, _, base = name.rstrip("/").rpartition("/")
        assert base.encode() in os.listdir(os.fsencode(extracted / parent)), name


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["path", "query", "form", "json"])
@pytest.mark.parametrize("fmt", ["rar", "ZIPX", "tar.bz2"])
def test_unknown_format_is_400_json(fetcher: Fetcher, how: str, fmt: str) -> None:
    http = fetcher.http
    if how == "path":
        r = http.get(f"/archive/docs.{fmt}")
    elif how == "query":
        r = http.get("/archive", params={"path": "docs", "format": fmt})
    elif how == "form":
        r = http.post("/archive", data={"path": "docs", "format": fmt})
    else:
        r = http.post("/archive", json={"paths": ["docs"], "format": fmt})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("target", ["/archive/docs.gz", "/archive?path=.&format=gz",
                                    "/archive?path=top.txt&path=docs/readme.txt&format=gz"])
def test_gz_of_a_folder_or_two_files_is_400(fetcher: Fetcher, target: str) -> None:
    r = fetcher.http.get(target)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request"
