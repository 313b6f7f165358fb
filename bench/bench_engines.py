"""Measure the deflate engines and zipserve's parallel deflate; print tables.

Run: python bench/bench_engines.py [--mib 64] [--sweep-mib 16]

The corpus, written to a temporary directory, is half log-like text (compresses ~3-4x) and half
random bytes.  First table: each library and level on one thread, one unbroken stream, text and
random apart.  Second: deflate_raw over the mixed corpus per public level, workers and block size.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import ModuleType

from isal import isal_zlib
from zlib_ng import zlib_ng

from zipserve.encode.compress import Crc, Pool, deflate_raw, engine_for

MIB = 1 << 20
CHUNK = 256 * 1024
SWEEP: list[tuple[str, ModuleType, range]] = [
    ("isal", isal_zlib, range(0, 4)),
    ("zlib-ng", zlib_ng, range(1, 10)),
    ("zlib", zlib, range(1, 10)),
]
VOCABULARY = (
    "GET POST PUT DELETE /api/v1/users /api/v1/orders /static/app.js /health index.html "
    "ok timeout retry cache hit miss upstream backend session token expired granted denied "
    "alpha beta gamma delta request response latency bytes client server worker queue"
)
WORDS = VOCABULARY.split()
LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR")


def log_text(size: int, seed: int) -> bytes:
    """Given a size and seed, return that many bytes of varied, log-like text lines."""
    rng = random.Random(seed)
    lines: list[str] = []
    total = 0
    stamp = 1_700_000_000.0
    while total < size:
        stamp += rng.expovariate(50.0)
        words = " ".join(rng.choices(WORDS, k=rng.randint(3, 9)))
        line = (
            f"{stamp:.3f} {rng.choice(LEVELS)} [worker-{rng.randint(1, 16)}] {words} "
            f"user={rng.randint(1, 5000)} status={rng.choice((200, 200, 200, 304, 404, 500))} "
            f"took={rng.randint(1, 999)}ms id={rng.getrandbits(32):08x}\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def make_corpus(directory: Path, mib: int) -> tuple[Path, Path]:
    """Given a directory and a total size, write the text and random halves; return their paths."""
    half = mib * MIB // 2
    text, noise = directory / "text.log", directory / "random.bin"
    text.write_bytes(log_text(half, seed=1))
    noise.write_bytes(random.Random(2).randbytes(half))
    return text, noise


def chunks_of(data: bytes) -> Iterator[bytes]:
    """Given bytes, return them in CHUNK-sized pieces, as a file reader would."""
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        yield bytes(view[start : start + CHUNK])


def timed(run: Callable[[], int], repeat: int = 2) -> tuple[float, int]:
    """Given a function returning an output size, return (best seconds of `repeat` runs, size).

    The best run, because other work on a shared machine only ever makes a run slower.
    """
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        size = run()
        best = min(best, time.perf_counter() - start)
    return best, size


def one_stream(library: ModuleType, level: int, data: bytes) -> int:
    """Given a library, level and data, return the size of one raw deflate stream of it."""
    compressor = library.compressobj(level, library.DEFLATED, -15)
    size = sum(len(compressor.compress(chunk)) for chunk in chunks_of(data))
    return size + len(compressor.flush())


def sweep_table(text: bytes, noise: bytes) -> None:
    """Given text and random data, print each engine's single-thread speed and ratio on both."""
    print(f"\nOne thread, one stream: {len(text) // MIB} MiB text, {len(noise) // MIB} MiB random")
    print(f"{'engine':8} {'lvl':>3} {'text MB/s':>10} {'ratio':>6} {'random MB/s':>12} {'ratio':>6}")
    for name, library, levels in SWEEP:
        for level in levels:
            cells = ""
            for data in (text, noise):
                seconds, size = timed(partial(one_stream, library, level, data))
                cells += f" {len(data) / seconds / 1e6:>10.0f} {size / len(data):>6.3f}"
            print(f"{name:8} {level:>3}{cells}")


def raw_size(data: bytes, level: int, pool: Pool, block: int) -> int:
    """Given data and deflate_raw's settings, return the size of its output."""
    return sum(map(len, deflate_raw(chunks_of(data), level=level, pool=pool, block_size=block)))


def parallel_table(text: bytes, noise: bytes, levels: list[int]) -> None:
    """Given text and random data, print deflate_raw's speed and ratio per level, workers, block."""
    print(f"\ndeflate_raw: {len(text) // MIB} MiB text, {len(noise) // MIB} MiB random")
    print(
        f"{'lvl':>3} {'engine':>10} {'workers':>7} {'block':>6} "
        f"{'text MB/s':>10} {'ratio':>6} {'random MB/s':>12} {'ratio':>6}"
    )
    for level in levels:
        engine = engine_for(level)
        for workers in (1, 2):
            with Pool(workers) as pool:
                for block in (128 * 1024, 256 * 1024, MIB):
                    cells = ""
                    for data in (text, noise):
                        seconds, size = timed(partial(raw_size, data, level, pool, block))
                        cells += f" {len(data) / seconds / 1e6:>10.0f} {size / len(data):>6.3f}"
                    label = f"{engine.name}-{engine.level}"
                    print(f"{level:>3} {label:>10} {workers:>7} {block // 1024:>5}K{cells}")


def crc_speed(data: bytes) -> None:
    """Given data, print how fast Crc runs over it in CHUNK pieces."""
    crc = Crc()
    start = time.perf_counter()
    for chunk in chunks_of(data):
        crc.update(chunk)
    print(f"\nCrc (isal crc32): {len(data) / (time.perf_counter() - start) / 1e6:.0f} MB/s")


def main() -> None:
    """Parse options, build the corpus in a temporary directory and print every table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=64, help="corpus size (half text, half random)")
    parser.add_argument("--sweep-mib", type=int, default=16, help="MiB per half in the single-thread table")
    parser.add_argument("--levels", default="1,3,4,6,9", help="public levels for deflate_raw")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zipserve-bench-") as tmp:
        text_path, noise_path = make_corpus(Path(tmp), options.mib)
        text, noise = text_path.read_bytes(), noise_path.read_bytes()
    print(f"cores: {os.cpu_count()}")
    sweep = options.sweep_mib * MIB
    sweep_table(text[:sweep], noise[:sweep])
    levels = [int(level) for level in options.levels.split(",")]
    parallel_table(text, noise, levels)
    crc_speed(text + noise)


if __name__ == "__main__":
    main()
