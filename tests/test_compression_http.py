"""Compressed archives over the real server: every level and format read back, bytes reproducible.

A tree of awkward sizes for the 256 KiB deflate block (0, 1, block - 1, block,
block + 1 bytes), a text file of many blocks, random data under names that do
and do not say "compressed", is served by two servers: one with two
compression workers, one with a single worker and `--level 9` as its default.
Each (format, level) archive is downloaded once per server (twice from the
first, for determinism), kept on disk, and read back by Python's readers and by
unzip, 7z, gzip, tar and zstd.  The last tests stream 512 MiB and 2 GiB of
input through the compressors and compare the server's peak RSS.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard
from click.testing import CliRunner

from tests.helpers import (
    MTIME,
    TIMEOUT,
    Serve,
    Server,
    peak_rss_mib,
    run_bytes,
    stop_server,
)
from zipserve.cli import main
from zipserve.encode.compress import DEFAULT_BLOCK

BLOCK = DEFAULT_BLOCK
MIB = 1 << 20
LEVELS = range(1, 10)
TOP = "t"  # the folder every archive is made of; entries are named t/...


def log_lines(size: int, seed: int) -> bytes:
    """Given a size and a seed, return that many bytes of varied log-like lines (deflates ~3x)."""
    rng = random.Random(seed)
    words = b"GET POST /api/items /static/app.js ok error retry cache hit miss token user".split()
    lines, total = [], 0
    while total < size:
        line = b"%d %s %s status=%d took=%dms\n" % (
            1_700_000_000 + total, rng.choice(words), rng.choice(words),
            rng.choice((200, 204, 404, 500)), rng.randint(1, 2500))
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


def random_bytes(size: int, seed: int) -> bytes:
    """Given a size and a seed, return that many reproducible random bytes."""
    return random.Random(seed).randbytes(size)


# What each file is for: sizes/ straddle the deflate block, text/big.txt spans many blocks,
# noise/ and media/ hold random bytes that auto must store (by probe, or by type for .jpg).
FILES: dict[str, bytes] = {
    "sizes/0.txt": b"",
    "sizes/1.txt": b"x",
    "sizes/block-1.txt": log_lines(BLOCK - 1, 1),
    "sizes/block.txt": log_lines(BLOCK, 2),
    "sizes/block+1.txt": log_lines(BLOCK + 1, 3),
    "text/big.txt": log_lines(3 * MIB + 12_345, 4),
    "noise/random.bin": random_bytes(2 * MIB, 5),
    "noise/random.txt": random_bytes(BLOCK + 40_000, 6),  # large: auto probes its first block
    "noise/small-random.txt": random_bytes(40_000, 7),  # small: auto probes the whole file
    "media/photo.jpg": random_bytes(200_000, 8),
}
FOLDERS = {"sizes", "text", "noise", "media"}
# compression=auto: stored by type (.jpg), by size (under 128 bytes, empty), or because the
# first block does not shrink; the rest deflated.
AUTO_DEFLATED = {"sizes/block-1.txt", "sizes/block.txt", "sizes/block+1.txt", "text/big.txt"}


def build(root: Path) -> Path:
    """Given an empty folder, write FILES under root/t with fixed mtimes; return root."""
    for rel, data in FILES.items():
        path = root / TOP / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (MTIME, MTIME))
    return root


@dataclass(frozen=True)
class Fmt:
    """An archive to ask for: its id, the URL below /archive, and how to read it back."""

    id: str
    path: str  # URL path after /archive/, level appended as ?level= / &level=
    kind: str  # zip, tar.gz, tar.zst, gz


FORMATS = [
    Fmt("zip-deflate", f"{TOP}.zip?compression=deflate", "zip"),
    Fmt("zip-auto", f"{TOP}.zip?compression=auto", "zip"),
    Fmt("tar.gz", f"{TOP}.tar.gz?", "tar.gz"),
    Fmt("tar.zst", f"{TOP}.tar.zst?", "tar.zst"),
    Fmt("gz", f"{TOP}/text/big.txt.gz?", "gz"),
]
ZIPS = [f for f in FORMATS if f.kind == "zip"]


def url(fmt: Fmt, level: int | None) -> str:
    sep = "" if fmt.path.endswith("?") else "&"
    return f"/archive/{fmt.path}" + (f"{sep}level={level}" if level is not None else "")


def level_cases(formats: list[Fmt] = FORMATS) -> list[object]:
    return [pytest.param(f, lv, id=f"{f.id}-{lv}") for f in formats for lv in LEVELS]


# --- downloads, once per (server, url, copy) -----------------------------------------------


@dataclass(frozen=True)
class Download:
    path: Path
    digest: str
    headers: httpx.Headers


class Site:
    """Two servers on the same tree; each URL is downloaded to disk once per server and copy."""

    def __init__(self, root: Path, folder: Path, servers: dict[str, Server]) -> None:
        self.root, self.folder, self.servers = root, folder, servers
        self.clients = {k: httpx.Client(base_url=s.url, timeout=TIMEOUT) for k, s in servers.items()}
        self._got: dict[tuple[str, str, int], Download] = {}

    def close(self) -> None:
        for c in self.clients.values():
            c.close()

    def get(self, path: str, server: str = "two", copy: int = 0) -> Download:
        key = (server, path, copy)
        if key not in self._got:
            self._got[key] = self._fetch(key)
        return self._got[key]

    def _fetch(self, key: tuple[str, str, int]) -> Download:
        server, path, copy = key
        out = self.folder / hashlib.sha256(repr(key).encode()).hexdigest()[:16]
        digest = hashlib.sha256()
        with self.clients[server].stream("GET", path) as r, out.open("wb") as f:
            assert r.status_code == 200, r.read().decode(errors="replace")
            for chunk in r.iter_bytes():
                digest.update(chunk)
                f.write(chunk)
        return Download(out, digest.hexdigest(), r.headers)


@pytest.fixture(scope="module")
def site(serve: Serve, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("compression")
    root = build(base / "root")
    servers = {"two": serve(root, "--compress-workers", "2"),
               "one": serve(root, "--compress-workers", "1", "--level", "9")}
    (base / "dl").mkdir()
    s = Site(root, base / "dl", servers)
    try:
        yield s
    finally:
        s.close()


# --- readers ---------------------------------------------------------------------------------


def expected(fmt: Fmt) -> dict[str, bytes]:
    """Given a format, return what its archive must hold: name -> bytes (folders end in /)."""
    if fmt.kind == "gz":
        return {"big.txt": FILES["text/big.txt"]}
    out = {f"{TOP}/{k}": v for k, v in FILES.items()}
    out.update({f"{TOP}/": b""} | {f"{TOP}/{d}/": b"" for d in FOLDERS})
    return out


def zip_contents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        return {i.filename: z.read(i) for i in z.infolist()}


def tar_contents(fileobj: Any, mode: str) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=fileobj, mode=mode) as t:
        for m in t:
            if m.isdir():
                out[m.name.rstrip("/") + "/"] = b""
            else:
                f = t.extractfile(m)
                assert f is not None
                out[m.name] = f.read()
    return out


def read_python(fmt: Fmt, path: Path) -> dict[str, bytes]:
    """Given an archive on disk, return its contents as read by Python's own readers."""
    if fmt.kind == "zip":
        return zip_contents(path)
    if fmt.kind == "gz":
        return {"big.txt": gzip.decompress(path.read_bytes())}
    with path.open("rb") as raw:
        if fmt.kind == "tar.gz":
            return tar_contents(raw, "r:gz")
        with zstandard.ZstdDecompressor().stream_reader(raw) as unz:
            return tar_contents(unz, "r|")


