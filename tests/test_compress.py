"""Tests for the compression engine: every output is read back by an independent decoder."""

from __future__ import annotations

import base64
import gzip
import random
import shutil
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import unzstd
from zipserve.encode.compress import (
    DEFAULT_BLOCK,
    Crc,
    Engine,
    Pool,
    deflate_bytes,
    deflate_raw,
    engine_for,
    gzip_stream,
    shrinks,
    worth_deflating,
    zstd_stream,
)
from zipserve.encode.compress.block import deflate_block
from zipserve.encode.compress.deflate import MIN_SEGMENT, WINDOW, segments
from zipserve.encode.compress.engine import AHEAD

BLOCK = 64 * 1024
SIZES = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 123]
LEVELS = range(1, 10)
WORDS = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu GET POST 200 404".split()


@cache
def text(size: int) -> bytes:
    """Given a size, return that many bytes of deterministic word soup with numbers in it."""
    rng = random.Random(size)
    words: list[bytes] = []
    total = 0
    while total < size:
        end = b" %d\n" % rng.randint(0, 999) if rng.random() < 0.1 else b" "
        word = rng.choice(WORDS) + end
        words.append(word)
        total += len(word)
    return b"".join(words)[:size]


@cache
def noise(size: int) -> bytes:
    """Given a size, return that many deterministic random bytes."""
    return random.Random(size).randbytes(size)


KINDS: dict[str, Callable[[int], bytes]] = {"text": text, "random": noise}


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    """Given data and a chunk size, return the data cut into chunks of that size."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def inflate(stream: bytes) -> bytes:
    """Given a raw deflate stream, return its content; fail on truncation or trailing bytes."""
    inflater = zlib.decompressobj(-15)
    content = inflater.decompress(stream) + inflater.flush()
    assert inflater.eof and inflater.unused_data == b""
    return content


def raw(data: bytes, pool: Pool, level: int = 6, chunk: int = 10_000) -> bytes:
    """Given data, a pool and a level, return deflate_raw's whole output for small test blocks."""
    return b"".join(deflate_raw(chunked(data, chunk), level=level, pool=pool, block_size=BLOCK))


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with Pool(2) as shared:
        yield shared


class Recording:
    """A stand-in for Pool.submit that keeps every future it hands out."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.submit = pool.submit
        self.futures: list[Future[Any]] = []

    def __call__(self, fn: Callable[..., Any], /, *args: object) -> Future[Any]:
        future = self.submit(fn, *args)
        self.futures.append(future)
        return future


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, pool: Pool) -> Recording:
    recording = Recording(pool)
    monkeypatch.setattr(pool, "submit", recording)
    return recording


class Progress:
    """An input of whole blocks that counts how many bytes were taken from it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.consumed = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in chunked(self.data, BLOCK):
            self.consumed += len(chunk)
            yield chunk


@pytest.mark.parametrize("level", LEVELS)
def test_engine_for_maps_every_public_level(level: int) -> None:
    engine = engine_for(level)
    assert engine.name in {"isal", "zlib-ng", "zlib"}
    assert engine.level in (range(0, 4) if engine.name == "isal" else range(1, 10))


@pytest.mark.parametrize("level", [0, 10, -1])
def test_engine_for_refuses_levels_outside_1_to_9(level: int) -> None:
    with pytest.raises(ValueError):
        engine_for(level)


@pytest.mark.parametrize("name", ["isal", "zlib-ng", "zlib"])
def test_every_engine_joins_blocks_into_one_stream(name: str) -> None:
    data = text(3 * BLOCK + 5)
    engine = Engine(name, 1)
    blocks = [data[:BLOCK], data[BLOCK : 2 * BLOCK], data[2 * BLOCK :]]
    zdicts = [b"", blocks[0][-WINDOW:], blocks[1][-WINDOW:]]
    parts = [
        deflate_block(engine, block, zdict, i == 2)
        for i, (block, zdict) in enumerate(zip(blocks, zdicts, strict=True))
    ]
    assert inflate(b"".join(parts)) == data


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("level", LEVELS)
def test_deflate_raw_round_trips_through_zlib(level: int, size: int, kind: str, pool: Pool) -> None:
    data = KINDS[kind](size)
    assert inflate(raw(data, pool, level)) == data


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("level", LEVELS)
def test_gzip_stream_round_trips_through_gzip_module(level: int, size: int, kind: str, pool: Pool) -> None:
    data = KINDS[kind](size)
    member = gzip_stream(chunked(data, 10_000), level=level, pool=pool, block_size=BLOCK)
    assert gzip.decompress(b"".join(member)) == data


