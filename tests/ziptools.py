"""A tiny test-only ZIP assembler: members whose bytes are already encoded, framed as APPNOTE 4.3 says.

It lets tests build what the server does not build yet (AES entries, Unicode
Path fields, names in a legacy code page) and hand it to real readers.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from zipserve.core.formats import zipextra
from zipserve.encode import aes

FLAG_DESCRIPTOR = 0x8
DEFLATED = 8
FLAG_UTF8 = 0x800
MTIME = (2023, 11, 14, 22, 13, 20)


@dataclass
class Member:
    """One entry as written: its payload (compressed and/or encrypted) and header fields."""

    name: str
    payload: bytes
    size: int  # uncompressed
    crc: int
    method: int = 0
    flags: int = 0
    extra: bytes = b""
    version: int = 20
    written: bytes | None = None  # the header's name bytes; default UTF-8
    descriptor: bool = False  # sizes and CRC after the data (bit 3), zeros in the local header

    def name_bytes(self) -> bytes:
        return self.name.encode("utf-8") if self.written is None else self.written


def stored(name: str, data: bytes) -> Member:
    return Member(name, data, len(data), zlib.crc32(data))


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def deflated(name: str, data: bytes) -> Member:
    return Member(name, deflate(data), len(data), zlib.crc32(data), method=DEFLATED)


def _dos() -> tuple[int, int]:
    y, mo, d, h, mi, s = MTIME
    return (y - 1980) << 9 | mo << 5 | d, h << 11 | mi << 5 | s // 2


def assemble(members: list[Member]) -> bytes:
    """Given members, return a whole archive: local headers, data, central directory, end record."""
    out = bytearray()
    central = bytearray()
    date, time = _dos()
    for m in members:
        name = m.name_bytes()
        flags = m.flags | (FLAG_UTF8 if m.written is None and not m.name.isascii() else 0)
        flags |= FLAG_DESCRIPTOR if m.descriptor else 0
        offset = len(out)
        head_crc, head_csize, head_size = (0, 0, 0) if m.descriptor else (m.crc, len(m.payload), m.size)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", m.version, flags, m.method, time, date,
                           head_crc, head_csize, head_size, len(name), len(m.extra)) + name + m.extra
        out += m.payload
        if m.descriptor:
            out += struct.pack("<4s3L", b"PK\x07\x08", m.crc, len(m.payload), m.size)
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x0300 | 63, m.version, flags, m.method,
                               time, date, m.crc, len(m.payload), m.size, len(name), len(m.extra), 0, 0,
                               0, 0o100644 << 16, offset) + name + m.extra
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + end)


def central_extras(archive: bytes) -> dict[bytes, bytes]:
    """Given an archive, return each central record's name bytes -> extra block (an independent parse)."""
    end = archive.rindex(b"PK\x05\x06")
    count, cd_size, cd_start = struct.unpack_from("<H2L", archive, end + 10)
    out: dict[bytes, bytes] = {}
    at = cd_start
    for _ in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<3H", archive, at + 28)
        name = archive[at + 46: at + 46 + name_len]
        out[name] = archive[at + 46 + name_len: at + 46 + name_len + extra_len]
        at += 46 + name_len + extra_len + comment_len
    return out


def unicode_member(name: str, data: bytes, written: bytes, field_name: str | None = None) -> Member:
    """Given a name, its data and legacy header bytes, return a stored member carrying a 0x7075 field."""
    m = stored(name, data)
    m.written = written
    m.extra = zipextra.unicode_path(field_name or name, written)
    return m


def aes_member(name: str, data: bytes, password: bytes, salt: bytes, *, method: int = 0,
               descriptor: bool = False) -> Member:
    """Given an entry's data, a password and salt, return it as a WinZip AE-2 member (method 99, CRC 0)."""
    payload = deflate(data) if method == DEFLATED else data
    extra = zipextra.aes_extra(method)
    if zipextra.wants_unicode_path(name):
        extra += zipextra.unicode_path(name)
    return Member(name, aes.encrypt(password, salt, payload), len(data), 0, method=zipextra.AES_METHOD,
                  flags=zipextra.FLAG_ENCRYPTED, extra=extra, version=zipextra.AES_VERSION_NEEDED,
                  descriptor=descriptor)
