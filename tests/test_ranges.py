"""Tables for zipserve.ranges: Range, If-Range and conditional requests (RFC 9110)."""

from __future__ import annotations

import random
import re
import time
from email.message import Message
from email.parser import BytesParser

import pytest

from zipserve.core.ranges import (
    Decision,
    Validators,
    boundary_for,
    content_range,
    decide,
    multipart_parts,
    parse_http_date,
    unsatisfied_range,
)

DATA = b"0123456789\n"  # Go's net/http testdata/file: 11 bytes
SIZE = len(DATA)
ETAG = '"zs1-ab12"'
LM = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
LM_IMF = "Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = "Sun, 06 Nov 1994 08:49:36 GMT"
LATER = "Sun, 06 Nov 1994 08:49:38 GMT"
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
FILE = Validators(size=SIZE, etag=ETAG, last_modified=LM)
ARCHIVE = Validators(size=SIZE, etag=ETAG, last_modified=None)
NO_ETAG = Validators(size=SIZE, etag=None, last_modified=LM)
EMPTY = Validators(size=0, etag=ETAG, last_modified=LM)


def ranged(header: str, v: Validators = FILE, method: str = "GET") -> Decision:
    return decide(method, {"range": header}, v)


# Go's net/http ServeFileRangeTests (fs_test.go), on the same 11-byte file.
GO_TABLE = [
    ("", 200, ()),
    ("bytes=0-4", 206, ((0, 5),)),
    ("bytes=2-", 206, ((2, 11),)),
    ("bytes=-5", 206, ((6, 11),)),
    ("bytes=3-7", 206, ((3, 8),)),
    ("bytes=0-0,-2", 206, ((0, 1), (9, 11))),
    ("bytes=0-1,5-8", 206, ((0, 2), (5, 9))),
    ("bytes=0-1,5-", 206, ((0, 2), (5, 11))),
    ("bytes=5-1000", 206, ((5, 11),)),
    ("bytes=0-,1-,2-,3-,4-", 200, ()),
    ("bytes=0-9", 206, ((0, 10),)),
    ("bytes=0-10", 206, ((0, 11),)),
    ("bytes=0-11", 206, ((0, 11),)),
    ("bytes=10-11", 206, ((10, 11),)),
    ("bytes=10-", 206, ((10, 11),)),
    ("bytes=11-", 416, ()),
    ("bytes=11-12", 416, ()),
    ("bytes=12-12", 416, ()),
    ("bytes=11-100", 416, ()),
    ("bytes=12-100", 416, ()),
    ("bytes=100-", 416, ()),
    ("bytes=12-", 416, ()),
    ("bytes=100-1000", 416, ()),
    ("bytes=-0", 416, ()),
]


@pytest.mark.parametrize(("header", "status", "ranges"), GO_TABLE)
def test_go_serve_file_range_table(
    header: str, status: int, ranges: tuple[tuple[int, int], ...]
) -> None:
    assert ranged(header) == Decision(status, ranges)


@pytest.mark.parametrize(
    ("header", "status", "ranges"),
    [
        ("bytes=-11", 206, ((0, 11),)),
        ("bytes=-12", 206, ((0, 11),)),
        ("bytes=-1", 206, ((10, 11),)),
        ("bytes=0-0", 206, ((0, 1),)),
        ("bytes=-0,-0", 416, ()),
        ("bytes=-0,0-0", 206, ((0, 1),)),
        ("bytes=3-4,20-30", 206, ((3, 5),)),
        ("bytes=20-30,-3", 206, ((8, 11),)),
        ("bytes=0-" + "9" * 5000, 206, ((0, 11),)),
        ("bytes=" + "9" * 5000 + "-", 416, ()),
        ("bytes=-" + "9" * 5000, 206, ((0, 11),)),
        ("bytes=0000000000000000000000000003-4", 206, ((3, 5),)),
    ],
)
def test_satisfiability_and_clamping(
    header: str, status: int, ranges: tuple[tuple[int, int], ...]
) -> None:
    assert ranged(header) == Decision(status, ranges)


