"""Single files over HTTP on the real server: headers, Range, conditionals, errors, resume."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest import MTIME, Server, build_tree, start_server, stop

LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"  # MTIME as an IMF-fixdate
EARLIER = "Tue, 14 Nov 2023 22:13:19 GMT"
LATER = "Tue, 14 Nov 2023 22:13:21 GMT"
CAT = "photos/2024/cat.jpg"  # 200,000 random bytes: every slice is distinct
CLI_ENV = {**os.environ, "LC_ALL": "C.UTF-8"}
TIMEOUT = 30


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    base = tmp_path_factory.mktemp("files")
    root = build_tree(base / "root")
    server = start_server(root, base)
    try:
        yield server, root
    finally:
        stop(server)


@pytest.fixture(scope="module")
def http(site: tuple[Server, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site[0].url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def root(site: tuple[Server, Path]) -> Path:
    return site[1]


@pytest.fixture(scope="module")
def cat(root: Path) -> bytes:
    return (root / CAT).read_bytes()


def url(rel: str) -> str:
    return "/files/" + quote(rel)


def get_cat(http: httpx.Client, **headers: str | bytes) -> httpx.Response:
    return http.get(url(CAT), headers=headers)


# --- GET and HEAD -----------------------------------------------------------------------------

FILES = [
    ("docs/readme.txt", "text/plain"),
    ("docs/notes/empty.txt", "text/plain"),
    (CAT, "image/jpeg"),
    ("photos/2024/dog.png", "image/png"),
    ("photos/caf\u00e9 \u00fcber.txt", "text/plain"),
    ("a" * 120 + "/" + "b" * 120 + ".txt", "text/plain"),
]


@pytest.mark.parametrize(("rel", "ctype"), FILES)
def test_get_serves_the_file_with_its_headers(http: httpx.Client, root: Path, rel: str,
                                              ctype: str) -> None:
    r = http.get(url(rel))
    data = (root / rel).read_bytes()
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"].split(";")[0] == ctype
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["last-modified"] == LAST_MODIFIED
    assert re.fullmatch(r'"[\x21\x23-\x7e]+"', r.headers["etag"])  # strong, well-formed
    assert "content-encoding" not in r.headers


@pytest.mark.parametrize(("rel", "ctype"), FILES)
def test_head_has_the_headers_of_get_and_no_body(http: httpx.Client, rel: str,
                                                 ctype: str) -> None:
    got, head = http.get(url(rel)), http.head(url(rel))
    assert head.status_code == 200
    assert head.content == b""
    assert {k: v for k, v in head.headers.items() if k != "date"} == \
        {k: v for k, v in got.headers.items() if k != "date"}


def test_etag_differs_between_files(http: httpx.Client) -> None:
    tags = {http.head(url(rel)).headers["etag"] for rel, _ in FILES}
    assert len(tags) == len(FILES)


def test_etag_is_stable_across_requests(http: httpx.Client) -> None:
    assert get_cat(http).headers["etag"] == get_cat(http).headers["etag"]


# --- Range ------------------------------------------------------------------------------------

SIZE = 200_000


@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=100-199", 100, 200),
        ("bytes=199999-199999", 199_999, 200_000),  # the last byte
        ("bytes=0-0", 0, 1),
        ("bytes=-100", SIZE - 100, SIZE),  # suffix
        ("bytes=-999999", 0, SIZE),  # suffix longer than the file: all of it
        ("bytes=150000-", 150_000, SIZE),  # open
        ("bytes=0-", 0, SIZE),
        ("bytes=100000-999999999", 100_000, SIZE),  # last-pos past the end is clipped
        ("bytes= 5-9", 5, 10),
    ],
)
def test_single_range_is_206_with_the_exact_slice(http: httpx.Client, cat: bytes, spec: str,
                                                  start: int, stop: int) -> None:
    r = get_cat(http, Range=spec)
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert r.headers["content-length"] == str(stop - start)
    assert r.content == cat[start:stop]


def test_head_with_range_has_the_206_headers(http: httpx.Client) -> None:
    r = http.head(url(CAT), headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 10-19/{SIZE}"
    assert r.content == b""


@pytest.mark.parametrize("spec", ["bytes=200000-", "bytes=999999-1000000", "bytes=-0",
                                  "bytes=200000-200001"])
def test_unsatisfiable_range_is_416_naming_the_length(http: httpx.Client, spec: str) -> None:
    r = get_cat(http, Range=spec)
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{SIZE}"
    assert len(r.content) < 1000  # an error, not the file


def parse_byteranges(r: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """Given a multipart/byteranges answer, return each part's headers and body."""
    m = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", r.headers["content-type"])
    assert m, r.headers["content-type"]
    delimiter = b"--" + m[1].encode()
    body = r.content
    assert body.rstrip(b"\r\n").endswith(delimiter + b"--")
    parts = []
    for chunk in body.split(b"\r\n" + delimiter)[:-1]:
        chunk = chunk.removeprefix(delimiter)  # the first part has no CRLF before it
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode("ascii").split("\r\n"))
        parts.append(({k.lower(): v for k, v in headers.items()}, data))
    return parts


