"""Single files over HTTP on the real server: headers, Range, conditionals, errors, resume.

Most tests run against each source (`served`: the sample tree on local disk and
in an S3 bucket); those that check the tree's fixed times run on local disk only.
"""

from __future__ import annotations

import os
import re
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.helpers import MTIME, Site, parse_byteranges, run

LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"  # MTIME as an IMF-fixdate
EARLIER = "Tue, 14 Nov 2023 22:13:19 GMT"
LATER = "Tue, 14 Nov 2023 22:13:21 GMT"
CAT = "photos/2024/cat.jpg"  # 200,000 random bytes: every slice is distinct


@pytest.fixture(scope="module")
def cat(served: Site) -> bytes:
    return (served.root / CAT).read_bytes()


def file_url(rel: str) -> str:
    return "/files/" + quote(rel)


def get_cat(http: httpx.Client, **headers: str | bytes) -> httpx.Response:
    return http.get(file_url(CAT), headers=headers)


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
def test_get_serves_the_file_with_its_headers(http: httpx.Client, sample: Site, rel: str,
                                              ctype: str) -> None:
    r = http.get(file_url(rel))
    data = (sample.root / rel).read_bytes()
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"].split(";")[0] == ctype
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["last-modified"] == LAST_MODIFIED
    assert re.fullmatch(r'"[\x21\x23-\x7e]+"', r.headers["etag"])  # strong, well-formed
    assert "content-encoding" not in r.headers


@pytest.mark.parametrize(("rel", "ctype"), FILES)
def test_head_has_the_headers_of_get_and_no_body(served_http: httpx.Client, rel: str,
                                                 ctype: str) -> None:
    got, head = served_http.get(file_url(rel)), served_http.head(file_url(rel))
    assert head.status_code == 200
    assert head.content == b""
    assert {k: v for k, v in head.headers.items() if k != "date"} == \
        {k: v for k, v in got.headers.items() if k != "date"}


def test_etag_differs_between_files(served_http: httpx.Client) -> None:
    tags = {served_http.head(file_url(rel)).headers["etag"] for rel, _ in FILES}
    assert len(tags) == len(FILES)


def test_etag_is_stable_across_requests(served_http: httpx.Client) -> None:
    assert get_cat(served_http).headers["etag"] == get_cat(served_http).headers["etag"]


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
def test_single_range_is_206_with_the_exact_slice(served_http: httpx.Client, cat: bytes, spec: str,
                                                  start: int, stop: int) -> None:
    r = get_cat(served_http, Range=spec)
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert r.headers["content-length"] == str(stop - start)
    assert r.content == cat[start:stop]


def test_head_with_range_has_the_206_headers(served_http: httpx.Client) -> None:
    r = served_http.head(file_url(CAT), headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 10-19/{SIZE}"
    assert r.content == b""


@pytest.mark.parametrize("spec", ["bytes=200000-", "bytes=999999-1000000", "bytes=-0",
                                  "bytes=200000-200001"])
def test_unsatisfiable_range_is_416_naming_the_length(served_http: httpx.Client, spec: str) -> None:
    r = get_cat(served_http, Range=spec)
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{SIZE}"
    assert len(r.content) < 1000  # an error, not the file


def test_multi_range_is_multipart_byteranges(served_http: httpx.Client, cat: bytes) -> None:
    r = get_cat(served_http, Range="bytes=0-9,1000-1999,-5")
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
        served_http: httpx.Client, cat: bytes, spec: str) -> None:
    # Starlette's FileResponse parses range numbers with int(), which accepts
    # "1_0", "+5" and non-ASCII digits; RFC 9110 DIGIT is ASCII 0-9 only, so these
    # Range headers are invalid and the whole file is the answer.
    r = get_cat(served_http, Range=spec.encode("utf-8"))
    assert r.status_code == 200
    assert "content-range" not in r.headers
    assert r.content == cat


@pytest.mark.parametrize("spec", ["items=0-9", "bytes=9-5", "bytes=abc", "bytes", "bytes=0-9;"])
def test_malformed_or_foreign_range_gives_the_whole_file(served_http: httpx.Client, cat: bytes,
                                                         spec: str) -> None:
    r = get_cat(served_http, Range=spec)
    assert r.status_code == 200
    assert r.content == cat


