"""tar records (POSIX pax, with PAX headers for long and non-ASCII names and big sizes).

Headers come from the standard library's ``tarfile.TarInfo.tobuf``; owners are
written as 0 with no names and times in whole seconds, so the bytes depend
only on each entry's name, kind, mode, size and mtime.
"""

from __future__ import annotations

import struct
import tarfile
from collections.abc import Sequence

from zipserve.core.formats.layout import Layout, Piece
from zipserve.core.node import Entry

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: archives end on a record boundary, as tar writes them


def header(entry: Entry) -> bytes:
    """Given an entry, return its tar header block(s), PAX extended header included."""
    fields = _fields(entry)
    if fields is not None:
        return _ustar(*fields)
    info = tarfile.TarInfo(entry.name)
    info.type = tarfile.DIRTYPE if entry.is_dir else tarfile.REGTYPE
    info.mode = entry.node.mode
    info.size = 0 if entry.is_dir else entry.node.size
    info.mtime = entry.mtime_ns // 1_000_000_000
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def header_size(entry: Entry) -> int:
    """Given an entry, return the length of its header (one block unless it needs PAX records)."""
    node, name = entry.node, entry.name
    # What _fields checks, without building the fields: a plan asks this once a file.
    if (len(name) < 100 and name.isascii() and node.size < _OCTAL11
            and 0 <= entry.mtime_ns < _OCTAL11 * 1_000_000_000):
        return BLOCK
    return BLOCK if _fields(entry) is not None else len(header(entry))


def _fields(entry: Entry) -> tuple[bytes, int, int, int, bytes] | None:
    """Given an entry, return (name, mode, size, mtime, type) when a plain ustar block holds it, else None.

    That is what tarfile itself writes in PAX format when no PAX record is
    needed (an ASCII name of at most 100 bytes, size and time in 11 octal
    digits); building it here costs a few microseconds instead of ~40.
    """
    name = entry.name + "/" if entry.is_dir else entry.name
    size = 0 if entry.is_dir else entry.node.size
    mtime = entry.mtime_ns // 1_000_000_000
    if len(name) > 100 or not name.isascii() or not 0 <= mtime < _OCTAL11 or size >= _OCTAL11:
        return None
    kind = tarfile.DIRTYPE if entry.is_dir else tarfile.REGTYPE
    return name.encode("ascii"), entry.node.mode & 0o7777, size, mtime, kind


_OCTAL11 = 8**11
_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s12x")
_ZERO8 = b"%07o\0" % 0
# The byte sum of what every ustar block of ours holds besides its variable
# fields: uid and gid as zeros, the checksum field read as spaces, the magic.
_FIXED_SUM = 2 * sum(_ZERO8) + 8 * ord(" ") + sum(tarfile.POSIX_MAGIC)


def _ustar(name: bytes, mode: int, size: int, mtime: int, kind: bytes) -> bytes:
    """Given the fields, return one ustar header block with its checksum (POSIX.1-1988 layout)."""
    modes, sizes, mtimes = b"%07o\0" % mode, b"%011o\0" % size, b"%011o\0" % mtime
    # The checksum is the byte sum with the checksum field read as spaces.
    check = _FIXED_SUM + sum(name) + sum(modes) + sum(sizes) + sum(mtimes) + kind[0]
    return _USTAR.pack(name, modes, _ZERO8, _ZERO8, sizes, mtimes, b"%06o\0 " % check, kind, b"",
                       tarfile.POSIX_MAGIC, b"", b"", b"", b"", b"")


def padding(size: int) -> int:
    """Given a data size, return the zero bytes that bring it to a block boundary."""
    return -size % BLOCK


def end_size(total: int) -> int:
    """Given the bytes written so far, return the size of the end: two zero blocks, then record padding."""
    return 2 * BLOCK + (-(total + 2 * BLOCK) % RECORD)


def layout(entries: list[Entry]) -> Layout:
    """Given entries, return the archive's pieces: a header, then a file's data and its padding.

    Pieces are appended here, not through Layout.add: a plan makes three a
    file, and the calls cost more than the pieces.
    """
    out = Layout()
    pieces, offsets = out.pieces, out.offsets
    total = 0
    for i, entry in enumerate(entries):
        offsets.append(total)
        head = header_size(entry)
        pieces.append(Piece(total, head, "head", i))
        total += head
        size = entry.node.size if entry.node.kind == "file" else 0
        if size:
            pieces.append(Piece(total, size, "data", i))
            total += size
            pad = padding(size)
            if pad:
                pieces.append(Piece(total, pad, "pad", i))
                total += pad
    out.total = total
    out.add("end", end_size(total))
    return out


def meta(entries: Sequence[Entry], layout: Layout, piece: Piece, crc: int) -> bytes:
    """Given a tar's entries and layout and one of its metadata pieces, return the piece's bytes.

    tar records carry no CRC: `crc` is not used.
    """
    if piece.kind == "head":
        return header(entries[piece.index])
    return bytes(piece.size)  # padding and the end blocks are zeros
