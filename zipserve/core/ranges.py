"""Range, If-Range and conditional-request decisions (RFC 9110 §13, §14). Pure.

Strings and ints in, frozen dataclasses out: the HTTP layer asks `decide` what
to answer before it sends a byte, then lays out a multipart body with
`multipart_parts` when several ranges remain.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# A Range header longer than this is ignored unparsed, so a hostile header
# costs one len() (CVE-2011-3192, "Apache Killer").
MAX_RANGE_HEADER = 8192
# Starlette's cap on range-specs; more than this and Range is ignored.
MAX_RANGE_SPECS = 100
# The longest HTTP-date (RFC 850 with "Wednesday") is 33 characters.
MAX_DATE_LENGTH = 64

# Numbers with more digits than this exceed any representation length; they are
# capped instead of converted (int() refuses over 4300 digits, and is slow).
_MAX_DIGITS = 20
_HUGE = 10**_MAX_DIGITS

_GET_OR_HEAD = frozenset({"GET", "HEAD"})

# RFC 9110 §14.1.1: int-range = first-pos "-" [ last-pos ]; suffix-range =
# "-" suffix-length; DIGIT is ASCII 0-9 only (no "_", "+", spaces, or Unicode).
_RANGE_SPEC = re.compile(r"([0-9]+)-([0-9]*)|-([0-9]+)")
# RFC 9110 §5.6.2: token; the range unit must be one.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §8.8.3: entity-tag = [ W/ ] DQUOTE *etagc DQUOTE, as a list member.
_ETAG_ITEM = re.compile(r'[ \t,]*(W/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?=,|\Z)')
_LIST_TAIL = re.compile(r"[ \t,]*")
# RFC 2046 §5.1.1: bchars, 1 to 70 of them.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=?]{1,70}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_DAYS = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAYS = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = "(" + "|".join(_MONTHS) + ")"
_TIME = "([0-9]{2}):([0-9]{2}):([0-9]{2})"
# RFC 9110 §5.6.7: IMF-fixdate, then the two obsolete forms recipients must accept.
_IMF_FIXDATE = re.compile(_DAYS + r", ([0-9]{2}) " + _MONTH + r" ([0-9]{4}) " + _TIME + " GMT")
_RFC850_DATE = re.compile(_LONG_DAYS + r", ([0-9]{2})-" + _MONTH + r"-([0-9]{2}) " + _TIME + " GMT")
_ASCTIME_DATE = re.compile(_DAYS + " " + _MONTH + r" ([0-9]{2}| [0-9]) " + _TIME + r" ([0-9]{4})")

_Spec = tuple[int | None, int | None]  # (first, last) or (None, suffix-length)


@dataclass(frozen=True)
class Validators:
    """What the server knows about the selected representation."""

    size: int  # full representation length in bytes
    etag: str | None  # strong ETag with quotes, e.g. '"zs1-ab12"'; None if none
    last_modified: int | None  # POSIX seconds; None when there is no date validator


@dataclass(frozen=True)
class Decision:
    """The answer's status and, for 206, the half-open byte ranges to send."""

    status: int  # 200, 206, 304, 412 or 416
    ranges: tuple[tuple[int, int], ...] = ()


def decide(method: str, headers: Mapping[str, str], v: Validators) -> Decision:
    """Given a request's method and lower-cased headers, return what to answer.

    Empty header values count as absent (as Go's net/http does). Never raises.
    """
    status = _preconditions(method, headers, v)
    if status is not None:
        return Decision(status)
    # RFC 9110 §14.2: range handling is defined for GET only; we also honour it
    # on HEAD so that HEAD shows the headers GET would get (as Go does).
    value = _header(headers, "range")
    if method not in _GET_OR_HEAD or value is None:
        return Decision(200)
    # RFC 9110 §13.2.2 step 5 and §13.1.5: If-Range only matters with Range.
    if_range = _header(headers, "if-range")
    if if_range is not None and not _if_range_holds(if_range, v):
        return Decision(200)
    return _range_decision(value, v.size)


def content_range(start: int, stop: int, size: int) -> str:
    """Given a half-open range and the full length, return a Content-Range value."""
    return f"bytes {start}-{stop - 1}/{size}"  # RFC 9110 §14.4: last-pos is inclusive