# --- conditionals -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cat_etag(served_http: httpx.Client) -> str:
    return served_http.head(file_url(CAT)).headers["etag"]


@pytest.mark.parametrize("form", ["{}", "W/{}", '"other", {}', "*"])
def test_if_none_match_current_is_304_without_body(served_http: httpx.Client, cat_etag: str,
                                                   form: str) -> None:
    r = get_cat(served_http, **{"If-None-Match": form.format(cat_etag)})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == cat_etag


def test_if_none_match_other_is_200(served_http: httpx.Client, cat: bytes) -> None:
    r = get_cat(served_http, **{"If-None-Match": '"not-it"'})
    assert r.status_code == 200
    assert r.content == cat


@pytest.mark.parametrize(("since", "status"),
                         [(LAST_MODIFIED, 304), (LATER, 304), (EARLIER, 200)])
def test_if_modified_since(http: httpx.Client, sample: Site, since: str, status: int) -> None:
    r = get_cat(http, **{"If-Modified-Since": since})
    assert r.status_code == status
    assert r.content == (b"" if status == 304 else (sample.root / CAT).read_bytes())


def test_if_none_match_wins_over_if_modified_since(served_http: httpx.Client, cat: bytes) -> None:
    # RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is present.
    r = get_cat(served_http, **{"If-None-Match": '"not-it"', "If-Modified-Since": LAST_MODIFIED})
    assert r.status_code == 200
    assert r.content == cat


def test_if_range_with_the_current_etag_is_206(served_http: httpx.Client, cat: bytes,
                                               cat_etag: str) -> None:
    r = get_cat(served_http, Range="bytes=10-19", **{"If-Range": cat_etag})
    assert r.status_code == 206
    assert r.content == cat[10:20]


@pytest.mark.parametrize("tag", ['"not-it"', "W/{}"])
def test_if_range_with_another_or_weak_etag_is_the_whole_file(served_http: httpx.Client, cat: bytes,
                                                              cat_etag: str, tag: str) -> None:
    r = get_cat(served_http, Range="bytes=10-19", **{"If-Range": tag.format(cat_etag)})
    assert r.status_code == 200
    assert r.content == cat


@pytest.mark.parametrize(("date", "status"), [(LAST_MODIFIED, 206), (LATER, 200), (EARLIER, 200)])
def test_if_range_date_must_equal_last_modified(http: httpx.Client, sample: Site, date: str,
                                                status: int) -> None:
    r = get_cat(http, Range="bytes=10-19", **{"If-Range": date})
    cat = (sample.root / CAT).read_bytes()
    assert r.status_code == status
    assert r.content == (cat[10:20] if status == 206 else cat)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", ["docs", "docs/", "photos/2024", ""])
def test_folder_is_400_json(served_http: httpx.Client, rel: str) -> None:
    r = served_http.get("/files/" + rel)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("rel", ["docs/nope.txt", "nope/deeper/x.bin", "caf\u00e9-missing.txt"])
def test_missing_file_is_404_json_naming_the_path(served_http: httpx.Client, rel: str) -> None:
    r = served_http.get(file_url(rel))
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "not_found"
    assert error["path"] == rel
    assert rel in error["message"]


# --- resume with curl and wget ----------------------------------------------------------------


@pytest.fixture
def full_url(served: Site) -> str:
    return served.url + file_url(CAT)


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


def test_wget_keeps_the_mtime_from_last_modified(sample: Site, tmp_path: Path) -> None:
    run("wget", "-q", sample.url + file_url(CAT), cwd=tmp_path)
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


@pytest.mark.parametrize(("rel", "ctype"), FILES)
def test_file_has_the_sources_last_modified(served_http: httpx.Client, served: Site, rel: str,
                                            ctype: str) -> None:
    r = served_http.get(file_url(rel))
    assert r.status_code == 200
    assert int(parsedate_to_datetime(r.headers["last-modified"]).timestamp()) == \
        served.truth.mtimes[rel]