CHECKS: dict[str, list[Callable[[Path], object]]] = {
    "zip": [lambda p: run_bytes("unzip", "-tq", str(p)), lambda p: run_bytes("7z", "t", str(p))],
    "tar.gz": [lambda p: run_bytes("gzip", "-t", str(p))],
    "tar.zst": [lambda p: run_bytes("zstd", "-tq", str(p))],
    "gz": [lambda p: run_bytes("gzip", "-t", str(p))],
}


def unpack(fmt: Fmt, path: Path, dest: Path) -> dict[str, bytes]:
    """Given an archive, unpack it with the usual CLI tool into dest; return what came out."""
    dest.mkdir()
    if fmt.kind == "zip":
        run_bytes("unzip", "-q", str(path), "-d", str(dest))
    elif fmt.kind == "tar.gz":
        run_bytes("tar", "-xzf", str(path), "-C", str(dest))
    elif fmt.kind == "tar.zst":
        run_bytes("tar", "--zstd", "-xf", str(path), "-C", str(dest))
    else:
        (dest / "big.txt").write_bytes(run_bytes("gzip", "-dc", str(path)))
    out = {}
    for folder, _, names in os.walk(dest):
        rel = Path(folder).relative_to(dest).as_posix()
        if rel != ".":
            out[rel + "/"] = b""
        for n in names:
            out[(Path(rel) / n).as_posix() if rel != "." else n] = (Path(folder) / n).read_bytes()
    return out


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "level"), level_cases())
def test_python_reads_back_the_tree(site: Site, fmt: Fmt, level: int) -> None:
    assert read_python(fmt, site.get(url(fmt, level)).path) == expected(fmt)