def unsatisfied_range(size: int) -> str:
    """Given the full length, return the Content-Range value of a 416 (RFC 9110 §14.4)."""
    return f"bytes */{size}"


def multipart_parts(
    ranges: Sequence[tuple[int, int]], size: int, content_type: str, boundary: str
) -> tuple[list[bytes | tuple[int, int]], int]:
    """Given ranges, return the multipart/byteranges layout and its total length.

    Items are literal bytes or (start, stop) slices of the representation
    (RFC 9110 §14.6, RFC 2046 §5.1.1). Raises ValueError on no ranges, a range
    outside 0..size, a boundary that is not 1-70 bchars (space excluded), or a
    control character or non-ASCII text in content_type.
    """
    if not ranges:
        raise ValueError("multipart/byteranges needs at least one range")
    if not _BOUNDARY.fullmatch(boundary):
        raise ValueError(f"invalid multipart boundary {boundary!r}")
    if _CONTROL.search(content_type):
        raise ValueError("control character in content type")
    items: list[bytes | tuple[int, int]] = []
    total = 0
    delimiter = b"--" + boundary.encode("ascii")
    for index, (start, stop) in enumerate(ranges):
        if not 0 <= start < stop <= size:
            raise ValueError(f"range {start}-{stop} outside 0-{size}")
        # The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
        head = (b"\r\n" if index else b"") + delimiter + b"\r\n"
        if content_type:
            head += b"Content-Type: " + content_type.encode("ascii") + b"\r\n"
        head += b"Content-Range: " + content_range(start, stop, size).encode("ascii")
        head += b"\r\n\r\n"
        items += [head, (start, stop)]
        total += len(head) + stop - start
    closing = b"\r\n" + delimiter + b"--\r\n"
    items.append(closing)
    return items, total + len(closing)


def boundary_for(etag_or_seed: str) -> str:
    """Given an ETag or other seed, return a stable multipart boundary (ASCII token)."""
    # Stable so that the same request on the same representation gives the same
    # bytes, on every worker; 128 bits so it will not occur in the data by chance.
    digest = hashlib.sha256(etag_or_seed.encode("utf-8", "surrogatepass")).hexdigest()
    return "zipserve-" + digest[:32]


def parse_http_date(value: str) -> int | None:
    """Given an HTTP-date (RFC 9110 §5.6.7), return POSIX seconds, or None if invalid."""
    if len(value) > MAX_DATE_LENGTH:
        return None
    if match := _IMF_FIXDATE.fullmatch(value):
        day, month, year, hh, mm, ss = match.groups()
        return _timestamp(int(year), month, day, hh, mm, ss)
    if match := _RFC850_DATE.fullmatch(value):
        day, month, yy, hh, mm, ss = match.groups()
        return _timestamp(_full_year(int(yy)), month, day, hh, mm, ss)
    if match := _ASCTIME_DATE.fullmatch(value):
        month, day, hh, mm, ss, year = match.groups()
        return _timestamp(int(year), month, day.lstrip(" "), hh, mm, ss)
    return None


# --- preconditions (RFC 9110 §13.2.2) ---------------------------------------


def _preconditions(method: str, headers: Mapping[str, str], v: Validators) -> int | None:
    """Given a request, return 304 or 412 when a precondition decides it, else None."""
    if not _write_guard_holds(headers, v):
        return 412
    if _not_modified(method, headers, v):
        # §13.2.2 step 3: a failed If-None-Match is 304 for GET/HEAD, else 412.
        return 304 if method in _GET_OR_HEAD else 412
    return None


def _write_guard_holds(headers: Mapping[str, str], v: Validators) -> bool:
    """Given headers, return whether If-Match, else If-Unmodified-Since, holds."""
    if_match = _header(headers, "if-match")
    if if_match is not None:
        return _if_match_holds(if_match, v.etag)  # §13.2.2 step 1
    # §13.2.2 step 2 and §13.1.4: only without If-Match; ignored when the
    # representation has no modification date or the date is invalid.
    date = _date_header(headers, "if-unmodified-since")
    return date is None or v.last_modified is None or v.last_modified <= date


