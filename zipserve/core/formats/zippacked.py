"""The sized layout of a ZIP with deflated entries whose compressed lengths are known (pure).

The streamed writer (encode/streamzip.py) deflates deterministically: the same
file, level, engine, block size and read chunk size give the same bytes. Once
each deflated entry's compressed length is known (Entry.packed, learned from
an earlier stream), every record it writes has a known length and place, so
the archive is laid out like a stored one and served with Content-Length and
Range. The bytes are those the streamed writer sends, record for record:

- an entry of at most WHOLE_DEFLATE bytes is deflated in one piece: its local
  header carries CRC-32 and sizes (APPNOTE 4.3.7), no data descriptor;
- a larger one is deflated block by block: its local header has flag bit 3
  and zero sizes (ZIP64 ones when it may reach 4 GiB), and a data descriptor
  follows its data (APPNOTE 4.3.9), a "desc" piece;
- its data is a "packed" piece the encoder fills by deflating the file again.

Stored entries, folders and the end records are zip.py's.
"""

from __future__ import annotations

from collections.abc import Sequence

from zipserve.core.formats import zip
from zipserve.core.formats.layout import Layout, Piece
from zipserve.core.node import Entry

# Entries up to this size are read and deflated whole (encode.compress.DEFAULT_BLOCK: a test
# holds them equal; core may not import encode).
WHOLE_DEFLATE = 256 * 1024
_LOCAL_FIXED, _CENTRAL_FIXED = 30, 46  # APPNOTE 4.3.7 and 4.3.12 without name and extra


def known(entries: Sequence[Entry]) -> bool:
    """Given ZIP entries, return whether every deflated one has a known length and none is encrypted.

    An encrypted deflated entry is written with a random salt: never the same bytes twice.
    """
    return all(not e.deflate or (e.packed >= 0 and not e.sealed) for e in entries)


def described(entry: Entry) -> bool:
    """Given a deflated entry, return whether the streamed writer follows its data with a descriptor."""
    return entry.node.size > WHOLE_DEFLATE


def _name_and_extra(entry: Entry) -> int:
    """Given an unencrypted entry, return the length of its name and extra fields (no ZIP64 field)."""
    zip64 = zip.ZIP64_SIZES if zip.written_size(entry) >= zip.ZIP64_LIMIT else 0
    return zip.local_header_size(entry) - _LOCAL_FIXED - zip64


def head_size(entry: Entry) -> int:
    """Given a deflated entry with a known length, return len(head(entry, crc))."""
    if described(entry):
        zip64 = zip.needs_zip64_descriptor(entry)
    else:
        zip64 = max(entry.node.size, entry.packed) >= zip.ZIP64_LIMIT
    return _LOCAL_FIXED + _name_and_extra(entry) + (zip.ZIP64_SIZES if zip64 else 0)


def central_size(entry: Entry, offset: int) -> int:
    """Given a deflated entry with a known length and its offset, return len(central(...))."""
    big = max(entry.node.size, entry.packed) >= zip.ZIP64_LIMIT or offset >= zip.ZIP64_LIMIT
    fields = (2 if big else 0) + (offset >= zip.ZIP64_LIMIT)
    return _CENTRAL_FIXED + _name_and_extra(entry) + (4 + 8 * fields if fields else 0)


def descriptor_size(entry: Entry) -> int:
    """Given a deflated entry, return the length of the data descriptor after it (0: none)."""
    if not described(entry):
        return 0
    return 24 if zip.needs_zip64_descriptor(entry) else 16


def head(entry: Entry, crc: int) -> bytes:
    """Given a deflated entry with a known length and its CRC, return its local header as streamed."""
    if described(entry):
        return zip.local_header(entry, 0, deflated=True)
    return zip.local_header(entry, crc, deflated=True, compressed=entry.packed)


def central(entry: Entry, crc: int, offset: int) -> bytes:
    """Given a deflated entry with a known length, its CRC and offset, return its central record."""
    rec = zip.info(entry, crc, deflated=True, compressed=entry.packed, offset=offset,
                   descriptor=described(entry))
    return bytes(rec.central_record())


def layout(entries: list[Entry]) -> Layout:
    """Given ZIP entries for which known() holds, return the archive's pieces.

    Lengths are computed, not rendered; a table test holds them to the rendered records.
    """
    out = Layout()
    for i, entry in enumerate(entries):
        out.offsets.append(out.total)
        if not entry.deflate:
            out.add("head", zip.local_header_size(entry), i)
            out.add("data", entry.node.size, i)
            continue
        out.add("head", head_size(entry), i)
        out.add("packed", entry.packed, i)
        out.add("desc", descriptor_size(entry), i)
    cd_start = out.marks["cd_start"] = out.total
    for i, entry in enumerate(entries):
        offset = out.offsets[i]
        out.add("cd", central_size(entry, offset) if entry.deflate
                else zip.central_record_size(entry, offset), i)
    out.add("end", len(zip.end_records(len(entries), cd_start, out.total - cd_start)))
    return out


def meta(entries: Sequence[Entry], layout: Layout, piece: Piece, crc: int) -> bytes:
    """Given a ZIP's entries and layout, a metadata piece and its entry's CRC, return its bytes.

    Pieces of stored entries, and the end records, are zip.meta's.
    """
    entry = entries[piece.index] if piece.index >= 0 else None
    if entry is None or not entry.deflate:
        return zip.meta(entries, layout, piece, crc)
    if piece.kind == "head":
        return head(entry, crc)
    if piece.kind == "desc":
        return zip.data_descriptor(crc, entry.packed, entry.node.size, zip.needs_zip64_descriptor(entry))
    assert piece.kind == "cd", piece.kind
    return central(entry, crc, layout.offsets[piece.index])