@pytest.mark.parametrize(("fmt", "level"), level_cases())
def test_cli_tools_verify_the_archive(site: Site, fmt: Fmt, level: int) -> None:
    for check in CHECKS[fmt.kind]:
        check(site.get(url(fmt, level)).path)


@pytest.mark.parametrize(("fmt", "level"), level_cases())
def test_cli_tools_extract_the_tree(site: Site, fmt: Fmt, level: int, tmp_path: Path) -> None:
    assert unpack(fmt, site.get(url(fmt, level)).path, tmp_path / "x") == expected(fmt)


GZ_FILES = [k for k in FILES if k.startswith(("sizes/", "noise/"))]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("rel", GZ_FILES)
def test_gz_of_every_awkward_size_round_trips(site: Site, rel: str, level: int) -> None:
    got = site.get(f"/archive/{TOP}/{rel}.gz?level={level}").path
    run_bytes("gzip", "-t", str(got))
    assert gzip.decompress(got.read_bytes()) == FILES[rel]


# --- determinism -----------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "level"), level_cases())
def test_same_request_twice_gives_the_same_bytes(site: Site, fmt: Fmt, level: int) -> None:
    assert site.get(url(fmt, level), copy=1).digest == site.get(url(fmt, level)).digest


@pytest.mark.parametrize(("fmt", "level"), level_cases())
def test_bytes_do_not_depend_on_compress_workers(site: Site, fmt: Fmt, level: int) -> None:
    assert site.get(url(fmt, level), "one").digest == site.get(url(fmt, level), "two").digest


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.id)
def test_server_level_is_the_default_for_requests_without_one(site: Site, fmt: Fmt) -> None:
    # Server "one" runs with --level 9; "two" with the default (1).
    assert site.get(url(fmt, None), "one").digest == site.get(url(fmt, 9)).digest
    assert site.get(url(fmt, None)).digest == site.get(url(fmt, 1)).digest


def test_levels_give_different_bytes(site: Site) -> None:
    fmt = FORMATS[0]
    assert len({site.get(url(fmt, lv)).digest for lv in LEVELS}) == len(LEVELS)


# --- auto and deflate decisions --------------------------------------------------------------


def methods(path: Path) -> dict[str, int]:
    with zipfile.ZipFile(path) as z:
        return {i.filename.removeprefix(f"{TOP}/"): i.compress_type for i in z.infolist()
                if not i.is_dir()}


@pytest.mark.parametrize("level", LEVELS)
def test_auto_deflates_text_and_stores_what_does_not_compress(site: Site, level: int) -> None:
    want = {k: zipfile.ZIP_DEFLATED if k in AUTO_DEFLATED else zipfile.ZIP_STORED for k in FILES}
    assert methods(site.get(url(FORMATS[1], level)).path) == want


@pytest.mark.parametrize("level", LEVELS)
def test_deflate_deflates_every_file_with_bytes(site: Site, level: int) -> None:
    # An empty file has nothing to deflate (the plan stores it); every other file is deflated.
    want = {k: zipfile.ZIP_DEFLATED if v else zipfile.ZIP_STORED for k, v in FILES.items()}
    assert methods(site.get(url(FORMATS[0], level)).path) == want


def test_auto_zip_of_only_stored_types_has_content_length(site: Site) -> None:
    got = site.get(f"/archive/{TOP}/media.zip")
    assert got.headers["content-length"] == str(got.path.stat().st_size)
    assert got.headers["accept-ranges"] == "bytes"


