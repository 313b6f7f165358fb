"""SHA256SUMS: the checksum file ``sha256sum -c`` reads, from names and digests (pure).

One line a file, sorted by the name's UTF-8 bytes (``LC_ALL=C sort``):
``<64 lowercase hex>  <name>\\n`` (two spaces: text mode, which on POSIX
reads the same bytes). A name holding a backslash, a newline or a carriage
return is written as GNU coreutils 9 writes it: the line starts with a
backslash, and the name has ``\\\\``, ``\\n`` and ``\\r`` in their place, so
each line stays one line and ``sha256sum -c`` restores the name. (Coreutils
8 reads ``\\\\`` and ``\\n`` but not ``\\r``; a name with a carriage return is
the only one it would refuse.) Names are the archive's, relative to its root,
so the file checks the tree extracted beside it.

The length of the file depends only on the names, so a sized archive knows
its Content-Length before a single digest: ``sums_size``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zipserve.core.node import Entry, Node

SUMS_NAME = "SHA256SUMS"
SUMS_ORIGIN = "sums"  # the origin of the node sums_entry makes: no source holds it
DIGEST_SIZE = 32
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r"})


def _written(name: str) -> tuple[bytes, bool]:
    """Given a name, return its bytes as the line holds them and whether the line is escaped."""
    escaped = "\\" in name or "\n" in name or "\r" in name
    text = name.translate(_ESCAPES) if escaped else name
    return text.encode("utf-8", "surrogateescape"), escaped


def line(name: str, digest: bytes) -> bytes:
    """Given a file's name in the archive and its SHA-256 digest, return its line; raise ValueError."""
    if len(digest) != DIGEST_SIZE:
        raise ValueError(f"a SHA-256 digest is {DIGEST_SIZE} bytes, not {len(digest)}")
    written, escaped = _written(name)
    return (b"\\" if escaped else b"") + digest.hex().encode() + b"  " + written + b"\n"


def _order(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def sums(files: Iterable[tuple[str, bytes]]) -> bytes:
    """Given (name, digest) for every file, return the whole SHA256SUMS, sorted by name."""
    return b"".join(line(name, digest) for name, digest in sorted(files, key=lambda f: _order(f[0])))


def sums_size(names: Iterable[str]) -> int:
    """Given every file's name, return len(sums(...)) without the digests, for sized layouts."""
    total = 0
    for name in names:
        written, escaped = _written(name)
        total += escaped + 2 * DIGEST_SIZE + 2 + len(written) + 1
    return total


def sums_entry(entries: Sequence[Entry]) -> Entry:
    """Given an archive's entries, return the SHA256SUMS entry that lists their files, for a layout.

    Its size comes from the names alone; its time is the newest entry's. Its
    node is no file of any source: the encoder writes its data (a "sums" piece).
    """
    names = [e.name for e in entries if not e.is_dir]
    newest = max((e.mtime_ns for e in entries), default=0)
    node = Node((SUMS_NAME,), "file", sums_size(names), newest, 0o644, 0, 0, 0, origin=SUMS_ORIGIN)
    return Entry(SUMS_NAME, node)
