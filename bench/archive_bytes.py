"""Are the archive bytes the same across two revisions? Packs the fixture tree both ways and compares.

    python bench/archive_bytes.py                      # this checkout against HEAD
    python bench/archive_bytes.py --base 0ed1de8       # against any revision
    python bench/archive_bytes.py --base REV --other DIR

Each revision packs one copy of fixtures/ (mtimes fixed, so checkout time does
not matter) with its own `python -m zipserve pack`, in every format and
compression, for the whole tree, one folder, one file and a selection; the table
shows each case's SHA-256 prefix and whether the two revisions agree. Exits 1
when any case differs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import trees

HERE = Path(__file__).resolve().parent.parent
MTIME = 1_700_000_000

CASES: list[tuple[str, list[str], list[str]]] = [
    (f"{what} {fmt} {comp}", paths, ["--format", fmt, "--compression", comp])
    for what, paths in [("tree", ["."]), ("folder", ["docs"]), ("selection", ["docs", "photos/2024"])]
    for fmt in ("zip", "tar", "tar.gz", "tar.zst")
    for comp in (("auto", "store", "deflate") if fmt == "zip" else ("auto",))
] + [("file gz", ["docs/notes/long.txt"], ["--format", "gz"]),
     ("tree zip level 6", ["."], ["--format", "zip", "--compression", "deflate", "--level", "6"])]


def fixed_tree(dest: Path) -> Path:
    """Given an empty folder, copy fixtures/ into it with every mtime fixed; return the copy."""
    root = dest / "fixtures"
    shutil.copytree(HERE / "fixtures", root)
    (root / "empty-folder").mkdir(exist_ok=True)
    # Bigger than a compression block (1 MiB), so block splitting and the ordered window count too.
    big = root / "big"
    big.mkdir()
    (big / "text.txt").write_bytes(b"".join(b"%d line of text, number %d\n" % (i % 97, i)
                                            for i in range(120_000)))
    (big / "noise.bin").write_bytes(b"".join(hashlib.sha256(b"%d" % i).digest()
                                             for i in range(80_000)))
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (MTIME, MTIME))
    return root


def pack_all(checkout: Path, root: Path, cache: Path) -> dict[str, str]:
    """Given a checkout and a tree, return case -> SHA-256 of what its `zipserve pack` writes."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "XDG_CACHE_HOME": str(cache)}
    out = {}
    for name, paths, args in CASES:
        done = subprocess.run([sys.executable, "-m", "zipserve", "pack", str(root), *paths, *args,
                               "-o", "-"], capture_output=True, env=env, cwd=checkout, timeout=300)
        if done.returncode != 0:
            raise SystemExit(f"{checkout}: {name}: {done.stderr.decode(errors='replace')}")
        out[name] = hashlib.sha256(done.stdout).hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", default="HEAD", help="revision to compare against (default HEAD)")
    ap.add_argument("--other", type=Path, default=HERE, help="checkout to compare (default: this one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with trees.revision(args.base, tmp / "base") as base:
            root = fixed_tree(tmp)
            theirs = pack_all(base, root, tmp / "cache-base")
            ours = pack_all(args.other, root, tmp / "cache-other")
    print(f"{'case':<32} {args.base[:12]:<14} {'this':<14} same")
    for name, _, _ in CASES:
        print(f"{name:<32} {theirs[name][:12]:<14} {ours[name][:12]:<14} "
              f"{'yes' if theirs[name] == ours[name] else 'NO'}")
    differ = [n for n, _, _ in CASES if theirs[n] != ours[n]]
    print(f"{len(CASES) - len(differ)} of {len(CASES)} cases identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