def test_multi_range_is_multipart_byteranges(http: httpx.Client, cat: bytes) -> None:
    r = get_cat(http, Range="bytes=0-9,1000-1999,-5")
    assert r.status_code == 206
    assert "content-range" not in r.headers
    assert r.headers["content-length"] == str(len(r.content))
    parts = parse_byteranges(r)
    expected = [(0, 10), (1000, 2000), (SIZE - 5, SIZE)]
    assert [p[1] for p in parts] == [cat[a:b] for a, b in expected]
    assert [p[0]["content-range"] for p in parts] == \
        [f"bytes {a}-{b - 1}/{SIZE}" for a, b in expected]
    assert {p[0]["content-type"] for p in parts} == {"image/jpeg"}


@pytest.mark.parametrize("spec", ["bytes=1_0-2_0", "bytes=+5-9", "bytes=5-+9",
                                  "bytes=\u0661-\u0669", "bytes=\uff11-\uff19"])
def test_range_numbers_int_would_take_are_ignored_unlike_starlette_fileresponse(
        http: httpx.Client, cat: bytes, spec: str) -> None:
    # Starlette's FileResponse parses range numbers with int(), which accepts
    # "1_0", "+5" and non-ASCII digits; RFC 9110 DIGIT is ASCII 0-9 only, so these
    # Range headers are invalid and the whole file is the answer.
    r = get_cat(http, Range=spec.encode("utf-8"))
    assert r.status_code == 200
    assert "content-range" not in r.headers
    assert r.content == cat


@pytest.mark.parametrize("spec", ["items=0-9", "bytes=9-5", "bytes=abc", "bytes", "bytes=0-9;"])
def test_malformed_or_foreign_range_gives_the_whole_file(http: httpx.Client, cat: bytes,
                                                         spec: str) -> None:
    r = get_cat(http, Range=spec)
    assert r.status_code == 200
    assert r.content == cat


# --- conditionals -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def etag(http: httpx.Client) -> str:
    return http.head(url(CAT)).headers["etag"]


@pytest.mark.parametrize("form", ["{}", "W/{}", '"other", {}', "*"])
def test_if_none_match_current_is_304_without_body(http: httpx.Client, etag: str,
                                                   form: str) -> None:
    r = get_cat(http, **{"If-None-Match": form.format(etag)})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag


def test_if_none_match_other_is_200(http: httpx.Client, cat: bytes) -> None:
    r = get_cat(http, **{"If-None-Match": '"not-it"'})
    assert r.status_code == 200
    assert r.content == cat


@pytest.mark.parametrize(("since", "status"),
                         [(LAST_MODIFIED, 304), (LATER, 304), (EARLIER, 200)])
def test_if_modified_since(http: httpx.Client, since: str, status: int) -> None:
    r = get_cat(http, **{"If-Modified-Since": since})
    assert r.status_code == status
    assert (r.content == b"") is (status == 304)


