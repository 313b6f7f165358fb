"""One block of input -> raw deflate (RFC 1951), stored instead wherever deflating would not shrink it.

Every level first deflates eight 1 KiB samples of a block with ISA-L in one call,
unless they are all ASCII: random blocks then pass at ~4 GB/s instead of being
deflated for nothing (~400 MB/s with ISA-L, ~50 MB/s with zlib-ng).
"""

from __future__ import annotations

import struct

from isal import isal_zlib

from zipserve.encode.compress.engine import Block, Engine, engine_for

_RAW = -15  # wbits for a raw deflate stream: no zlib or gzip wrapper
_SAMPLES = 8  # samples from a block's start to its end, deflated together: is it worth deflating?
_SAMPLE = 1024  # bytes per sample
MIN_SAVING = 0.05  # what deflating must save for `auto` to keep it
_STORED_MAX = 0xFFFF  # RFC 1951 3.2.4: LEN is 16 bits


def _stored(block: Block, last: bool) -> bytes:
    """Given a block, return it as RFC 1951 stored blocks (3.2.4), the final one marked if last.

    Every block before this one ended byte-aligned (sync flush or stored), so the 3 header bits
    fill one byte and LEN/NLEN follow at once.
    """
    parts: list[Block] = []
    for start in range(0, max(len(block), 1), _STORED_MAX):
        piece = block[start : start + _STORED_MAX]
        final = last and start + _STORED_MAX >= len(block)
        parts.append(struct.pack("<BHH", int(final), len(piece), len(piece) ^ 0xFFFF))
        parts.append(piece)
    return b"".join(parts)


def _stored_size(length: int) -> int:
    """Given a block length, return the size of its stored encoding."""
    return length + 5 * max(1, -(-length // _STORED_MAX))


def shrinks(sample: Block, *, min_saving: float = MIN_SAVING) -> bool:
    """Given a sample of an entry, return whether ISA-L level 1 saves min_saving of it."""
    if not sample:
        return False
    return saves(isal_zlib.compress(sample, 1, _RAW), sample, min_saving=min_saving)


def saves(deflated: Block, data: Block, *, min_saving: float = MIN_SAVING) -> bool:
    """Given data and its deflate output, return whether deflating saved min_saving of it."""
    return bool(data) and len(deflated) <= len(data) * (1.0 - min_saving)


def worth_deflating(block: Block) -> bool:
    """Given a block, return whether samples spread over it, together, shrink under fast deflate.

    One ISA-L call on the samples costs a few percent of deflating the block and spares
    deflating already compressed data for nothing.  The first and last samples sit at the
    block's ends, so the text that starts or ends a tar block between two files is seen.
    Samples that are all ASCII need no trial: deflate's Huffman codes alone save at least 1/8
    of bytes that use 7 bits.  Small blocks are just deflated.
    """
    if len(block) < 32 * _SAMPLE:
        return True
    step = (len(block) - _SAMPLE) // (_SAMPLES - 1)
    sample = b"".join(block[i * step : i * step + _SAMPLE] for i in range(_SAMPLES))
    return sample.isascii() or shrinks(sample)


def deflate_block(engine: Engine, block: Block, zdict: Block, last: bool) -> bytes:
    """Given a block and the 32 KiB before it, return its deflate blocks, sync-flushed or final.

    Whatever does not shrink comes out stored, so the stream never grows by more than RFC 1951's
    5 bytes per 64 KiB.
    """
    if not worth_deflating(block):
        # Even ISA-L gains: on one thread it deflates random blocks at ~400 MB/s, and probes
        # them at ~1,300 MB/s (bench_compress.py runs the mixed tree's random half).
        return _stored(block, last)
    library = engine.library
    extra = {"zdict": zdict} if zdict else {}
    compressor = library.compressobj(engine.level, library.DEFLATED, _RAW, **extra)
    flush = library.Z_FINISH if last else library.Z_SYNC_FLUSH
    deflated: bytes = compressor.compress(block) + compressor.flush(flush)
    return _stored(block, last) if len(deflated) > _stored_size(len(block)) else deflated


def deflate_bytes(data: Block, *, level: int) -> bytes:
    """Given a whole input held in memory, return its raw deflate stream, inline.

    Equals deflate_raw([data]) whenever data fits in one block, so callers may deflate small
    entries with it (or submit it to the pool to deflate independent entries in parallel).
    """
    return deflate_block(engine_for(level), data, b"", True)


