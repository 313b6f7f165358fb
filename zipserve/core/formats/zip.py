"""ZIP records (APPNOTE 6.3.10) on zipstream-ng's entry record, and the sized layout.

zipstream-ng frames every entry with a data descriptor and switches to ZIP64 at
zipfile's 2 GiB. Resumable archives need three changes, made here in one
subclass rather than a copy of its writer:

- stored entries carry CRC and sizes in the local header and no data
  descriptor (Java's ZipInputStream: "only DEFLATED entries can have EXT
  descriptor"), which the CRC cache makes cheap;
- ZIP64 fields only where a value reaches its sentinel (>= 0xFFFFFFFF, or
  >= 0xFFFF entries: APPNOTE 4.4.8, 4.4.21, 4.5.3);
- the UTC mtime in an extended-timestamp field (0x5455) beside the DOS time,
  which is itself written in UTC so every machine writes the same bytes;
- a non-ASCII name carries the Info-ZIP Unicode Path field (0x7075, APPNOTE
  4.6.9) after the timestamp, in both headers, beside the UTF-8 flag (bit 11);
- an encrypted ("sealed") entry is WinZip AES-256, AE-2: method 99, flag bit 0,
  version needed 5.1 (APPNOTE 4.4.3.2), CRC 0, the 0x9901 field (holding the
  real method) last in both headers, and its data 28 bytes longer (salt and
  verifier before the ciphertext, the authentication code after). In a sized
  layout the salt and code are pieces of their own, "salt" and "mac", which
  the encoder fills: they depend on the password.
"""

from __future__ import annotations

import stat
import struct
import time
import zipfile
from collections.abc import Sequence

from zipstream.ng import ZipStreamInfo  # type: ignore[import-untyped]

from zipserve.core.formats import zipextra
from zipserve.core.formats.layout import Layout, Piece
from zipserve.core.node import Entry

ZIP64_LIMIT = 0xFFFFFFFF  # sizes and offsets at or above this live in ZIP64 fields
COUNT_LIMIT = 0xFFFF
FLAG_DATA_DESCRIPTOR = 0x08
FLAG_UTF8 = 0x800
MSDOS_DIRECTORY = 0x10
DOS_MIN, DOS_MAX = (1980, 1, 1, 0, 0, 0), (2107, 12, 31, 23, 59, 58)
# Record layouts and signatures (APPNOTE 4.3.12, 4.3.14, 4.3.15, 4.3.16).
CENTRAL_DIR = ("<4s4B4HL2L5H2L", b"PK\x01\x02")
END64 = ("<4sQ2H2L4Q", b"PK\x06\x06")
END64_LOCATOR = ("<4sLQL", b"PK\x06\x07")
END = ("<4s4H2LH", b"PK\x05\x06")
ZIP64_VERSION = 45
# Deflate never expands input by more than 5 bytes per 16 KiB stored block, plus a few.
DEFLATE_SLACK = 1.001


class EntryInfo(ZipStreamInfo):  # type: ignore[misc]
    """zipstream-ng's record with our ZIP64 threshold in the central directory."""

    def central_record(self) -> bytes:
        """Return the central directory header (APPNOTE 4.3.12) for this entry."""
        extra64: list[int] = []
        file_size, compress_size, offset = self.file_size, self.compress_size, self.header_offset
        # The sizes go in whenever the field is written, even when only the offset
        # needs it: after an entry of exactly 0xFFFFFFFF bytes, unzip 6.0 reads the
        # next entry's ZIP64 field as if it began with the size (stale state).
        if max(file_size, compress_size) >= ZIP64_LIMIT or offset >= ZIP64_LIMIT:
            extra64 += [file_size, compress_size]
            file_size = compress_size = ZIP64_LIMIT
        if offset >= ZIP64_LIMIT:
            extra64.append(offset)
            offset = ZIP64_LIMIT
        extra = self.extra
        version = 20
        if extra64:
            extra = struct.pack(f"<HH{len(extra64)}Q", 1, 8 * len(extra64), *extra64) + extra
            version = ZIP64_VERSION
        if self.compress_type == zipextra.AES_METHOD:
            version = zipextra.AES_VERSION_NEEDED
        dosdate, dostime = _dos(self.date_time)
        name, flags = self._encodeFilenameFlags()
        extra_bytes: bytes = extra
        record = struct.pack(
            CENTRAL_DIR[0], CENTRAL_DIR[1], version, self.create_system,
            version, 0, flags, self.compress_type, dostime, dosdate, self.CRC,
            compress_size, file_size, len(name), len(extra), 0, 0, 0,
            self.external_attr, offset,
        )
        return record + bytes(name) + extra_bytes