@pytest.mark.parametrize(
    ("header", "ranges"),
    [
        ("BYTES=0-4", ((0, 5),)),
        ("Bytes=0-4", ((0, 5),)),
        ("  bytes=0-4  ", ((0, 5),)),
        ("bytes=0-1 , 5-8", ((0, 2), (5, 9))),
        ("bytes=0-1\t,\t5-8", ((0, 2), (5, 9))),
        ("bytes=0-1,,5-8,", ((0, 2), (5, 9))),
        ("bytes=, 0-1", ((0, 2),)),
    ],
)
def test_range_syntax_that_is_accepted(header: str, ranges: tuple[tuple[int, int], ...]) -> None:
    assert ranged(header) == Decision(206, ranges)


@pytest.mark.parametrize(
    "header",
    [
        "items=0-4",
        "bytes 0-4",
        "bytes =0-4",
        "bytes= 0 -4",
        "=0-4",
        "bytes=",
        "bytes=,",
        "bytes= , ",
        "bytes=1_0-2_0",
        "bytes=+5-9",
        "bytes=0-+9",
        "bytes=-+5",
        "bytes=١-٢",  # Arabic-Indic digits: int() would accept them
        "bytes=0-١",
        "bytes=１-２",  # fullwidth digits
        "bytes=1 0-20",
        "bytes=0- 4",
        "bytes=0x1-2",
        "bytes=5-1",  # last-pos < first-pos: invalid int-range (§14.1.1)
        "bytes=0-4,5-1",
        "bytes=0-4,x",
        "bytes=--5",
        "bytes=-",
        "bytes=0-4\n",
        "bytes=0-4;q=1",
    ],
)
def test_invalid_range_is_ignored(header: str) -> None:
    assert ranged(header) == Decision(200)


@pytest.mark.parametrize(
    ("header", "ranges"),
    [
        ("bytes=0-1,2-3", ((0, 4),)),  # adjacent
        ("bytes=0-2,1-3", ((0, 4),)),  # overlapping
        ("bytes=0-0,0-0", ((0, 1),)),
        ("bytes=0-1,3-4", ((0, 2), (3, 5))),  # a gap of one byte stays two parts
        ("bytes=5-6,0-1", ((5, 7), (0, 2))),  # request order kept (§15.3.7.2)
        ("bytes=8-9,0-1,1-2", ((8, 10), (0, 3))),
        ("bytes=-2,0-1,8-8", ((8, 11), (0, 2))),
        ("bytes=0-1,3-4,0-1,3-4", ((0, 2), (3, 5))),
    ],
)
def test_overlapping_or_adjacent_ranges_coalesce(
    header: str, ranges: tuple[tuple[int, int], ...]
) -> None:
    assert ranged(header) == Decision(206, ranges)


@pytest.mark.parametrize(
    "header",
    ["bytes=0-5,3-8", "bytes=0-,0-", "bytes=-11,0-0", "bytes=0-10,5-5"],
)
def test_ranges_summing_past_the_length_get_the_whole(header: str) -> None:
    assert ranged(header) == Decision(200)


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=-1", "bytes=0-0", "bytes=5-", "bytes=-0"])
def test_empty_representation_with_range_is_200(header: str) -> None:
    assert ranged(header, EMPTY) == Decision(200)


@pytest.mark.parametrize(
    ("method", "status"),
    [("GET", 206), ("HEAD", 206), ("POST", 200), ("PUT", 200), ("DELETE", 200), ("get", 200)],
)
def test_range_applies_to_get_and_head_only(method: str, status: int) -> None:
    assert ranged("bytes=0-4", method=method).status == status


def test_range_spec_cap_allows_100() -> None:
    header = "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(100))
    decision = ranged(header, Validators(1000, ETAG, LM))
    assert decision == Decision(206, tuple((2 * i, 2 * i + 1) for i in range(100)))