@pytest.mark.skipif(shutil.which("gzip") is None, reason="needs the gzip command")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("level", LEVELS)
def test_gzip_stream_passes_gzip_t(level: int, size: int, kind: str, pool: Pool, tmp_path: Path) -> None:
    data = KINDS[kind](size)
    member = gzip_stream(chunked(data, 10_000), level=level, pool=pool, block_size=BLOCK, filename="data.bin")
    path = tmp_path / "data.bin.gz"
    path.write_bytes(b"".join(member))
    subprocess.run(["gzip", "-t", str(path)], check=True, capture_output=True)


@pytest.mark.parametrize("level", [1, 3, 6, 9])
def test_deflate_raw_output_is_the_same_on_every_run(level: int, pool: Pool) -> None:
    data = text(5 * BLOCK) + noise(2 * BLOCK) + text(BLOCK + 7)
    outputs = {raw(data, pool, level) for _ in range(3)}
    assert len(outputs) == 1
    assert inflate(outputs.pop()) == data


@pytest.mark.parametrize("chunk", [1000, 4096, BLOCK - 1, BLOCK, 3 * BLOCK + 1, 1 << 30])
@pytest.mark.parametrize("level", [1, 6])
def test_deflate_raw_output_ignores_chunk_boundaries(level: int, chunk: int, pool: Pool) -> None:
    data = text(4 * BLOCK) + noise(BLOCK)
    assert raw(data, pool, level, chunk) == raw(data, pool, level, 7777)


S = MIN_SEGMENT


@pytest.mark.parametrize(
    ("sizes", "cuts"),
    [
        ([4 * S], [0, 4 * S]),
        ([2 * S, 2 * S], [0, 2 * S, 4 * S]),
        ([S, S, S], [0, S, 2 * S, 3 * S]),
        ([S - 1, 3 * S], [0, 4 * S - 1]),  # too little before the chunk: one segment
        ([2 * S, S - 1], [0, 3 * S - 1]),  # a small last chunk sticks to the one before
        ([2 * S, 512, 2 * S], [0, 2 * S + 512, 4 * S + 512]),  # a tar header sticks to the data before
        ([1000] * 40, [0, 40_000]),  # small chunks never cut
        ([], [0, 0]),
    ],
)
def test_segments_cut_before_big_chunks_only(sizes: list[int], cuts: list[int]) -> None:
    assert segments(sizes) == cuts


def tar_like() -> list[bytes]:
    """Return chunks as a tar of random and text files gives them: each file's data a chunk of its own."""
    return [noise(BLOCK // 2), text(BLOCK // 2), noise(BLOCK // 2 + 999), text(BLOCK + 77), noise(3 * S)]


@pytest.mark.parametrize("level", LEVELS)
def test_blocks_cut_where_chunks_meet_round_trip(level: int, pool: Pool) -> None:
    chunks = tar_like()
    stream = b"".join(deflate_raw(chunks, level=level, pool=pool, block_size=BLOCK))
    assert inflate(stream) == b"".join(chunks)


@pytest.mark.parametrize(("level", "gain"), [(1, 0.05), (6, 0.0)])
def test_random_and_text_sharing_a_block_are_deflated_apart(level: int, gain: float, pool: Pool) -> None:
    chunks = tar_like()
    cut = b"".join(deflate_raw(chunks, level=level, pool=pool, block_size=BLOCK))
    whole = raw(b"".join(chunks), pool, level, 1000)  # small chunks: every block deflated whole
    # ISA-L fits one set of Huffman codes to a whole block: random data next to text spoils them.
    assert len(whole) - len(cut) >= gain * sum(map(len, chunks[1::2]))


@pytest.mark.parametrize("level", [1, 6, 9])
def test_deflate_raw_output_is_the_same_with_one_worker(level: int, pool: Pool) -> None:
    data = text(4 * BLOCK) + noise(BLOCK) + text(3)
    with Pool(1) as single:
        assert raw(data, single, level) == raw(data, pool, level)


def test_deflate_raw_on_a_pool_thread_runs_inline_with_the_same_output(pool: Pool) -> None:
    data = text(4 * BLOCK + 9)
    with Pool(1) as outer:
        nested = outer.submit(raw, data, outer).result(timeout=30)
    assert nested == raw(data, pool)


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK])
def test_deflate_bytes_equals_deflate_raw_for_one_block(size: int, pool: Pool) -> None:
    data = text(size)
    assert deflate_bytes(data, level=6) == b"".join(deflate_raw([data], level=6, pool=pool))


@pytest.mark.parametrize("size", [0, 1, BLOCK])
def test_deflate_raw_compresses_one_block_without_the_pool(size: int, recorded: Recording) -> None:
    assert inflate(raw(text(size), recorded.pool)) == text(size)
    assert recorded.futures == []