def _not_modified(method: str, headers: Mapping[str, str], v: Validators) -> bool:
    """Given headers, return whether If-None-Match, else If-Modified-Since, says unchanged."""
    if_none_match = _header(headers, "if-none-match")
    if if_none_match is not None:
        return _if_none_match_matches(if_none_match, v.etag)  # §13.2.2 step 3
    if method not in _GET_OR_HEAD:
        return False  # §13.1.3: If-Modified-Since is for GET and HEAD only
    # §13.2.2 step 4: only without If-None-Match; ignored as in §13.1.4.
    date = _date_header(headers, "if-modified-since")
    return date is not None and v.last_modified is not None and v.last_modified <= date


def _if_match_holds(value: str, etag: str | None) -> bool:
    """Given an If-Match value, return whether it holds (RFC 9110 §13.1.1)."""
    if value == "*":
        return True  # a current representation exists, or we would not be here
    tags = _parse_etags(value)
    # A malformed list holds no tag, so it fails: the client asked for a guard.
    return tags is not None and any(_strong_match(tag, etag) for tag in tags)


def _if_none_match_matches(value: str, etag: str | None) -> bool:
    """Given an If-None-Match value, return whether any member matches (RFC 9110 §13.1.2)."""
    if value == "*":
        return True
    tags = _parse_etags(value)
    # §13.1.2: weak comparison. A malformed list matches nothing.
    return tags is not None and any(_weak_match(tag, etag) for tag in tags)


def _if_range_holds(value: str, v: Validators) -> bool:
    """Given an If-Range value, return whether Range may apply (RFC 9110 §13.1.5)."""
    if value.startswith(('"', "W/")):
        tags = _parse_etags(value)
        # An entity tag must be one strong tag that strongly matches.
        return tags is not None and len(tags) == 1 and _strong_match(tags[0], v.etag)
    date = parse_http_date(value)
    # A date must equal Last-Modified exactly; we do not also require it to be a
    # strong validator (one second older than Date, §8.8.2.2), as Go does not.
    return date is not None and v.last_modified is not None and date == v.last_modified


def _parse_etags(value: str) -> list[str] | None:
    """Given an entity-tag list, return its members as written, or None if malformed."""
    tags: list[str] = []
    position = 0
    while match := _ETAG_ITEM.match(value, position):
        tags.append((match.group(1) or "") + match.group(2))
        position = match.end()
    # RFC 9110 §5.6.1.2: empty list elements are allowed and ignored.
    if _LIST_TAIL.fullmatch(value, position) is None or not tags:
        return None
    return tags


def _strong_match(tag: str, etag: str | None) -> bool:
    """Given a listed tag, return whether it strongly matches etag (RFC 9110 §8.8.3.2)."""
    return etag is not None and not tag.startswith("W/") and tag == etag


def _weak_match(tag: str, etag: str | None) -> bool:
    """Given a listed tag, return whether it weakly matches etag (RFC 9110 §8.8.3.2)."""
    return etag is not None and tag.removeprefix("W/") == etag.removeprefix("W/")


# --- Range (RFC 9110 §14) -----------------------------------------------------


def _range_decision(value: str, size: int) -> Decision:
    """Given a Range value and the representation length, return 200, 206 or 416."""
    specs = _parse_range(value)
    if specs is None:
        return Decision(200)  # §14.2: a server MAY ignore Range; we do when invalid
    if size == 0:
        # RFC 9110 §14.1.2 would make every range on an empty representation
        # unsatisfiable (416). We send the empty 200 instead, as nginx and Go do:
        # "curl -C -" or a player asking "bytes=0-" of an empty file gets the
        # empty file, not an error.
        return Decision(200)
    ranges = [r for spec in specs if (r := _satisfiable(spec, size)) is not None]
    if not ranges:
        return Decision(416)  # §15.5.17: no range-spec is satisfiable
    if sum(stop - start for start, stop in ranges) > size:
        # Overlapping ranges asking for more than the whole: send the whole, as
        # Go does (§14.2 lets a server ignore Range; CVE-2011-3192).
        return Decision(200)
    return Decision(206, _coalesce(ranges))


