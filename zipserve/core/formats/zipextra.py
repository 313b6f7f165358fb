"""ZIP extra fields (APPNOTE 4.5): the Info-ZIP Unicode Path (0x7075) and WinZip AES (0x9901) fields.

Every extra field is a 2-byte header ID, a 2-byte data size, then the data,
all little-endian (APPNOTE 4.5.1).

Unicode Path (APPNOTE 4.6.9) goes in the local header and the central
record of every entry whose name is not ASCII, beside the UTF-8 flag (general
purpose bit 11, APPNOTE 4.4.4): readers that honour bit 11 read the header's
name, and readers that predate it (or ignore it, as some Windows unzippers
do) but know 0x7075 take the field's UTF-8 name, since its CRC-32 matches the
header's name bytes. ASCII names need neither: they read the same in every
code page.

WinZip AES (AE-x, "AES Encryption Information: Encryption Format") goes in
both headers of an encrypted entry, whose method is then 99; the field holds
the entry's actual compression method.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

UNICODE_PATH = 0x7075
WINZIP_AES = 0x9901
AES_METHOD = 99  # the method field of every AES entry (the real one is in the 0x9901 field)
AES_VERSION = 2  # AE-2: the CRC field is 0, the authentication code checks the data
AES_256 = 3  # strength: 1, 2, 3 are AES-128, -192, -256
AES_EXTRA_SIZE = 11  # header 4 + version 2 + vendor 2 + strength 1 + method 2
AES_VERSION_NEEDED = 51  # APPNOTE 4.4.3.2: 5.1 - file is encrypted using AES encryption
FLAG_ENCRYPTED = 0x1  # general purpose bit 0 (APPNOTE 4.4.4)
# An AES-256 entry's data: 16-byte salt and 2-byte verifier, the ciphertext, a 10-byte code.
AES_PREFIX = 18
AES_MAC = 10
AES_OVERHEAD = AES_PREFIX + AES_MAC

_HEADER = struct.Struct("<HH")
_UNICODE_HEAD = struct.Struct("<BL")  # version 1, CRC-32 of the header's name
_AES = struct.Struct("<H2sBH")  # version, vendor "AE", strength, actual method


class UnicodePath(NamedTuple):
    """A parsed 0x7075 field: its version, the CRC-32 it carries, and its name."""

    version: int
    name_crc: int
    name: str


class AesInfo(NamedTuple):
    """A parsed 0x9901 field: AE version, vendor ID, key strength and the actual method."""

    version: int
    vendor: bytes
    strength: int
    method: int


def field(tag: int, data: bytes) -> bytes:
    """Given a header ID and data, return the field (APPNOTE 4.5.1); raise ValueError over 65,535 bytes."""
    if len(data) > 0xFFFF:
        raise ValueError(f"extra field 0x{tag:04x} holds {len(data)} bytes, over 65,535")
    return _HEADER.pack(tag, len(data)) + data


def fields(extra: bytes) -> Iterator[tuple[int, bytes]]:
    """Given an extra block, yield (header ID, data) for each field; raise ValueError if one is cut short."""
    at = 0
    while at < len(extra):
        if at + 4 > len(extra):
            raise ValueError(f"extra block ends inside a field header at byte {at}")
        tag, size = _HEADER.unpack_from(extra, at)
        if at + 4 + size > len(extra):
            raise ValueError(f"extra field 0x{tag:04x} at byte {at} runs past the block")
        yield tag, extra[at + 4: at + 4 + size]
        at += 4 + size


def wants_unicode_path(name: str) -> bool:
    """Given an entry name, return whether its headers carry a Unicode Path field (non-ASCII names)."""
    return not name.isascii()


def unicode_path(name: str, written: bytes | None = None) -> bytes:
    """Given a name (folders with their "/") and the bytes its header holds, return its 0x7075 field.

    ``written`` defaults to the UTF-8 name, which is what a header with bit 11
    holds; the CRC-32 is of those bytes, so a reader can tell that the field
    still belongs to the name beside it (APPNOTE 4.6.9).
    """
    utf8 = name.encode("utf-8")
    crc = zlib.crc32(utf8 if written is None else written)
    return field(UNICODE_PATH, _UNICODE_HEAD.pack(1, crc) + utf8)


def unicode_path_size(name: str) -> int:
    """Given a name, return len(unicode_path(name)) without building it, for sized layouts."""
    return _HEADER.size + _UNICODE_HEAD.size + len(name.encode("utf-8"))


def parse_unicode_path(extra: bytes) -> UnicodePath | None:
    """Given an extra block, return its Unicode Path field, or None; raise ValueError if malformed."""
    for tag, data in fields(extra):
        if tag == UNICODE_PATH:
            if len(data) < _UNICODE_HEAD.size:
                raise ValueError(f"Unicode Path field of {len(data)} bytes, under 5")
            version, crc = _UNICODE_HEAD.unpack_from(data)
            return UnicodePath(version, crc, data[_UNICODE_HEAD.size:].decode("utf-8"))
    return None


def aes_extra(method: int, *, version: int = AES_VERSION, strength: int = AES_256) -> bytes:
    """Given an entry's actual compression method, return its WinZip AES field (0x9901)."""
    return field(WINZIP_AES, _AES.pack(version, b"AE", strength, method))


def parse_aes(extra: bytes) -> AesInfo | None:
    """Given an extra block, return its WinZip AES field, or None; raise ValueError if malformed."""
    for tag, data in fields(extra):
        if tag == WINZIP_AES:
            if len(data) != _AES.size:
                raise ValueError(f"WinZip AES field of {len(data)} bytes, not {_AES.size}")
            return AesInfo(*_AES.unpack(data))
    return None
