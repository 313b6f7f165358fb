"""Entry names given by a caller: one safe spelling, and no two entries that extract to one place (pure).

An archive member's name is what an extractor writes to disk, so a name must
stay inside the folder it is extracted into (no ``..``, no leading ``/``, no
drive letter, no backslash: APPNOTE 4.4.17.1 wants forward slashes and no
drive or device letter) and must not hide what it is (no control characters,
no bidirectional overrides that make ``gpj.exe`` read ``exe.jpg``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

MAX_COMPONENT_BYTES = 255  # NAME_MAX on common filesystems
MAX_NAME_BYTES = 4096  # PATH_MAX on Linux

_DRIVE = re.compile(r"^[A-Za-z]:")
# Unicode bidirectional embeddings, overrides and isolates (the "Trojan Source" characters),
# and line/paragraph separators that would break a name across lines in listings.
_HIDING = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")


def shown(raw: str) -> str:
    """Given a raw name, return a bounded, printable form for error messages."""
    text = raw.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= 200 else text[:200] + "..."


def utf8_length(text: str) -> int:
    """Given a str that may hold lone surrogates, return its length in UTF-8 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))


def bad_characters(text: str) -> str | None:
    """Given a name, return why its characters are unsafe, or None when they are fine."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (JSON "\ud800") are no UTF-8 a reader could decode.
        return "is not valid UTF-8"
    if "\x00" in text:
        return "contains a NUL character"
    for c in text:
        if unicodedata.category(c) == "Cc" or c in _HIDING:
            return f"contains the control character U+{ord(c):04X}"
    return None


def parse_entry_name(raw: str) -> tuple[str, bool]:
    """Given a caller's entry name, return (name without a trailing '/', is_dir); raise ValueError.

    A name ending in '/' is a folder. Refuses empty, ``.`` and ``..``
    components, absolute names, drive letters, backslashes, control
    characters, invalid UTF-8 and overlong names or components.
    """
    if raw == "":
        raise ValueError("name is empty")
    bad = bad_characters(raw)
    if bad is not None:
        raise ValueError(f"name {bad}")
    if utf8_length(raw) > MAX_NAME_BYTES:
        raise ValueError(f"name is longer than {MAX_NAME_BYTES} bytes")
    if "\\" in raw:
        raise ValueError("name contains a backslash: separate folders with '/'")
    if raw.startswith("/") or _DRIVE.match(raw):
        raise ValueError("name must be relative (no leading '/', no drive letter)")
    is_dir = raw.endswith("/")
    name = raw[:-1] if is_dir else raw
    for part in name.split("/"):
        if part in ("", ".", ".."):
            shown_part = "an empty" if part == "" else f"a {part!r}"
            raise ValueError(f"name has {shown_part} component")
        if utf8_length(part) > MAX_COMPONENT_BYTES:
            raise ValueError(f"name has a component longer than {MAX_COMPONENT_BYTES} bytes")
    return name, is_dir


def name_key(name: str) -> str:
    """Given an entry name, return the key two names that extract to one file share.

    NFC: "é" as one code point and as "e" plus a combining accent look the
    same, and macOS filesystems store them as one name. Case is kept: tar and
    ZIP hold both "A" and "a", and so do most filesystems.
    """
    return unicodedata.normalize("NFC", name)


def first_conflict(names: Sequence[tuple[str, bool]]) -> tuple[int, int, str] | None:
    """Given (name, is_dir) pairs, return (index, earlier index, why) of the first clash, or None.

    Clashes: the same name twice (as files, folders, or one of each), and a
    file that is also a parent folder of another entry.
    """
    seen: dict[str, tuple[int, bool]] = {}
    for i, (name, is_dir) in enumerate(names):
        key = name_key(name)
        if key in seen:
            j = seen[key][0]
            return i, j, f"has the same name as entries[{j}]"
        seen[key] = (i, is_dir)
    for i, (name, _) in enumerate(names):
        parts = name_key(name).split("/")
        for depth in range(1, len(parts)):
            parent = seen.get("/".join(parts[:depth]))
            if parent is not None and not parent[1]:
                return i, parent[0], f"is inside entries[{parent[0]}], which is a file"
    return None