def _parse_range(value: str) -> list[_Spec] | None:
    """Given a Range value, return its byte range-specs, or None to ignore it."""
    if len(value) > MAX_RANGE_HEADER:
        return None
    unit, equals, range_set = value.partition("=")
    # §14.1: range units are case-insensitive; §14.2: ignore units we do not know.
    if not equals or not _TOKEN.fullmatch(unit) or unit.lower() != "bytes":
        return None
    # §5.6.1.2: OWS around commas and empty list elements are allowed.
    elements = [element.strip(" \t") for element in range_set.split(",")]
    texts = [element for element in elements if element]
    if not texts or len(texts) > MAX_RANGE_SPECS:
        return None  # §14.1.1: range-set is 1#range-spec; too many: Starlette's cap
    specs: list[_Spec] = []
    for text in texts:
        spec = _parse_spec(text)
        if spec is None:
            return None  # one invalid spec makes the whole header invalid
        specs.append(spec)
    return specs


def _parse_spec(text: str) -> _Spec | None:
    """Given one range-spec, return (first, last) or (None, suffix), or None if invalid."""
    match = _RANGE_SPEC.fullmatch(text)
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        return None, _digits(suffix)
    last_pos = _digits(last) if last else None
    if last_pos is not None and last_pos < _digits(first):
        return None  # §14.1.1: last-pos below first-pos makes the int-range invalid
    return _digits(first), last_pos


def _satisfiable(spec: _Spec, size: int) -> tuple[int, int] | None:
    """Given a range-spec and a length > 0, return the clamped half-open range, or None."""
    first, last = spec
    if first is None:
        # §14.1.2: a suffix-range is satisfiable when its length is non-zero.
        suffix = last if last is not None else 0
        return (max(size - suffix, 0), size) if suffix > 0 else None
    if first >= size:
        return None  # §14.1.2: first-pos must be below the length
    # §14.1.2: a last-pos past the end is replaced by length - 1.
    stop = size if last is None else min(last + 1, size)
    return first, stop


def _coalesce(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Given ranges, merge overlapping or adjacent ones, keeping request order."""
    # §15.3.7.2: a server MAY coalesce overlapping ranges, and SHOULD send the
    # parts in the order requested, minus coalesced ones: each merged range
    # takes the place of its earliest member.
    order = sorted(range(len(ranges)), key=ranges.__getitem__)
    merged: list[tuple[int, int, int]] = []  # (start, stop, earliest index)
    for index in order:
        start, stop = ranges[index]
        if merged and start <= merged[-1][1]:
            first, last, earliest = merged[-1]
            merged[-1] = (first, max(last, stop), min(earliest, index))
        else:
            merged.append((start, stop, index))
    merged.sort(key=lambda item: item[2])
    return tuple((start, stop) for start, stop, _ in merged)


# --- small helpers -----------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Given headers and a lower-case name, return its trimmed value, None if absent or empty."""
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip(" \t")  # §5.5: leading and trailing OWS is not part of the value
    return value or None


def _date_header(headers: Mapping[str, str], name: str) -> int | None:
    """Given headers and a name, return its HTTP-date as POSIX seconds, or None."""
    value = _header(headers, name)
    return None if value is None else parse_http_date(value)


def _digits(text: str) -> int:
    """Given ASCII digits, return their value, capped above any representation length."""
    significant = text.lstrip("0")
    return _HUGE if len(significant) > _MAX_DIGITS else int(significant or "0")


def _full_year(yy: int) -> int:
    """Given an RFC 850 two-digit year, return the full year."""
    # §5.6.7 wants "more than 50 years in the future -> the past century", which
    # needs a clock; this module has none, so use the POSIX pivot: 70-99 -> 19yy.
    return 1900 + yy if yy >= 70 else 2000 + yy


def _timestamp(year: int, month: str, day: str, hh: str, mm: str, ss: str) -> int | None:
    """Given checked ASCII date fields, return POSIX seconds, or None if out of range."""
    month_number = _MONTHS.index(month) + 1
    if year < 1 or int(hh) > 23 or int(mm) > 59 or int(ss) > 60:
        return None  # §5.6.7: second 60 is a leap second
    if not 1 <= int(day) <= calendar.monthrange(year, month_number)[1]:
        return None
    return calendar.timegm((year, month_number, int(day), int(hh), int(mm), int(ss)))
