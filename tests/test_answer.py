"""Table for zipserve.core.answer: status, headers (in order) and body parts for each request."""

from __future__ import annotations

import pytest

from zipserve.core.answer import Answer, Asked, Part, Served, answer_for
from zipserve.core.ranges import boundary_for
from zipserve.errors import PreconditionFailed, RangeNotSatisfiable

SIZE = 11
ETAG = '"zs2-ab12"'
FILE_TAG = '"f-b-2b8f8e3a2c1"'
LM = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
LM_IMF = "Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = "Sun, 06 Nov 1994 08:49:36 GMT"

ARCHIVE = Served.sized_archive("application/x-tar", "docs.tar", SIZE, ETAG, LM)
STREAMED = Served.unsized_archive("application/zip", "docs.zip")
FILE = Served.file("text/plain", SIZE, FILE_TAG, LM)
EMPTY_FILE = Served.file("text/plain", 0, '"f-0-0"', LM)

DOWNLOAD = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}
ARCHIVE_HEADERS = {"Content-Type": "application/x-tar",
                   "Content-Disposition": "attachment; filename=\"docs.tar\"; filename*=UTF-8''docs.tar",
                   **DOWNLOAD, "Accept-Ranges": "bytes", "ETag": ETAG, "Last-Modified": LM_IMF}
STREAMED_HEADERS = {"Content-Type": "application/zip",
                    "Content-Disposition": "attachment; filename=\"docs.zip\"; filename*=UTF-8''docs.zip",
                    **DOWNLOAD, "Accept-Ranges": "none"}
FILE_HEADERS = {"Content-Type": "text/plain", "Accept-Ranges": "bytes", "ETag": FILE_TAG,
                "Last-Modified": LM_IMF}
ARCHIVE_VALIDATORS = {"Cache-Control": "no-cache", "ETag": ETAG, "Last-Modified": LM_IMF}
FILE_VALIDATORS = {"ETag": FILE_TAG, "Last-Modified": LM_IMF}


def whole(base: dict[str, str], size: int = SIZE) -> dict[str, str]:
    return {**base, "Content-Length": str(size)}


def ranged(base: dict[str, str], first: int, last: int) -> dict[str, str]:
    return {**base, "Content-Range": f"bytes {first}-{last}/{SIZE}",
            "Content-Length": str(last - first + 1)}


def multipart(base: dict[str, str], etag: str, parts: tuple[Part, ...]) -> dict[str, str]:
    length = sum(len(p) if isinstance(p, bytes) else (p[1] or 0) - p[0] for p in parts)
    return {**base, "Content-Type": f"multipart/byteranges; boundary={boundary_for(etag)}",
            "Content-Length": str(length)}


def framed(ctype: str, etag: str) -> tuple[Part, ...]:
    """The multipart body of bytes=0-1,5-6 on an 11-byte representation (RFC 9110 §14.6)."""
    delimiter = b"--" + boundary_for(etag).encode()
    head = b"Content-Type: " + ctype.encode() + b"\r\nContent-Range: bytes "
    return (delimiter + b"\r\n" + head + b"0-1/11\r\n\r\n", (0, 2),
            b"\r\n" + delimiter + b"\r\n" + head + b"5-6/11\r\n\r\n", (5, 7),
            b"\r\n" + delimiter + b"--\r\n")


TAR_PARTS = framed("application/x-tar", ETAG)
FILE_PARTS = framed("text/plain", FILE_TAG)
ALL = ((0, SIZE),)

