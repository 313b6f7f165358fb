"""Input chunks -> one gzip member (RFC 1952) around a parallel raw deflate stream."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from zipserve.encode.compress.deflate import Crc, deflate_raw
from zipserve.encode.compress.engine import DEFAULT_BLOCK, Pool
from zipserve.encode.ordered import Stream


def _header(mtime: int, filename: str | None, level: int) -> bytes:
    """Given the member's mtime, name and level, return its RFC 1952 (2.3) header."""
    name = _latin1_basename(filename)
    flags = 0x08 if name is not None else 0  # FNAME
    # MTIME 0 means "no time stamp"; XFL 2 = slowest/best, 4 = fastest (RFC 1952 2.3.1).
    stamp = mtime if 0 <= mtime <= 0xFFFFFFFF else 0
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    os_unknown = 255  # the same bytes whatever system serves them
    header = struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, flags, stamp, xfl, os_unknown)
    return header + (name + b"\0" if name is not None else b"")


def _latin1_basename(filename: str | None) -> bytes | None:
    """Given a file name, return its last component in ISO 8859-1, or None if it has none.

    RFC 1952 2.3.1: FNAME is the original name stripped of directories, latin-1, zero-ended.
    """
    if filename is None:
        return None
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if not base or "\0" in base:
        return None
    try:
        return base.encode("latin-1")
    except UnicodeEncodeError:
        return None


def gzip_stream(
    chunks: Iterable[bytes],
    *,
    level: int,
    pool: Pool,
    mtime: int = 0,
    filename: str | None = None,
    block_size: int = DEFAULT_BLOCK,
) -> Stream:
    """Given the input as chunks, return one gzip member (RFC 1952) of it, deterministically.

    Raises ValueError as deflate_raw does.
    """
    crc = Crc()
    body = deflate_raw(chunks, level=level, pool=pool, block_size=block_size, crc=crc)
    return _member(_header(mtime, filename, level), body, crc)


def _member(header: bytes, body: Stream, crc: Crc) -> Stream:
    """Given a header, a deflate body and the Crc it fills, return the whole member."""
    yield header
    yield from body  # closing this generator closes body too, cancelling its blocks
    # RFC 1952 2.3.1: ISIZE is the input size modulo 2**32.
    yield struct.pack("<II", crc.value, crc.size & 0xFFFFFFFF)


