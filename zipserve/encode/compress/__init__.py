"""Compression shared by every compressed format: deflate (ZIP entries, gzip) and zstd.

engine: levels -> deflate libraries, and the pool of compression workers;
block: one block -> raw deflate, stored where deflating would not shrink it;
deflate: chunks -> one raw deflate stream, blocks deflated in parallel on the pool;
gzip: a gzip member around such a stream; zstd: a zstd frame by zstd's own workers.
Callers use the names below.
"""

from __future__ import annotations

from zipserve.encode.compress.block import MIN_SAVING, deflate_bytes, saves, shrinks, worth_deflating
from zipserve.encode.compress.deflate import Crc, deflate_items, deflate_raw
from zipserve.encode.compress.engine import DEFAULT_BLOCK, Engine, Pool, engine_for, window
from zipserve.encode.compress.gzip import gzip_stream
from zipserve.encode.compress.zstd import zstd_level, zstd_stream

__all__ = [
    "DEFAULT_BLOCK",
    "MIN_SAVING",
    "Crc",
    "Engine",
    "Pool",
    "deflate_bytes",
    "deflate_items",
    "deflate_raw",
    "engine_for",
    "gzip_stream",
    "saves",
    "shrinks",
    "window",
    "worth_deflating",
    "zstd_level",
    "zstd_stream",
]