def test_more_than_100_range_specs_are_ignored() -> None:
    header = "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(101))
    assert ranged(header, Validators(1000, ETAG, LM)) == Decision(200)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=" + "0-0," * 25_000,
        "bytes=" + "0-," * 34_000,
        "bytes=" + " " * 100_000 + "0-4",
        "bytes=0-" + "9" * 100_000,
        "bytes=" + "," * 100_000,
    ],
)
def test_hostile_100kb_range_header_is_ignored_quickly(header: str) -> None:
    assert len(header) >= 100_000
    began = time.perf_counter()
    assert ranged(header) == Decision(200)
    assert time.perf_counter() - began < 0.5


@pytest.mark.parametrize(
    ("header", "decision"),
    [
        ("bytes=" + "," * 8000, Decision(200)),
        ("bytes=" + " ," * 4000, Decision(200)),
        ("bytes=" + "0" * 8000 + "-", Decision(206, ((0, 11),))),
        ("bytes=" + "1" * 8000 + "-", Decision(416)),
        ("bytes=-" * 1000, Decision(200)),
    ],
)
def test_hostile_range_header_under_the_length_cap_is_cheap(
    header: str, decision: Decision
) -> None:
    assert len(header) <= 8192
    began = time.perf_counter()
    assert ranged(header) == decision
    assert time.perf_counter() - began < 0.5


@pytest.mark.parametrize(
    "name",
    ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range"],
)
def test_hostile_100kb_conditional_header_is_cheap(name: str) -> None:
    headers = {name: '"a", ' * 20_000 + "x", "range": "bytes=0-4"}
    began = time.perf_counter()
    decide("GET", headers, FILE)
    assert time.perf_counter() - began < 0.5


def test_random_range_headers_never_exceed_the_representation() -> None:
    rng = random.Random(9110)
    alphabet = "0123456789-,= \tbytesB_+١"
    for _ in range(5000):
        header = "bytes=" + "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        size = rng.randrange(0, 20)
        decision = ranged(header, Validators(size, ETAG, LM))
        assert decision.status in (200, 206, 416)
        assert (decision.status == 206) == bool(decision.ranges)
        assert all(0 <= start < stop <= size for start, stop in decision.ranges)
        assert sum(stop - start for start, stop in decision.ranges) <= size


# --- conditional requests (RFC 9110 §13.2.2) ---------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "v", "status"),
    [
        ("GET", {"if-match": ETAG}, FILE, 200),
        ("GET", {"if-match": '"other"'}, FILE, 412),
        ("PUT", {"if-match": '"other"'}, FILE, 412),
        ("GET", {"if-match": 'W/"zs1-ab12"'}, FILE, 412),  # strong comparison
        ("GET", {"if-match": "*"}, FILE, 200),
        ("GET", {"if-match": "*"}, ARCHIVE, 200),
        ("GET", {"if-match": '"a", "zs1-ab12"'}, FILE, 200),
        ("GET", {"if-match": '"a",W/"zs1-ab12"'}, FILE, 412),
        ("GET", {"if-match": '"zs1-ab12" "a"'}, FILE, 412),  # malformed list
        ("GET", {"if-match": "zs1-ab12"}, FILE, 412),  # unquoted: malformed
        ("GET", {"if-match": '"x"'}, NO_ETAG, 412),
        ("GET", {"if-match": "*"}, NO_ETAG, 200),
        ("GET", {"if-match": ""}, FILE, 200),  # empty value counts as absent
    ],
)
def test_if_match(method: str, headers: dict[str, str], v: Validators, status: int) -> None:
    assert decide(method, headers, v).status == status


@pytest.mark.parametrize(
    ("headers", "v", "status"),
    [
        ({"if-unmodified-since": EARLIER}, FILE, 412),
        ({"if-unmodified-since": LM_IMF}, FILE, 200),
        ({"if-unmodified-since": LATER}, FILE, 200),
        ({"if-unmodified-since": "yesterday"}, FILE, 200),  # invalid date: ignored
        ({"if-unmodified-since": EARLIER}, ARCHIVE, 200),  # no date validator: ignored
        ({"if-unmodified-since": EARLIER, "if-match": ETAG}, FILE, 200),  # If-Match wins
        ({"if-unmodified-since": LATER, "if-match": '"x"'}, FILE, 412),
    ],
)
def test_if_unmodified_since(headers: dict[str, str], v: Validators, status: int) -> None:
    assert decide("GET", headers, v).status == status