def test_if_none_match_wins_over_if_modified_since(http: httpx.Client) -> None:
    # RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is present.
    r = get_cat(http, **{"If-None-Match": '"not-it"', "If-Modified-Since": LAST_MODIFIED})
    assert r.status_code == 200


def test_if_range_with_the_current_etag_is_206(http: httpx.Client, cat: bytes,
                                               etag: str) -> None:
    r = get_cat(http, Range="bytes=10-19", **{"If-Range": etag})
    assert r.status_code == 206
    assert r.content == cat[10:20]


@pytest.mark.parametrize("tag", ['"not-it"', "W/{}"])
def test_if_range_with_another_or_weak_etag_is_the_whole_file(http: httpx.Client, cat: bytes,
                                                              etag: str, tag: str) -> None:
    r = get_cat(http, Range="bytes=10-19", **{"If-Range": tag.format(etag)})
    assert r.status_code == 200
    assert r.content == cat


@pytest.mark.parametrize(("date", "status"), [(LAST_MODIFIED, 206), (LATER, 200), (EARLIER, 200)])
def test_if_range_date_must_equal_last_modified(http: httpx.Client, date: str,
                                                status: int) -> None:
    r = get_cat(http, Range="bytes=10-19", **{"If-Range": date})
    assert r.status_code == status


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", ["docs", "docs/", "photos/2024", ""])
def test_folder_is_400_json(http: httpx.Client, rel: str) -> None:
    r = http.get("/files/" + rel)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("rel", ["docs/nope.txt", "nope/deeper/x.bin", "caf\u00e9-missing.txt"])
def test_missing_file_is_404_json_naming_the_path(http: httpx.Client, rel: str) -> None:
    r = http.get(url(rel))
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "not_found"
    assert error["path"] == rel
    assert rel in error["message"]


# --- resume with curl and wget ----------------------------------------------------------------


def run(*cmd: str, cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, env=CLI_ENV, cwd=cwd,
                          check=False)
    assert done.returncode == 0, (cmd, done.stderr[-2000:])


@pytest.fixture
def full_url(site: tuple[Server, Path]) -> str:
    return site[0].url + url(CAT)


def test_curl_r_fetches_two_halves_that_join_to_the_file(full_url: str, cat: bytes,
                                                         tmp_path: Path) -> None:
    half = SIZE // 2
    run("curl", "-sS", "--fail", "-r", f"0-{half - 1}", "-o", str(tmp_path / "a"), full_url)
    run("curl", "-sS", "--fail", "-r", f"{half}-", "-o", str(tmp_path / "b"), full_url)
    assert (tmp_path / "a").read_bytes() == cat[:half]
    assert (tmp_path / "a").read_bytes() + (tmp_path / "b").read_bytes() == cat


def test_curl_continue_resumes_a_file_cut_in_half(full_url: str, cat: bytes,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "cat.jpg"
    out.write_bytes(cat[: SIZE // 2])
    run("curl", "-sS", "--fail", "-C", "-", "-o", str(out), full_url)
    assert out.read_bytes() == cat


def test_wget_continue_resumes_a_file_cut_in_half(full_url: str, cat: bytes,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "cat.jpg"
    out.write_bytes(cat[: SIZE // 2 + 7])
    run("wget", "-q", "-c", full_url, cwd=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["cat.jpg"]  # appended, no cat.jpg.1
    assert out.read_bytes() == cat


def test_wget_keeps_the_mtime_from_last_modified(full_url: str, tmp_path: Path) -> None:
    run("wget", "-q", full_url, cwd=tmp_path)
    assert (tmp_path / "cat.jpg").stat().st_mtime == MTIME


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_resume_fetches_only_the_missing_part(full_url: str, cat: bytes, tmp_path: Path,
                                              tool: str) -> None:
    # A marked first half stays as it is: only bytes from the cut on were sent.
    out = tmp_path / "cat.jpg"
    out.write_bytes(b"X" * 123_456)
    if tool == "curl":
        run("curl", "-sS", "--fail", "-C", "-", "-o", str(out), full_url)
    else:
        run("wget", "-q", "-c", full_url, cwd=tmp_path)
    assert out.read_bytes() == b"X" * 123_456 + cat[123_456:]