# (served, method, request headers, pinned ?etag=, status, headers, body)
TABLE: list[tuple[str, Served, str, dict[str, str], str | None, int, dict[str, str],
                  tuple[Part, ...] | None]] = [
    ("archive", ARCHIVE, "GET", {}, None, 200, whole(ARCHIVE_HEADERS), ALL),
    ("archive HEAD", ARCHIVE, "HEAD", {}, None, 200, whole(ARCHIVE_HEADERS), ALL),
    ("archive range", ARCHIVE, "GET", {"range": "bytes=2-5"}, None, 206,
     ranged(ARCHIVE_HEADERS, 2, 5), ((2, 6),)),
    ("archive HEAD range", ARCHIVE, "HEAD", {"range": "bytes=-3"}, None, 206,
     ranged(ARCHIVE_HEADERS, 8, 10), ((8, 11),)),
    ("archive multipart", ARCHIVE, "GET", {"range": "bytes=0-1,5-6"}, None, 206,
     multipart(ARCHIVE_HEADERS, ETAG, TAR_PARTS), TAR_PARTS),
    ("archive overlapping ranges past the size", ARCHIVE, "GET", {"range": "bytes=0-,0-"}, None,
     200, whole(ARCHIVE_HEADERS), ALL),
    ("archive invalid range", ARCHIVE, "GET", {"range": "bytes=5-1"}, None, 200,
     whole(ARCHIVE_HEADERS), ALL),
    ("archive If-None-Match", ARCHIVE, "GET", {"if-none-match": ETAG}, None, 304,
     ARCHIVE_VALIDATORS, None),
    ("archive If-None-Match weak", ARCHIVE, "HEAD", {"if-none-match": "W/" + ETAG}, None, 304,
     ARCHIVE_VALIDATORS, None),
    ("archive If-None-Match other", ARCHIVE, "GET", {"if-none-match": '"x"'}, None, 200,
     whole(ARCHIVE_HEADERS), ALL),
    ("archive If-None-Match before an unsatisfiable range", ARCHIVE, "GET",
     {"if-none-match": "*", "range": "bytes=99-"}, None, 304, ARCHIVE_VALIDATORS, None),
    ("archive If-Match", ARCHIVE, "GET", {"if-match": ETAG, "range": "bytes=2-5"}, None, 206,
     ranged(ARCHIVE_HEADERS, 2, 5), ((2, 6),)),
    ("archive If-Match other", ARCHIVE, "GET", {"if-match": '"x"', "range": "bytes=2-5"}, None,
     412, ARCHIVE_VALIDATORS, None),
    ("archive If-Match weak", ARCHIVE, "GET", {"if-match": "W/" + ETAG}, None, 412,
     ARCHIVE_VALIDATORS, None),
    ("archive If-Range strong", ARCHIVE, "GET", {"if-range": ETAG, "range": "bytes=2-5"}, None,
     206, ranged(ARCHIVE_HEADERS, 2, 5), ((2, 6),)),
    ("archive If-Range weak", ARCHIVE, "GET", {"if-range": "W/" + ETAG, "range": "bytes=2-5"},
     None, 200, whole(ARCHIVE_HEADERS), ALL),
    ("archive If-Range date", ARCHIVE, "GET", {"if-range": LM_IMF, "range": "bytes=2-5"}, None,
     200, whole(ARCHIVE_HEADERS), ALL),
    ("archive If-Modified-Since", ARCHIVE, "GET", {"if-modified-since": LM_IMF}, None, 200,
     whole(ARCHIVE_HEADERS), ALL),
    ("archive pinned", ARCHIVE, "GET", {"range": "bytes=2-5"}, ETAG, 206,
     ranged(ARCHIVE_HEADERS, 2, 5), ((2, 6),)),
    ("archive pinned without quotes", ARCHIVE, "GET", {}, ETAG.strip('"'), 200,
     whole(ARCHIVE_HEADERS), ALL),
    ("streamed", STREAMED, "GET", {}, None, 200, STREAMED_HEADERS, ((0, None),)),
    ("streamed ignores Range", STREAMED, "GET", {"range": "bytes=0-4"}, None, 200,
     STREAMED_HEADERS, ((0, None),)),
    ("streamed ignores an unsatisfiable Range", STREAMED, "HEAD", {"range": "bytes=99-"}, None,
     200, STREAMED_HEADERS, ((0, None),)),
    ("streamed ignores If-None-Match", STREAMED, "GET", {"if-none-match": "*"}, None, 200,
     STREAMED_HEADERS, ((0, None),)),
    ("streamed ignores If-Match", STREAMED, "GET", {"if-match": '"x"'}, None, 200,
     STREAMED_HEADERS, ((0, None),)),
    ("streamed pinned empty", STREAMED, "GET", {}, "", 200, STREAMED_HEADERS, ((0, None),)),
    ("file", FILE, "GET", {}, None, 200, whole(FILE_HEADERS), ALL),
    ("file range", FILE, "GET", {"range": "bytes=3-7"}, None, 206, ranged(FILE_HEADERS, 3, 7),
     ((3, 8),)),
    ("file range past the end", FILE, "GET", {"range": "bytes=5-1000"}, None, 206,
     ranged(FILE_HEADERS, 5, 10), ((5, 11),)),
    ("file multipart", FILE, "GET", {"range": "bytes=0-1,5-6"}, None, 206,
     multipart(FILE_HEADERS, FILE_TAG, FILE_PARTS), FILE_PARTS),
    ("file If-None-Match", FILE, "GET", {"if-none-match": f'"x", {FILE_TAG}'}, None, 304,
     FILE_VALIDATORS, None),
    ("file If-Modified-Since", FILE, "GET", {"if-modified-since": LM_IMF}, None, 304,
     FILE_VALIDATORS, None),
    ("file If-Modified-Since earlier", FILE, "GET", {"if-modified-since": EARLIER}, None, 200,
     whole(FILE_HEADERS), ALL),
    ("file If-Unmodified-Since earlier", FILE, "GET", {"if-unmodified-since": EARLIER}, None,
     412, FILE_VALIDATORS, None),
    ("file If-Match other", FILE, "HEAD", {"if-match": '"x"'}, None, 412, FILE_VALIDATORS, None),
    ("file If-Range strong", FILE, "GET", {"if-range": FILE_TAG, "range": "bytes=3-7"}, None,
     206, ranged(FILE_HEADERS, 3, 7), ((3, 8),)),
    ("file If-Range weak", FILE, "GET", {"if-range": "W/" + FILE_TAG, "range": "bytes=3-7"},
     None, 200, whole(FILE_HEADERS), ALL),
    ("file If-Range date", FILE, "GET", {"if-range": LM_IMF, "range": "bytes=3-7"}, None, 206,
     ranged(FILE_HEADERS, 3, 7), ((3, 8),)),
    ("file If-Range other date", FILE, "GET", {"if-range": EARLIER, "range": "bytes=3-7"}, None,
     200, whole(FILE_HEADERS), ALL),
    ("empty file with a range", EMPTY_FILE, "GET", {"range": "bytes=0-"}, None, 200,
     {**FILE_HEADERS, "ETag": '"f-0-0"', "Content-Length": "0"}, ((0, 0),)),
]