@pytest.mark.parametrize(
    ("method", "headers", "v", "status"),
    [
        ("GET", {"if-none-match": ETAG}, FILE, 304),
        ("HEAD", {"if-none-match": ETAG}, FILE, 304),
        ("POST", {"if-none-match": ETAG}, FILE, 412),
        ("PUT", {"if-none-match": "*"}, FILE, 412),
        ("GET", {"if-none-match": 'W/"zs1-ab12"'}, FILE, 304),  # weak comparison
        ("GET", {"if-none-match": "*"}, FILE, 304),
        ("GET", {"if-none-match": '"a", W/"b", "zs1-ab12"'}, FILE, 304),
        ("GET", {"if-none-match": '"other"'}, FILE, 200),
        ("GET", {"if-none-match": '"x"'}, NO_ETAG, 200),
        ("GET", {"if-none-match": "garbage"}, FILE, 200),
        ("GET", {"if-none-match": '"other"', "if-modified-since": LATER}, FILE, 200),
        ("GET", {"if-none-match": ETAG, "if-modified-since": EARLIER}, FILE, 304),
    ],
)
def test_if_none_match(method: str, headers: dict[str, str], v: Validators, status: int) -> None:
    assert decide(method, headers, v).status == status


@pytest.mark.parametrize(
    ("method", "headers", "v", "status"),
    [
        ("GET", {"if-modified-since": LM_IMF}, FILE, 304),
        ("HEAD", {"if-modified-since": LM_IMF}, FILE, 304),
        ("GET", {"if-modified-since": LATER}, FILE, 304),
        ("GET", {"if-modified-since": EARLIER}, FILE, 200),
        ("GET", {"if-modified-since": "Sunday, 06-Nov-94 08:49:37 GMT"}, FILE, 304),
        ("GET", {"if-modified-since": "Sun Nov  6 08:49:37 1994"}, FILE, 304),
        ("GET", {"if-modified-since": "not a date"}, FILE, 200),
        ("GET", {"if-modified-since": f"{LM_IMF}, {LM_IMF}"}, FILE, 200),  # a list: ignored
        ("GET", {"if-modified-since": LM_IMF}, ARCHIVE, 200),
        ("POST", {"if-modified-since": LM_IMF}, FILE, 200),
        ("GET", {"if-modified-since": EPOCH}, Validators(1, None, 0), 304),
    ],
)
def test_if_modified_since(
    method: str, headers: dict[str, str], v: Validators, status: int
) -> None:
    assert decide(method, headers, v).status == status


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"if-match": '"x"', "if-none-match": ETAG}, 412),
        ({"if-unmodified-since": EARLIER, "if-none-match": ETAG}, 412),
        ({"if-none-match": ETAG, "range": "bytes=0-4"}, 304),
        ({"if-modified-since": LM_IMF, "range": "bytes=0-4"}, 304),
        ({"if-match": '"x"', "range": "bytes=100-"}, 412),  # 412 before 416
        ({"if-none-match": ETAG, "range": "bytes=100-"}, 304),
        ({"if-match": ETAG, "range": "bytes=0-4"}, 206),
        ({"if-none-match": '"x"', "range": "bytes=100-"}, 416),
    ],
)
def test_precondition_precedence(headers: dict[str, str], status: int) -> None:
    assert decide("GET", headers, FILE).status == status


# --- If-Range (RFC 9110 §13.1.5) ------------------------------------------------