def _dos(dt: tuple[int, ...]) -> tuple[int, int]:
    """Given a (Y, M, D, h, m, s) tuple, return (dosdate, dostime) (APPNOTE 4.4.6)."""
    return (dt[0] - 1980) << 9 | dt[1] << 5 | dt[2], dt[3] << 11 | dt[4] << 5 | dt[5] // 2


def info(entry: Entry, crc: int, *, deflated: bool = False, compressed: int | None = None,
         offset: int = 0, descriptor: bool = False) -> EntryInfo:
    """Given an entry and what is known of its data, return its record.

    ``compressed`` is the length of the data as written (encrypted, for a
    sealed entry); None means stored. ``descriptor`` marks a deflated entry
    whose CRC and sizes follow its data (flag bit 3), because they were not
    known when its header was written.
    """
    node = entry.node
    seconds = entry.mtime_ns // 1_000_000_000
    dt = min(max(tuple(time.gmtime(max(seconds, 0))[:6]), DOS_MIN), DOS_MAX)
    rec = EntryInfo(entry.name + "/" if entry.is_dir else entry.name, dt)
    kind = stat.S_IFDIR if entry.is_dir else stat.S_IFREG
    rec.external_attr = (kind | node.mode) << 16 | (MSDOS_DIRECTORY if entry.is_dir else 0)
    rec.create_system = 3  # Unix, so readers apply the mode bits
    rec.compress_type = zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED
    rec.CRC = crc
    rec.file_size = node.size
    rec.compress_size = written_size(entry) if compressed is None else compressed
    rec.header_offset = offset
    # Info-ZIP extended timestamp, mtime only: flags=1 then a 32-bit Unix time.
    rec.extra = struct.pack("<HHBI", 0x5455, 5, 1, min(max(seconds, 0), 0x7FFFFFFF))
    rec.extra += _unicode_extra(rec.filename)
    if deflated and descriptor:
        rec.flag_bits |= FLAG_DATA_DESCRIPTOR
    if entry.sealed:
        # WinZip AE-2: the real method in 0x9901, 99 in the header, no CRC (the code checks the data).
        rec.extra += zipextra.aes_extra(rec.compress_type)
        rec.compress_type, rec.CRC = zipextra.AES_METHOD, 0
        rec.flag_bits |= zipextra.FLAG_ENCRYPTED
        rec.extract_version = rec.create_version = zipextra.AES_VERSION_NEEDED
    return rec


def written_size(entry: Entry) -> int:
    """Given a stored entry, return the length of its data in the archive (28 more when sealed)."""
    return entry.node.size + (zipextra.AES_OVERHEAD if entry.sealed else 0)


def local_header(entry: Entry, crc: int, *, deflated: bool = False,
                 compressed: int | None = None) -> bytes:
    """Given an entry, its CRC and how it is encoded, return its local header.

    A deflated entry whose compressed size is not given gets a data descriptor
    (its header sizes are zero, or ZIP64 when the entry may reach 4 GiB).
    """
    descriptor = deflated and compressed is None
    rec = info(entry, crc, deflated=deflated, compressed=compressed, descriptor=descriptor)
    known = max(entry.node.size, rec.compress_size) >= ZIP64_LIMIT
    zip64 = needs_zip64_descriptor(entry) if descriptor else known
    return bytes(rec.FileHeader(zip64))


_LOCAL = struct.Struct("<4s2B4HL2L2H")  # zipfile's structFileHeader (APPNOTE 4.3.7)
_CENTRAL = struct.Struct(CENTRAL_DIR[0])


def stored_local_header(entry: Entry, crc: int) -> bytes:
    """Given a stored entry and its CRC, return local_header(entry, crc), in a few microseconds.

    The same bytes zipstream-ng's record renders (a table test holds them
    equal), built with one struct as tar.header builds ustar blocks; ZIP64
    entries, rare, still go through the record.
    """
    size, written = entry.node.size, written_size(entry)
    if written >= ZIP64_LIMIT:
        return local_header(entry, crc)
    name, flags, version, method, crc, extra, dosdate, dostime = _stored_fields(entry, crc)
    return _LOCAL.pack(b"PK\x03\x04", version, 0, flags, method, dostime, dosdate, crc,
                       written, size, len(name), len(extra)) + name + extra


