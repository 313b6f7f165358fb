"""What would independent gzip members (or zstd frames) per file cost a tar.gz (tar.zst) in size?

    python bench/gzip_members.py                 # the bench trees, level 1
    python bench/gzip_members.py --level 6 --mixed-mib 256 --small 5000 --tree SRC

A tar.gz is one gzip member today, so its compressed size is known only once
sent. Cut into independent members (RFC 1952 2.2: a gzip file is members back
to back), each member's length could be kept like a deflated ZIP entry's and
the archive sized. This compares, per tree, the size of today's single stream
with: one member per file (its tar header, data and padding), and members
grouping consecutive files until they hold at least 1 MiB or 4 MiB of tar;
the same for zstd frames. Each member is compressed by zipserve's own engine
at the same level, so only the cuts differ.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import trees

from zipserve.encode import compress
from zipserve.service import Service
from zipserve.settings import Settings

MIB = 1 << 20
Pack = Callable[[Iterable[bytes]], int]
CUTS = (("per file", 0), ("grouped >= 1 MiB", MIB), ("grouped >= 4 MiB", 4 * MIB))


def raw_tar(service: Service, root: Path) -> tuple[bytes, list[int]]:
    """Given a service on a tree, return its plain tar and where each entry starts in it."""
    plan = service.archive(["."], "tar.gz")
    assert plan.layout is not None
    raw = b"".join(service.encoder.tar_raw(plan))
    return raw, [*plan.layout.offsets, len(raw)]


def members(raw: bytes, starts: list[int], group: int) -> list[tuple[bytes, int]]:
    """Given a tar and its entries' starts, return the spans that become members (>= group bytes each).

    Each comes with where it starts in the tar.
    """
    out, begin = [], 0
    for at in starts[1:]:
        if at - begin >= group or at == len(raw):
            out.append((raw[begin:at], begin))
            begin = at
    if begin < len(raw):
        out.append((raw[begin:], begin))
    return out


def entries(span: bytes, start: int, starts: list[int]) -> list[bytes]:
    """Given a member's span and where it starts, return it cut at its entries, as the stream reads them."""
    cuts = [at - start for at in starts if start <= at <= start + len(span)]
    return [span[a:b] for a, b in zip([0, *cuts], [*cuts, len(span)], strict=True) if b > a]


def packers(service: Service, level: int) -> dict[str, Pack]:
    """Given a service and a level, return the gzip and zstd compressors, each giving a length."""
    pool = service.pool

    def gz(chunks: Iterable[bytes]) -> int:
        return sum(map(len, compress.gzip_stream(chunks, level=level, pool=pool)))

    def zst(chunks: Iterable[bytes]) -> int:
        return sum(map(len, compress.zstd_stream(chunks, level=compress.zstd_level(level),
                                                 threads=pool.workers)))
    return {"gzip": gz, "zstd": zst}


def measure(name: str, root: Path, level: int) -> list[str]:
    """Given a tree, return table rows: each cut's compressed size and cost against one stream."""
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(Settings(root=root, crc_cache=Path(tmp) / "crc.sqlite3", level=level))
        try:
            raw, starts = raw_tar(service, root)
            rows = []
            for kind, pack in packers(service, level).items():
                plan = service.archive(["."], "tar.gz" if kind == "gzip" else "tar.zst")
                single = sum(map(len, service.encoder.body(plan)))  # what the server sends today
                rows.append(f"| {name} | {kind} | one stream | {single:,} | - |")
                for label, group in CUTS:
                    spans = members(raw, starts, group)
                    total = sum(pack(entries(span, start, starts)) for span, start in spans)
                    rows.append(f"| {name} | {kind} | {label} ({len(spans):,} members) | {total:,} "
                                f"| {100 * (total - single) / single:+.2f} % |")
            return rows
        finally:
            service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--mixed-mib", type=int, default=256)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--tree", action="append", default=[], type=Path,
                        help="Also measure this folder (repeatable), e.g. a source tree.")
    args = parser.parse_args()
    mixed = trees.mixed_tree(mib=args.mixed_mib)
    small = trees.small_tree(count=args.small)
    print(f"level {args.level}\n")
    print("| tree | codec | cut | bytes | vs one stream |\n|---|---|---|---:|---:|")
    named = [(f"mixed {args.mixed_mib} MiB", mixed.path), (f"small {args.small} files", small.path)]
    for name, path in named + [(p.name, p) for p in args.tree]:
        for row in measure(name, path, args.level):
            print(row)


if __name__ == "__main__":
    main()
