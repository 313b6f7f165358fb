"""tar records (POSIX pax, with PAX headers for long and non-ASCII names and big sizes).

Headers come from the standard library's ``tarfile.TarInfo.tobuf``; owners are
written as 0 with no names and times in whole seconds, so the bytes depend
only on each entry's name, kind, mode, size and mtime.
"""

from __future__ import annotations

import tarfile

from ..node import Entry
from .layout import Layout

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: archives end on a record boundary, as tar writes them


def header(entry: Entry) -> bytes:
    """Given an entry, return its tar header block(s), PAX extended header included."""
    info = tarfile.TarInfo(entry.name)
    info.type = tarfile.DIRTYPE if entry.is_dir else tarfile.REGTYPE
    info.mode = entry.node.mode
    info.size = 0 if entry.is_dir else entry.node.size
    info.mtime = entry.node.mtime_ns // 1_000_000_000
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> int:
    """Given a data size, return the zero bytes that bring it to a block boundary."""
    return -size % BLOCK


def end_size(total: int) -> int:
    """Given the bytes written so far, return the size of the end: two zero blocks, then record padding."""
    return 2 * BLOCK + (-(total + 2 * BLOCK) % RECORD)


def layout(entries: list[Entry]) -> Layout:
    """Given entries, return the archive's pieces."""
    out = Layout()
    for i, entry in enumerate(entries):
        out.offsets.append(out.total)
        out.add("head", len(header(entry)), i)
        if not entry.is_dir:
            out.add("data", entry.node.size, i)
            out.add("pad", padding(entry.node.size), i)
    out.add("end", end_size(out.total))
    return out