@pytest.mark.parametrize("level", LEVELS)
def test_deflate_raw_never_grows_random_data_past_stored_overhead(level: int, pool: Pool) -> None:
    data = noise(4 * BLOCK)
    # RFC 1951 3.2.4: a stored block costs 5 bytes per 65535 bytes of data.
    assert len(raw(data, pool, level)) <= len(data) + 5 * (2 * 4)


def test_deflate_raw_of_empty_input_is_an_empty_final_block(pool: Pool) -> None:
    assert inflate(raw(b"", pool)) == b""


class Gated(Recording):
    """A Recording whose blocks wait for a gate: the first opens once the pool is full."""

    def __init__(self, pool: Pool) -> None:
        super().__init__(pool)
        self.gates: list[threading.Event] = []
        self.started: list[threading.Event] = []
        self.full = pool.workers * AHEAD

    def __call__(self, fn: Callable[..., Any], /, *args: object) -> Future[Any]:
        gate, started = threading.Event(), threading.Event()
        self.gates.append(gate)
        self.started.append(started)

        def after_gate() -> Any:
            started.set()
            gate.wait(timeout=10)
            return fn(*args)

        future = super().__call__(after_gate)
        if len(self.gates) == self.full:
            self.gates[0].set()
        return future

    def open_all(self) -> None:
        for gate in self.gates:
            gate.set()


def test_closing_deflate_raw_early_cancels_queued_blocks_and_waits_for_running_ones(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    gated = Gated(pool)
    monkeypatch.setattr(pool, "submit", gated)
    stream = deflate_raw(chunked(text(20 * BLOCK), BLOCK), level=6, pool=pool, block_size=BLOCK)
    next(stream)
    # Block 0 is out; blocks 1 and 2 hold both workers at their gates, so the rest stay queued.
    assert gated.started[1].wait(5) and gated.started[2].wait(5)
    threading.Timer(0.1, gated.open_all).start()
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started >= 0.05
    cancelled = [future.cancelled() for future in gated.futures]
    assert cancelled == [False, False, False] + [True] * (len(cancelled) - 3)
    assert len(cancelled) > 3
    assert all(future.done() for future in gated.futures)


def test_closing_gzip_stream_early_leaves_no_work_behind(recorded: Recording) -> None:
    member = gzip_stream(chunked(text(20 * BLOCK), BLOCK), level=6, pool=recorded.pool, block_size=BLOCK)
    next(member)
    next(member)
    member.close()
    assert recorded.futures
    assert all(future.done() for future in recorded.futures)


def test_failing_input_leaves_no_work_behind(recorded: Recording) -> None:
    def failing() -> Iterator[bytes]:
        yield from chunked(text(10 * BLOCK), BLOCK)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        b"".join(deflate_raw(failing(), level=6, pool=recorded.pool, block_size=BLOCK))
    assert all(future.done() for future in recorded.futures)


@pytest.mark.parametrize("workers", [1, 2])
def test_blocks_in_flight_never_exceed_ahead_per_worker(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Pool(workers) as small:
        recording = Recording(small)
        monkeypatch.setattr(small, "submit", recording)
        source = Progress(text(30 * BLOCK))
        limit = workers * AHEAD
        stream = deflate_raw(source, level=6, pool=small, block_size=BLOCK)
        for taken, _ in enumerate(stream):
            assert len(recording.futures) - taken <= limit
            # Read ahead: the blocks in flight, the one held back as maybe-last, one chunk more.
            assert source.consumed <= (taken + limit + 1) * BLOCK
        assert len(recording.futures) > limit


def test_suspended_deflate_raw_reads_no_further(pool: Pool) -> None:
    source = Progress(text(30 * BLOCK))
    stream = deflate_raw(source, level=6, pool=pool, block_size=BLOCK)
    next(stream)
    consumed = source.consumed
    time.sleep(0.05)
    assert source.consumed == consumed
    stream.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"level": 0}, "level"),
        ({"level": 6, "block_size": WINDOW - 1}, "block_size"),
    ],
)
def test_deflate_raw_refuses_bad_settings_at_once(kwargs: dict[str, int], message: str, pool: Pool) -> None:
    with pytest.raises(ValueError, match=message):
        deflate_raw([], pool=pool, **kwargs)


def test_pool_refuses_zero_workers() -> None:
    with pytest.raises(ValueError):
        Pool(0)


def test_default_block_holds_a_whole_window() -> None:
    assert DEFAULT_BLOCK >= WINDOW


def gzip_header(pool: Pool, **options: Any) -> bytes:
    """Given gzip_stream options, return the header bytes of a member of b'x'."""
    member = gzip_stream([b"x"], level=6, pool=pool, **options)
    return next(iter(member))


