"""Content-Disposition from the hostile names of docs/hostile-inputs.md, pure and through the server."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from tests.helpers import Site, try_run
from zipserve.core.headers import ascii_fallback, content_disposition

NAMES = [
    pytest.param('a"b', id="quote"),
    pytest.param("evil\"; filename*=UTF-8''pwned.txt; x=\"", id="injected-param"),
    pytest.param("trailing\\", id="trailing-backslash"),
    pytest.param("a\r\nSet-Cookie:x", id="crlf"),
    pytest.param(";", id="semicolon"),
    pytest.param("\u20ac rates", id="euro"),
    pytest.param("\U0001f4e6 backup", id="emoji"),
    pytest.param(unicodedata.normalize("NFD", "Caf\u00e9 men\u00fc"), id="nfd"),
    pytest.param("n" * 300, id="300-ascii"),
    pytest.param("\u00e9" * 150, id="300-bytes-utf8"),
    pytest.param("../../etc/passwd", id="dotdot"),
    pytest.param("%41%2F..%2f", id="percent"),
    pytest.param("tab\there\x7f\x00nul", id="controls"),
    pytest.param("\u202egnp.exe", id="rtl-override"),
    pytest.param("report 2024 (final).zip", id="plain"),
]
CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
# The whole header: one quoted ASCII fallback, then one RFC 5987 ext-value (attr-chars
# and %XX only). A fullmatch proves nothing else rides along.
HEADER = re.compile(
    r'attachment; filename="([\x20\x21\x23-\x5b\x5d-\x7e]+)"; '
    r"filename\*=UTF-8''((?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-F]{2})+)"
)


def real(name: str) -> str:
    """Given a requested name, return what filename* must carry: the name minus controls."""
    return CONTROLS.sub("", name).strip() or "download"


@pytest.mark.parametrize("name", NAMES)
def test_header_is_one_fallback_and_one_encoded_name(name: str) -> None:
    assert HEADER.fullmatch(content_disposition(name))


@pytest.mark.parametrize("name", NAMES)
def test_header_is_ascii_without_cr_or_lf(name: str) -> None:
    header = content_disposition(name)
    assert header.isascii()
    assert "\r" not in header and "\n" not in header and "\0" not in header


@pytest.mark.parametrize("name", NAMES)
def test_filename_star_decodes_to_the_real_name(name: str) -> None:
    m = HEADER.fullmatch(content_disposition(name))
    assert m
    assert unquote(m[2], encoding="utf-8", errors="strict") == real(name)


@pytest.mark.parametrize("name", NAMES)
def test_fallback_has_no_quote_backslash_control_or_separator(name: str) -> None:
    fallback = ascii_fallback(real(name))
    assert fallback
    assert fallback.isascii()
    assert not set(fallback) & set('"\\/;%') and not CONTROLS.search(fallback)
    assert len(fallback) <= 200


def test_nfd_name_is_kept_as_sent() -> None:
    nfd = unicodedata.normalize("NFD", "Caf\u00e9")
    m = HEADER.fullmatch(content_disposition(nfd + ".zip"))
    assert m
    assert unquote(m[2]) == nfd + ".zip"  # not recomposed to NFC
    assert m[1] == "Cafe.zip"


@pytest.mark.parametrize("name", ["report 2024 (final).zip", "a-b_c.tar.gz", "x.zip"])
def test_plain_ascii_name_is_its_own_fallback(name: str) -> None:
    assert ascii_fallback(name) == name


@pytest.mark.parametrize("ext", [".zip", ".tar.gz", ".tar.zst"])
def test_long_name_fallback_keeps_its_extension(ext: str) -> None:
    fallback = ascii_fallback("x" * 300 + ext)
    assert fallback.endswith("x" + ext)
    assert len(fallback) == 200


@pytest.mark.parametrize(("name", "fallback"),
                         [("\U0001f4e6.zip", "download.zip"), ("\u20ac.tar.gz", "download.tar.gz"),
                          ("\u0434\u0430\u043d\u043d\u044b\u0435.tar", "download.tar"),
                          ("\u6570\u636e", "download"), ("..", "download"),
                          (".hidden.zip", "download.hidden.zip")])
def test_fallback_of_a_name_with_no_ascii_stem_is_download(name: str, fallback: str) -> None:
    # Not "zip" or ".zip": curl -J would save a file with no name or a hidden one.
    assert ascii_fallback(name) == fallback


# --- through the real server ---------------------------------------------------------------


def download_name(name: str) -> str:
    """Given ?name=, return the download name: no path separators, the format's extension."""
    return real(name.replace("/", "_").replace("\\", "_") + ".tar")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_name_round_trips_through_the_server(http: httpx.Client, name: str,
                                             method: str) -> None:
    r = http.request(method, "/archive/top.txt.tar", params={"name": name})
    assert r.status_code == 200
    values = r.headers.get_list("content-disposition")
    assert len(values) == 1
    m = HEADER.fullmatch(values[0])
    assert m, values[0]
    assert unquote(m[2], errors="strict") == download_name(name)
    assert "set-cookie" not in r.headers


@pytest.mark.parametrize("name", NAMES)
def test_curl_j_saves_under_the_fallback_inside_its_folder(sample: Site, tmp_path: Path,
                                                          name: str) -> None:
    url = str(httpx.URL(sample.url + "/archive/top.txt.tar", params={"name": name}))
    folder = tmp_path / "dl"
    folder.mkdir()
    done = try_run("curl", "-sS", "--fail", "-O", "-J", "-D", "-", url, cwd=folder)
    assert done.returncode == 0, done.stderr
    header = re.search(rb"(?im)^content-disposition: (.*?)\r$", done.stdout)
    assert header
    m = HEADER.fullmatch(header[1].decode("ascii"))
    assert m
    assert os.listdir(folder) == [m[1]]
    assert os.listdir(tmp_path) == ["dl"]  # nothing written beside it
    assert (folder / m[1]).stat().st_size % 512 == 0  # the tar itself
