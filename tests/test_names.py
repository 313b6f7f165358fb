"""names=windows: entries renamed at planning time so Windows can write every one, in every format.

A tree of Windows-hostile names (a colon, a reserved device name, a trailing
dot, two names equal but for case, a question mark, a folder with `<>` and a
file with `|` in it) is downloaded with names=windows, extracted by `7z x`
and `unzip`, and each expected name must hold its own file's bytes.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.helpers import Serve, need_tool, run

# name in the tree -> name in the archive under names=windows (see core/winnames.py)
HOSTILE = {
    "a:b.txt": "a_b.txt",
    "CON": "CON_",
    "x.": "x",
    "A.txt": "A.txt",
    "a.txt": "a (2).txt",
    "q?.txt": "q_.txt",
    "d<1>/in|side.txt": "d_1_/in_side.txt",
}


@pytest.fixture
def hostile(tmp_path: Path, server_factory: Serve) -> tuple[str, Path]:
    """Serve a tree of Windows-hostile names; return the server's URL and the tree."""
    root = tmp_path / "hostile"
    for i, name in enumerate(HOSTILE):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"file {i}: {name}\n".encode())
    return server_factory(root).url, root


def fetch(url: str, fmt: str, extra: str = "") -> bytes:
    r = httpx.get(f"{url}/archive?path=.&format={fmt}&names=windows{extra}", timeout=60)
    assert r.status_code == 200, r.text
    return r.content


def check_extracted(out: Path, root: Path) -> None:
    """Given an extracted folder and the tree, assert every file landed under its Windows name."""
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(HOSTILE.values())
    for name, shown in HOSTILE.items():
        assert (out / shown).read_bytes() == (root / name).read_bytes(), shown


@pytest.mark.parametrize("compression", ["store", "deflate"])
@pytest.mark.parametrize("tool", ["7z", "unzip"])
def test_windows_names_zip_extracts_into_distinct_files(hostile: tuple[str, Path], tmp_path: Path,
                                                        compression: str, tool: str) -> None:
    need_tool(tool)
    url, root = hostile
    archive = tmp_path / "w.zip"
    archive.write_bytes(fetch(url, "zip", f"&compression={compression}"))
    out = tmp_path / "out"
    out.mkdir()
    if tool == "7z":
        run("7z", "x", f"-o{out}", str(archive))
    else:
        run("unzip", "-q", str(archive), "-d", str(out))
    check_extracted(out, root)


@pytest.mark.parametrize("fmt", ["tar", "tar.gz"])
def test_windows_names_apply_to_tars_too(hostile: tuple[str, Path], fmt: str) -> None:
    url, root = hostile
    with tarfile.open(fileobj=io.BytesIO(fetch(url, fmt))) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert files == {shown: (root / name).read_bytes() for name, shown in HOSTILE.items()}


def test_names_option_is_part_of_the_etag(hostile: tuple[str, Path]) -> None:
    url, _ = hostile
    tags = {names: httpx.head(f"{url}/archive?path=.&format=tar&names={names}").headers["etag"]
            for names in ("keep", "windows")}
    assert tags["keep"] != tags["windows"]
    assert httpx.head(f"{url}/archive?path=.&format=tar").headers["etag"] == tags["keep"]


def test_unknown_names_option_is_refused(hostile: tuple[str, Path]) -> None:
    r = httpx.get(f"{hostile[0]}/archive?path=.&format=zip&names=dos")
    assert r.status_code == 400 and "names must be one of: keep, windows" in r.text


@pytest.mark.parametrize("body", ["form", "json"])
def test_posted_names_option_survives_the_redirect(hostile: tuple[str, Path], body: str) -> None:
    url, root = hostile
    fields = {"path": ".", "format": "tar", "names": "windows"}
    sent = {"json": {**fields, "paths": ["."]}} if body == "json" else {"data": fields}
    r = httpx.post(f"{url}/archive", follow_redirects=True, timeout=60, **sent)  # type: ignore[arg-type]
    assert r.status_code == 200 and len(r.history) == 1
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        assert sorted(m.name for m in tar.getmembers() if m.isfile()) == sorted(HOSTILE.values())