@pytest.mark.parametrize(("served", "method", "headers", "pinned", "status", "sent", "body"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_answer(served: Served, method: str, headers: dict[str, str], pinned: str | None,
                status: int, sent: dict[str, str], body: tuple[Part, ...] | None) -> None:
    answer = answer_for(served, Asked(method, headers, pinned))
    assert answer == Answer(status, sent, body)
    assert list(answer.headers) == list(sent)  # the order they go out in


# (served, request headers, pinned ?etag=, error, status, headers, message)
REFUSALS: list[tuple[str, Served, dict[str, str], str | None, type[Exception], int,
                     dict[str, str], str]] = [
    ("archive unsatisfiable range", ARCHIVE, {"range": "bytes=11-"}, None, RangeNotSatisfiable,
     416, {"Content-Range": "bytes */11"}, "the requested range is not within the archive"),
    ("file unsatisfiable range", FILE, {"range": "bytes=-0"}, None, RangeNotSatisfiable, 416,
     {"Content-Range": "bytes */11"}, "the requested range is not within the file"),
    ("archive pinned to another version", ARCHIVE, {}, '"zs2-other"', PreconditionFailed, 412,
     {}, "the files changed since this link was made"),
    ("pinned is checked before If-None-Match", ARCHIVE, {"if-none-match": ETAG}, '"zs2-other"',
     PreconditionFailed, 412, {}, "the files changed since this link was made"),
    ("streamed pinned to any version", STREAMED, {}, ETAG, PreconditionFailed, 412, {},
     "the files changed since this link was made"),
]


@pytest.mark.parametrize(("served", "headers", "pinned", "error", "status", "sent", "message"),
                         [row[1:] for row in REFUSALS], ids=[row[0] for row in REFUSALS])
def test_refusal(served: Served, headers: dict[str, str], pinned: str | None,
                 error: type[Exception], status: int, sent: dict[str, str], message: str) -> None:
    answer = answer_for(served, Asked("GET", headers, pinned))
    assert type(answer.error) is error
    assert (answer.status, answer.headers, answer.body) == (status, sent, None)
    assert answer.error.status == status and answer.error.headers() == sent
    assert answer.error.message.startswith(message)
