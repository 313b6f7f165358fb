"""How fast does one core encrypt a ZIP entry with WinZip AES-256 (encode/aes.py)?

    python bench/bench_aes.py                 # 64 MiB, fed in 1 MiB chunks, 5 runs
    python bench/bench_aes.py --mib 256 --chunk-kib 256 --runs 3

Encrypts one random buffer chunk by chunk (CTR keystream, XOR, HMAC-SHA1 over
the ciphertext, as an entry is streamed) and prints MB/s per run with the best
and the median; beside it, the key derivation (PBKDF2, 1000 iterations) that
every entry pays once, and ISA-L's CRC-32 over the same buffer for scale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isal import isal_zlib  # noqa: E402

from zipserve.encode import aes  # noqa: E402


def encrypt_seconds(data: bytes, chunk: int) -> float:
    """Given a buffer and a chunk size, return the seconds one encryptor takes over it."""
    view = memoryview(data)
    start = time.perf_counter()
    enc = aes.AesEncryptor(b"password", bytes(16))
    for i in range(0, len(data), chunk):
        enc.update(view[i: i + chunk])
    enc.finish()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--chunk-kib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = os.urandom(args.mib << 20)
    rates = [len(data) / encrypt_seconds(data, args.chunk_kib << 10) / 1e6 for _ in range(args.runs)]
    print(f"AES-256 CTR + HMAC-SHA1, {args.mib} MiB in {args.chunk_kib} KiB chunks:")
    print("  runs   " + "  ".join(f"{r:.0f}" for r in rates) + " MB/s")
    print(f"  best   {max(rates):.0f} MB/s   median {statistics.median(rates):.0f} MB/s")
    start = time.perf_counter()
    for i in range(200):
        aes.derive_keys(b"password", i.to_bytes(16, "little"))
    print(f"PBKDF2 key derivation: {(time.perf_counter() - start) / 200 * 1e3:.2f} ms an entry")
    start = time.perf_counter()
    isal_zlib.crc32(data)
    print(f"CRC-32 (ISA-L) for scale: {len(data) / (time.perf_counter() - start) / 1e6:.0f} MB/s")


if __name__ == "__main__":
    main()