@pytest.mark.parametrize(
    ("if_range", "v", "range_header", "decision"),
    [
        (ETAG, FILE, "bytes=0-4", Decision(206, ((0, 5),))),
        (f" {ETAG} ", FILE, "bytes=0-4", Decision(206, ((0, 5),))),
        ('W/"zs1-ab12"', FILE, "bytes=0-4", Decision(200)),
        ('"other"', FILE, "bytes=0-4", Decision(200)),
        (f"{ETAG}, {ETAG}", FILE, "bytes=0-4", Decision(200)),
        ('"zs1-ab12', FILE, "bytes=0-4", Decision(200)),
        (ETAG, NO_ETAG, "bytes=0-4", Decision(200)),
        (LM_IMF, FILE, "bytes=0-4", Decision(206, ((0, 5),))),
        ("Sunday, 06-Nov-94 08:49:37 GMT", FILE, "bytes=0-4", Decision(206, ((0, 5),))),
        ("Sun Nov  6 08:49:37 1994", FILE, "bytes=0-4", Decision(206, ((0, 5),))),
        (EARLIER, FILE, "bytes=0-4", Decision(200)),
        (LATER, FILE, "bytes=0-4", Decision(200)),  # dates compare exactly
        (LM_IMF, ARCHIVE, "bytes=0-4", Decision(200)),
        ("garbage", FILE, "bytes=0-4", Decision(200)),
        (ETAG, FILE, "bytes=100-", Decision(416)),
        ('"other"', FILE, "bytes=100-", Decision(200)),
        (ETAG, FILE, "bytes=0-,1-,2-,3-,4-", Decision(200)),
    ],
)
def test_if_range(if_range: str, v: Validators, range_header: str, decision: Decision) -> None:
    assert decide("GET", {"range": range_header, "if-range": if_range}, v) == decision


@pytest.mark.parametrize("if_range", [ETAG, '"other"', "garbage"])
def test_if_range_without_range_is_ignored(if_range: str) -> None:
    assert decide("GET", {"if-range": if_range}, FILE) == Decision(200)


# --- HTTP-date (RFC 9110 §5.6.7) ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (LM_IMF, LM),
        ("Sunday, 06-Nov-94 08:49:37 GMT", LM),
        ("Sun Nov  6 08:49:37 1994", LM),
        ("Sun Nov 16 08:49:37 1994", LM + 10 * 86400),
        (EPOCH, 0),
        ("Thursday, 01-Jan-70 00:00:00 GMT", 0),
        ("Saturday, 01-Jan-00 00:00:00 GMT", 946684800),
        ("Wednesday, 31-Dec-69 23:59:59 GMT", 3155759999),  # 2069: POSIX pivot
        ("Thu, 29 Feb 2024 12:00:00 GMT", 1709208000),
        ("Sat, 31 Dec 2016 23:59:60 GMT", 1483228800),  # leap second
        ("Mon, 06 Nov 1994 08:49:37 GMT", LM),  # day name not cross-checked
    ],
)
def test_http_date_forms_parse(text: str, seconds: int) -> None:
    assert parse_http_date(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, ٠6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1_94 08:49:37 GMT",
        "Sun, 06 Nov +994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 0000 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT\n",
        "Sun,  06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "784111777",
        "Sun, 06 Nov 1994 08:49:37 GMT" + " " * 100_000,
    ],
)
def test_invalid_http_date_is_none(text: str) -> None:
    assert parse_http_date(text) is None


# --- Content-Range and multipart/byteranges (RFC 9110 §14.4, §14.6) -------------


@pytest.mark.parametrize(
    ("start", "stop", "size", "value"),
    [(0, 10, 100, "bytes 0-9/100"), (0, 1, 11, "bytes 0-0/11"), (9, 11, 11, "bytes 9-10/11")],
)
def test_content_range(start: int, stop: int, size: int, value: str) -> None:
    assert content_range(start, stop, size) == value


@pytest.mark.parametrize(("size", "value"), [(100, "bytes */100"), (0, "bytes */0")])
def test_unsatisfied_range(size: int, value: str) -> None:
    assert unsatisfied_range(size) == value


def assemble(items: list[bytes | tuple[int, int]], data: bytes) -> bytes:
    return b"".join(item if isinstance(item, bytes) else data[item[0] : item[1]] for item in items)


MULTIPART_CASES = [
    ((0, 1), (9, 11)),
    ((0, 2), (5, 9)),
    ((5, 7), (0, 2)),
    ((0, 11), (3, 4), (10, 11)),
    ((0, 1),),
]


@pytest.mark.parametrize("ranges", MULTIPART_CASES)
def test_multipart_total_length_equals_body(ranges: tuple[tuple[int, int], ...]) -> None:
    items, total = multipart_parts(ranges, SIZE, "text/plain", boundary_for(ETAG))
    assert total == len(assemble(items, DATA))


