"""Benchmark trees, made once under a folder outside the repository and reused when present.

Content is deterministic (seeded RNG), so every run and every machine reads the
same bytes.  Two shapes:

- mixed: ~1 MiB files in four parts, half log-like text (deflates ~3x), half
  random bytes; each part is a quarter of the tree, so a part and the whole
  give archives 1x and 4x as large.
- small: many 1-8 KiB files, half text and half random, 100 to a folder.

A tree is built under a temporary name and renamed into place when complete,
so an interrupted build is never mistaken for a finished one.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KIB = 1 << 10
MIB = 1 << 20
DEFAULT_DIR = Path("/tmp/zipserve-bench")
MTIME = 1_700_000_000  # fixed, so ETags and archives are the same on every run
PARTS = 4
FILES_PER_FOLDER = 8  # mixed tree: ~8 MiB folders, a handy size for many concurrent streams
SMALL_PER_FOLDER = 100
POOL_SIZE = 8 * MIB  # text files are slices of this pool; deflate's window is only 32 KiB

WORDS = (
    "GET POST PUT DELETE HEAD /api/v1/items /api/v1/users /static/site.css /static/app.js "
    "/healthz /login /logout index.html ok error warn timeout retry cache hit miss upstream "
    "backend session token expired granted denied queue worker scheduler request response "
    "latency bytes client server shard replica primary commit rollback snapshot compaction"
).split()
LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "INFO", "WARN", "ERROR")


@dataclass(frozen=True)
class Tree:
    """A benchmark tree: its folder, how many files it holds and their total size."""

    path: Path
    files: int
    bytes: int

    @property
    def name(self) -> str:
        return self.path.name


def text_pool(seed: int, size: int = POOL_SIZE) -> bytes:
    """Given a seed, return `size` bytes of varied log lines (deflate level 1 gets ~3x)."""
    rng = random.Random(seed)
    lines: list[str] = []
    total, stamp = 0, 1_700_000_000.0
    while total < size:
        stamp += rng.expovariate(40.0)
        words = " ".join(rng.choices(WORDS, k=rng.randint(2, 8)))
        line = (f"{stamp:.3f} {rng.choice(LEVELS)} [w{rng.randint(1, 32)}] {words} "
                f"user={rng.randint(1, 9999)} status={rng.choice((200, 200, 204, 304, 404, 500))}"
                f" took={rng.randint(1, 2500)}ms req={rng.getrandbits(40):010x}\n")
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


class Content:
    """Deterministic file contents: text slices of one pool, or seeded random bytes."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pool = text_pool(seed)

    def text(self, size: int) -> bytes:
        """Given a size, return that many bytes of text starting at a random place in the pool."""
        pos = self.rng.randrange(len(self.pool))
        parts: list[bytes] = []
        left = size
        while left:  # wrap around the pool's end (and repeat it for sizes beyond it)
            piece = self.pool[pos : pos + left]
            parts.append(piece)
            left -= len(piece)
            pos = 0
        return b"".join(parts)

    def noise(self, size: int) -> bytes:
        """Given a size, return that many seeded random bytes (incompressible)."""
        return self.rng.randbytes(size)


def mixed_tree(base: Path = DEFAULT_DIR, mib: int = 1024, seed: int = 1) -> Tree:
    """Given a base folder and a size, return the mixed tree of ~1 MiB files (made if missing)."""
    path = base / "trees" / f"mixed-{mib}M"
    if not path.is_dir():
        _build(path, _mixed_files(mib * MIB, seed), seed)
    return measure(path)


def small_tree(base: Path = DEFAULT_DIR, count: int = 20_000, seed: int = 2) -> Tree:
    """Given a base folder and a file count, return the tree of 1-8 KiB files (made if missing)."""
    path = base / "trees" / f"small-{count}"
    if not path.is_dir():
        _build(path, _small_files(count, seed), seed)
    return measure(path)


def _mixed_files(total: int, seed: int) -> Iterator[tuple[str, str, int]]:
    """Given a total size, yield (relative path, kind, size) for the mixed tree."""
    rng = random.Random(seed)
    per_part = total // PARTS
    for part in range(PARTS):
        done, index = 0, 0
        while done < per_part:
            size = min(rng.randint(768 * KIB, 1280 * KIB), per_part - done)
            kind = "text" if index % 2 == 0 else "noise"
            ext = "log" if kind == "text" else "bin"
            folder = f"p{part}/d{index // FILES_PER_FOLDER:03d}"
            yield f"{folder}/f{index:04d}.{ext}", kind, size
            done += size
            index += 1


def _small_files(count: int, seed: int) -> Iterator[tuple[str, str, int]]:
    """Given a count, yield (relative path, kind, size) for the small-file tree."""
    rng = random.Random(seed)
    for index in range(count):
        kind = "text" if index % 2 == 0 else "noise"
        ext = "txt" if kind == "text" else "dat"
        folder = f"d{index // SMALL_PER_FOLDER:04d}"
        yield f"{folder}/f{index:05d}.{ext}", kind, rng.randint(1 * KIB, 8 * KIB)


def _build(path: Path, files: Iterator[tuple[str, str, int]], seed: int) -> None:
    """Given a final path and the files to write, build them aside and rename into place."""
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    content = Content(seed)
    folders: set[Path] = set()
    for rel, kind, size in files:
        target = partial / rel
        if target.parent not in folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            folders.add(target.parent)
        target.write_bytes(content.text(size) if kind == "text" else content.noise(size))
        os.utime(target, (MTIME, MTIME))
    for folder in sorted(folders | {partial}, key=lambda p: -len(p.parts)):
        os.utime(folder, (MTIME, MTIME))
    partial.rename(path)


def files_of(path: Path) -> list[Path]:
    """Given a folder, return every regular file below it, sorted."""
    out: list[Path] = []
    for folder, dirs, names in os.walk(path):
        dirs.sort()
        out.extend(Path(folder, n) for n in sorted(names))
    return out


def measure(path: Path) -> Tree:
    """Given a folder, return it as a Tree with its file count and total size."""
    files = files_of(path)
    return Tree(path, len(files), sum(f.stat().st_size for f in files))


def blob(tree: Tree, target: Path) -> Path:
    """Given a tree and a file path, return that file holding the tree's files end to end (made if missing).

    A single file of the same bytes: what a static server sends with sendfile.
    """
    if target.is_file() and target.stat().st_size == tree.bytes:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with open(partial, "wb") as out:
        for f in files_of(tree.path):
            with open(f, "rb") as src:
                shutil.copyfileobj(src, out, MIB)
    partial.rename(target)
    return target


def warm(path: Path) -> int:
    """Given a file or folder, read all of it so it sits in the page cache; return bytes read."""
    buf = bytearray(MIB)
    view = memoryview(buf)
    total = 0
    for f in [path] if path.is_file() else files_of(path):
        with open(f, "rb", buffering=0) as src:
            while n := src.readinto(view):
                total += n
    return total


@contextmanager
def revision(rev: str, dest: Path) -> Iterator[Path]:
    """Given a git revision and a free path, check it out there for the block's length; yield the path."""
    repo = Path(__file__).resolve().parent.parent
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(dest), rev],
                   check=True, capture_output=True)
    try:
        yield dest
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(dest)],
                       capture_output=True)