def stored_central_record(entry: Entry, crc: int, offset: int) -> bytes:
    """Given a stored entry, its CRC and offset, return info(...).central_record(), in a few microseconds."""
    size, written = entry.node.size, written_size(entry)
    if written >= ZIP64_LIMIT or offset >= ZIP64_LIMIT:
        return bytes(info(entry, crc, offset=offset).central_record())
    name, flags, version, method, crc, extra, dosdate, dostime = _stored_fields(entry, crc)
    kind = stat.S_IFDIR if entry.is_dir else stat.S_IFREG
    attr = (kind | entry.node.mode) << 16 | (MSDOS_DIRECTORY if entry.is_dir else 0)
    return _CENTRAL.pack(CENTRAL_DIR[1], version, 3, version, 0, flags, method, dostime, dosdate,
                         crc, written, size, len(name), len(extra), 0, 0, 0, attr, offset) + name + extra


_Fields = tuple[bytes, int, int, int, int, bytes, int, int]


def _stored_fields(entry: Entry, crc: int) -> _Fields:
    """Given a stored entry and its CRC, return its name, flags, version, method, CRC, extra and DOS time."""
    name, flags = _name_flags(entry)
    dosdate, dostime, extra = _times(entry)
    if flags:
        extra += _unicode_extra(_shown(entry))
    if not entry.sealed:
        return name, flags, 20, zipfile.ZIP_STORED, crc, extra, dosdate, dostime
    extra += zipextra.aes_extra(zipfile.ZIP_STORED)  # AE-2: no CRC, method 99
    return (name, flags | zipextra.FLAG_ENCRYPTED, zipextra.AES_VERSION_NEEDED, zipextra.AES_METHOD,
            0, extra, dosdate, dostime)


def _shown(entry: Entry) -> str:
    """Given an entry, return its name as headers show it (folders end with "/")."""
    return entry.name + "/" if entry.node.kind == "dir" else entry.name


def _unicode_extra(name: str) -> bytes:
    """Given a name as written, return its Unicode Path field, or nothing for an ASCII name."""
    return zipextra.unicode_path(name) if zipextra.wants_unicode_path(name) else b""


def _name_flags(entry: Entry) -> tuple[bytes, int]:
    """Given an entry, return its name as written and the general purpose flags that go with it."""
    name = _shown(entry)
    data = name.encode()
    return data, 0 if len(data) == len(name) else FLAG_UTF8  # as long: ASCII


def _times(entry: Entry) -> tuple[int, int, bytes]:
    """Given an entry, return its DOS date, DOS time (UTC, clamped) and extended-timestamp field."""
    seconds = entry.mtime_ns // 1_000_000_000
    known = _TIMES.get(seconds)
    if known is not None:
        return known
    dt = min(max(tuple(time.gmtime(max(seconds, 0))[:6]), DOS_MIN), DOS_MAX)
    dosdate, dostime = _dos(dt)
    known = dosdate, dostime, struct.pack("<HHBI", 0x5455, 5, 1, min(max(seconds, 0), 0x7FFFFFFF))
    if len(_TIMES) >= 4096:
        _TIMES.clear()
    _TIMES[seconds] = known
    return known


# mtime seconds -> _times(): files of a tree often share their second, and each
# entry is rendered twice (local header, central record).
_TIMES: dict[int, tuple[int, int, bytes]] = {}


def needs_zip64_descriptor(entry: Entry) -> bool:
    """Given a deflated entry, return whether its header announced ZIP64 sizes."""
    return entry.node.size * DEFLATE_SLACK + 64 >= ZIP64_LIMIT


def data_descriptor(crc: int, compressed: int, size: int, zip64: bool) -> bytes:
    """Return the data descriptor that follows deflated data (APPNOTE 4.3.9)."""
    return struct.pack("<4sLQQ" if zip64 else "<4sLLL", b"PK\x07\x08", crc, compressed, size)