def test_auto_zip_with_text_is_streamed_without_length(site: Site) -> None:
    got = site.get(url(FORMATS[1], 1))
    assert "content-length" not in got.headers
    assert got.headers["transfer-encoding"] == "chunked"


def test_deflated_zip_is_smaller_than_stored(site: Site) -> None:
    stored = site.get(f"/archive/{TOP}.zip?compression=store").path.stat().st_size
    deflated = site.get(url(FORMATS[0], 1)).path.stat().st_size
    text_bytes = sum(len(v) for k, v in FILES.items() if k in AUTO_DEFLATED)
    assert stored - deflated > text_bytes // 2


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "10", "abc", "+5", "-1", "1_0", "\u0663", "5.0", " 5"])
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.id)
def test_level_outside_1_to_9_is_400_json(site: Site, fmt: Fmt, value: str) -> None:
    sep = "" if fmt.path.endswith("?") else "&"
    r = site.clients["two"].get(f"/archive/{fmt.path}{sep}level={value}")
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/json")
    assert "level" in r.json()["error"]["message"]


@pytest.mark.parametrize("args", [["--level", "0"], ["--level", "10"], ["--level", "abc"],
                                  ["--compress-workers", "0"], ["--compress-workers", "-2"]])
def test_serve_refuses_compression_settings_outside_limits(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["serve", str(tmp_path), *args])
    assert result.exit_code == 2
    assert args[0].lstrip("-").split("-")[0] in result.output


# --- memory ----------------------------------------------------------------------------------


def sparse_tree(root: Path, count: int) -> Path:
    """Given a folder, put `count` sparse 512 MiB files and 16 MiB of random bytes in it."""
    root.mkdir()
    for i in range(count):
        with open(root / f"zeros{i}.bin", "wb") as f:
            os.truncate(f.fileno(), 512 * MIB)
    (root / "noise.bin").write_bytes(random_bytes(16 * MIB, 9))
    return root


class Reader:
    """A read() over an iterator of chunks, for zstandard's stream_reader."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def read(self, size: int = -1) -> bytes:
        return next(self.chunks, b"")


def unpacked_size(server: Server, path: str) -> int:
    """Given an archive URL, download it and return the size of what it decompresses to."""
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c, c.stream("GET", path) as r:
        assert r.status_code == 200
        unpacked = 0
        if "format=zip" in path:  # small: zeros deflate a thousandfold; testzip inflates it all
            with zipfile.ZipFile(io.BytesIO(r.read())) as z:
                assert z.testzip() is None
                return sum(i.file_size for i in z.infolist())
        if path.endswith(".zst"):
            with zstandard.ZstdDecompressor().stream_reader(Reader(r.iter_raw())) as unz:
                while piece := unz.read(4 * MIB):
                    unpacked += len(piece)
            return unpacked
        inflater = zlib.decompressobj(31)
        for chunk in r.iter_raw():
            data = chunk
            while data:  # bounded output per call: zeros inflate a thousandfold
                unpacked += len(inflater.decompress(data, 4 * MIB))
                data = inflater.unconsumed_tail
        assert inflater.eof
        return unpacked


@pytest.mark.parametrize("ext", ["tar.gz", "tar.zst", "zip&compression=deflate"])
def test_peak_rss_stays_flat_from_512_mib_to_2_gib_of_input(
        server_factory: Serve, tmp_path: Path, ext: str) -> None:
    peaks = []
    for count in (1, 4):
        root = sparse_tree(tmp_path / f"x{count}", count)
        server = server_factory(root, "--compress-workers", "2")
        unpacked = unpacked_size(server, f"/archive?path=.&format={ext}")
        assert unpacked >= count * 512 * MIB + 16 * MIB
        peaks.append(peak_rss_mib(server.proc.pid))
        stop_server(server)
    print(f"{ext.split('&')[0]}: peak RSS {peaks[0]:.1f} MiB at 512 MiB, {peaks[1]:.1f} MiB at 2 GiB")
    assert peaks[1] - peaks[0] < 32, f"peak RSS {peaks[0]:.1f} -> {peaks[1]:.1f} MiB"