@pytest.mark.parametrize("ranges", MULTIPART_CASES)
def test_multipart_reads_back_with_email_parser(ranges: tuple[tuple[int, int], ...]) -> None:
    boundary = boundary_for(ETAG)
    items, _ = multipart_parts(ranges, SIZE, "application/octet-stream", boundary)
    head = f"Content-Type: multipart/byteranges; boundary={boundary}\r\n\r\n".encode()
    message = BytesParser().parsebytes(head + assemble(items, DATA))
    parts = message.get_payload()
    assert isinstance(parts, list)
    assert len(parts) == len(ranges)
    for part, (start, stop) in zip(parts, ranges, strict=True):
        assert isinstance(part, Message)
        assert part["Content-Type"] == "application/octet-stream"
        assert part["Content-Range"] == f"bytes {start}-{stop - 1}/{SIZE}"
        assert part.get_payload(decode=True) == DATA[start:stop]
    assert message.defects == []


@pytest.mark.parametrize("ranges", MULTIPART_CASES)
def test_multipart_reads_back_by_manual_split(ranges: tuple[tuple[int, int], ...]) -> None:
    boundary = boundary_for(ETAG).encode()
    items, _ = multipart_parts(ranges, SIZE, "text/plain", boundary.decode())
    body = assemble(items, DATA)
    assert body.startswith(b"--" + boundary + b"\r\n")
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n")
    inner = body[len(boundary) + 4 : -(len(boundary) + 8)]
    chunks = inner.split(b"\r\n--" + boundary + b"\r\n")
    assert len(chunks) == len(ranges)
    for chunk, (start, stop) in zip(chunks, ranges, strict=True):
        headers, payload = chunk.split(b"\r\n\r\n", 1)
        assert headers.split(b"\r\n") == [
            b"Content-Type: text/plain",
            f"Content-Range: bytes {start}-{stop - 1}/{SIZE}".encode(),
        ]
        assert payload == DATA[start:stop]


def test_multipart_items_alternate_literals_and_slices() -> None:
    items, _ = multipart_parts(((0, 1), (9, 11)), SIZE, "text/plain", "b")
    assert [type(item) for item in items] == [bytes, tuple, bytes, tuple, bytes]
    assert items[1::2] == [(0, 1), (9, 11)]


def test_multipart_without_content_type_has_only_content_range() -> None:
    items, total = multipart_parts(((2, 4),), SIZE, "", "b")
    assert items[0] == b"--b\r\nContent-Range: bytes 2-3/11\r\n\r\n"
    assert total == len(assemble(items, DATA))


@pytest.mark.parametrize(
    ("ranges", "content_type", "boundary"),
    [
        ((), "text/plain", "b"),
        (((0, 12),), "text/plain", "b"),
        (((5, 5),), "text/plain", "b"),
        (((-1, 2),), "text/plain", "b"),
        (((0, 2),), "text/plain\r\nSet-Cookie: x", "b"),
        (((0, 2),), "text/plain; name=é", "b"),
        (((0, 2),), "text/plain", "b\r\nX: y"),
        (((0, 2),), "text/plain", ""),
        (((0, 2),), "text/plain", "x" * 71),
        (((0, 2),), "text/plain", "a b"),
    ],
)
def test_multipart_rejects_bad_input(
    ranges: tuple[tuple[int, int], ...], content_type: str, boundary: str
) -> None:
    with pytest.raises(ValueError):
        multipart_parts(ranges, SIZE, content_type, boundary)


@pytest.mark.parametrize("seed", [ETAG, 'W/"x"', "", "é\udcff", "x" * 10_000])
def test_boundary_is_a_stable_ascii_token(seed: str) -> None:
    boundary = boundary_for(seed)
    assert boundary == boundary_for(seed)
    assert re.fullmatch(r"[0-9A-Za-z'()+_,\-./:=?]{1,70}", boundary)


def test_boundary_differs_between_seeds() -> None:
    assert boundary_for('"a"') != boundary_for('"b"')