def end_records(count: int, cd_start: int, cd_size: int) -> bytes:
    """Return the end of central directory records, with ZIP64 ones where needed (APPNOTE 4.3.14-16)."""
    out = b""
    if count >= COUNT_LIMIT or cd_start >= ZIP64_LIMIT or cd_size >= ZIP64_LIMIT:
        end64 = cd_start + cd_size
        out = struct.pack(END64[0], END64[1], 44, ZIP64_VERSION, ZIP64_VERSION, 0, 0, count, count,
                          cd_size, cd_start)
        out += struct.pack(END64_LOCATOR[0], END64_LOCATOR[1], 0, end64, 1)
        count, cd_size, cd_start = (min(count, COUNT_LIMIT), min(cd_size, ZIP64_LIMIT),
                                    min(cd_start, ZIP64_LIMIT))
    return out + struct.pack(END[0], END[1], 0, 0,
                             count, count, cd_size, cd_start, 0)


TIMESTAMP_EXTRA = 9  # the 0x5455 field info() writes: 4 bytes of header, flags, mtime
ZIP64_SIZES = 20  # a local header's ZIP64 field: header, then both sizes


def local_header_size(entry: Entry) -> int:
    """Given a stored entry, return len(local_header(entry, crc)) without rendering it (APPNOTE 4.3.7)."""
    zip64 = ZIP64_SIZES if written_size(entry) >= ZIP64_LIMIT else 0
    return 30 + _name_length(entry) + _extras_size(entry) + zip64


def central_record_size(entry: Entry, offset: int) -> int:
    """Given a stored entry and its offset, return the length of its central record (see central_record)."""
    fields = 2 if written_size(entry) >= ZIP64_LIMIT or offset >= ZIP64_LIMIT else 0
    fields += offset >= ZIP64_LIMIT
    zip64 = 4 + 8 * fields if fields else 0
    return 46 + _name_length(entry) + _extras_size(entry) + zip64


def _extras_size(entry: Entry) -> int:
    """Given an entry, return the length of its timestamp, Unicode Path and AES fields."""
    return TIMESTAMP_EXTRA + _unicode_size(entry) + (zipextra.AES_EXTRA_SIZE if entry.sealed else 0)


def _unicode_size(entry: Entry) -> int:
    """Given an entry, return the length of its Unicode Path field (0 for an ASCII name)."""
    name = entry.name
    return 0 if name.isascii() else zipextra.unicode_path_size(name) + entry.is_dir


def _name_length(entry: Entry) -> int:
    name = entry.name
    size = len(name) if name.isascii() else len(name.encode("utf-8"))
    return size + entry.is_dir  # folders end with "/"


def layout(entries: list[Entry]) -> Layout:
    """Given entries that are all stored (some perhaps sealed), return the archive's pieces.

    Header lengths do not depend on CRC values; they are computed, not
    rendered (a 65,536-entry plan took ~3 s of rendering), and a table test
    holds them to the rendered records' lengths.
    """
    out = Layout()
    pieces, offsets = out.pieces, out.offsets  # appended here: see tar.layout
    total = 0
    for i, entry in enumerate(entries):
        offsets.append(total)
        head = local_header_size(entry)
        pieces.append(Piece(total, head, "head", i))
        total += head
        if entry.sealed:  # the salt and verifier, filled by the encoder
            pieces.append(Piece(total, zipextra.AES_PREFIX, "salt", i))
            total += zipextra.AES_PREFIX
        if entry.node.size:
            pieces.append(Piece(total, entry.node.size, "data", i))
            total += entry.node.size
        if entry.sealed:  # the authentication code, filled by the encoder
            pieces.append(Piece(total, zipextra.AES_MAC, "mac", i))
            total += zipextra.AES_MAC
    cd_start = total
    for i, entry in enumerate(entries):
        record = central_record_size(entry, offsets[i])
        pieces.append(Piece(total, record, "cd", i))
        total += record
    out.total = total
    out.add("end", len(end_records(len(entries), cd_start, out.total - cd_start)))
    out.marks["cd_start"] = cd_start
    return out


def meta(entries: Sequence[Entry], layout: Layout, piece: Piece, crc: int) -> bytes:
    """Given a stored ZIP's entries and layout, a metadata piece and its entry's CRC, return its bytes."""
    if piece.kind == "head":
        return stored_local_header(entries[piece.index], crc)
    if piece.kind == "cd":
        return stored_central_record(entries[piece.index], crc, layout.offsets[piece.index])
    assert piece.kind == "end", piece.kind
    cd_start = layout.marks["cd_start"]
    return end_records(len(entries), cd_start, layout.total - cd_start - piece.size)