@pytest.mark.parametrize(
    ("filename", "fname"),
    [
        (None, None),
        ("report.txt", b"report.txt"),
        ("dir/sub/report.txt", b"report.txt"),
        ("caf\u00e9.txt", b"caf\xe9.txt"),
        ("\u540d\u524d.txt", None),
        ("dir/", None),
        ("a\0b", None),
    ],
)
def test_gzip_header_carries_latin1_basename_only(
    filename: str | None, fname: bytes | None, pool: Pool
) -> None:
    header = gzip_header(pool, filename=filename)
    # RFC 1952 2.3: FLG bit 3 is FNAME, the zero-ended name follows the 10 fixed bytes.
    assert bool(header[3] & 0x08) == (fname is not None)
    assert header[10:] == (b"" if fname is None else fname + b"\0")


@pytest.mark.parametrize(("mtime", "stored"), [(0, 0), (1_700_000_000, 1_700_000_000), (-5, 0), (1 << 33, 0)])
def test_gzip_header_carries_mtime_when_it_fits(mtime: int, stored: int, pool: Pool) -> None:
    assert struct.unpack("<I", gzip_header(pool, mtime=mtime)[4:8])[0] == stored


def test_gzip_header_says_unknown_os(pool: Pool) -> None:
    assert gzip_header(pool)[9] == 255


def test_gzip_trailer_has_crc_and_size(pool: Pool) -> None:
    data = text(2 * BLOCK + 1)
    member = b"".join(gzip_stream([data], level=1, pool=pool, block_size=BLOCK))
    assert struct.unpack("<II", member[-8:]) == (zlib.crc32(data), len(data))


@pytest.mark.parametrize("pieces", [[b""], [b"a"], [b"hello ", b"world"], [noise(BLOCK), text(7)]])
def test_crc_matches_zlib_over_pieces(pieces: list[bytes]) -> None:
    crc = Crc()
    for piece in pieces:
        crc.update(memoryview(piece))
    whole = b"".join(pieces)
    assert (crc.value, crc.size) == (zlib.crc32(whole), len(whole))


def zstd_frame(data: bytes, level: int = 3, threads: int = 2) -> bytes:
    """Given data, return zstd_stream's whole frame of it."""
    return b"".join(zstd_stream(chunked(data, 10_000), level=level, threads=threads))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [0, 1, 3 * BLOCK + 123, 40 * BLOCK])
@pytest.mark.parametrize("threads", [0, 2])
def test_zstd_stream_round_trips(threads: int, size: int, kind: str) -> None:
    data = KINDS[kind](size)
    assert unzstd(zstd_frame(data, threads=threads)) == data


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")
@pytest.mark.parametrize("level", [1, 3, 19])
def test_zstd_stream_passes_zstd_t(level: int, tmp_path: Path) -> None:
    path = tmp_path / "data.zst"
    path.write_bytes(zstd_frame(text(3 * BLOCK) + noise(BLOCK), level=level))
    subprocess.run(["zstd", "-t", "-q", str(path)], check=True, capture_output=True)


def test_zstd_stream_yields_before_the_input_ends() -> None:
    taken: list[int] = []

    def source() -> Iterable[bytes]:
        for index, chunk in enumerate(chunked(noise(64 * BLOCK), BLOCK)):
            taken.append(index)
            yield chunk

    first = next(iter(zstd_stream(source(), level=1, threads=0)))
    assert first and len(taken) < 64


@pytest.mark.parametrize("level", [0, 20, -1])
def test_zstd_stream_refuses_levels_outside_1_to_19(level: int) -> None:
    with pytest.raises(ValueError):
        zstd_stream([], level=level, threads=0)


@pytest.mark.parametrize(
    ("sample", "expected"),
    [(text(BLOCK), True), (noise(BLOCK), False), (b"", False), (text(100), True)],
)
def test_shrinks_tells_text_from_random(sample: bytes, expected: bool) -> None:
    assert shrinks(sample) is expected


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (text(4 * BLOCK), True),
        (noise(4 * BLOCK), False),
        (base64.b64encode(noise(3 * BLOCK)), True),  # ASCII: 6 bits a byte, deflate saves ~25%
        (noise(2 * BLOCK) + text(2 * BLOCK), True),
        (text(2 * BLOCK) + noise(2 * BLOCK), True),
        (noise(20_000), True),  # small blocks are just deflated
    ],
)
def test_worth_deflating_tells_blocks_apart(block: bytes, expected: bool) -> None:
    assert worth_deflating(block) is expected


def test_worth_deflating_takes_ascii_samples_without_a_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_trial(sample: bytes) -> bool:
        raise AssertionError("ASCII samples need no trial deflate")

    monkeypatch.setattr("zipserve.encode.compress.block.shrinks", no_trial)
    assert worth_deflating(text(4 * BLOCK))
