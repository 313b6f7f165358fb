"""The URL source alone: HEAD and read every file of the mixed tree through nginx, no archive, no server.

Run: python bench/bench_url_reads.py [--mib 1024] [--repeat 3] [--max-spans 16]

What bench_manifest.py's URL case costs before any encoding or sending:
`HttpObjects.stat` of every object, then one body's reads of all of them in
order through `HttpObjects.prefetch` (the read-ahead a stored ZIP's body
uses, 16 MiB budget, 16 pool threads), with the CRC-32 of every chunk as a
ZIP body checks it. Prints MB/s and this process's CPU seconds (user, system)
per GB of file data; the page cache is warmed first.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from bench_stream import MB, free_port, nginx_cmd, running  # noqa: E402
from trees import DEFAULT_DIR, files_of, mixed_tree, warm  # noqa: E402

from zipserve.cli import tune_malloc  # noqa: E402
from zipserve.core.node import Node  # noqa: E402
from zipserve.core.urlpolicy import UrlPolicy  # noqa: E402
from zipserve.sources.ahead import AheadBudget  # noqa: E402
from zipserve.sources.crc import crc32  # noqa: E402
from zipserve.sources.http.objects import HttpObjects  # noqa: E402


def cpu() -> tuple[float, float]:
    """Return this process's user and system CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def read_all(objects: HttpObjects, nodes: list[Node], pool: ThreadPoolExecutor, max_spans: int) -> int:
    """Given stat'ed nodes, read them all as one body does; return the bytes read."""
    reader = objects.prefetch([(n, 0, n.size) for n in nodes], pool, AheadBudget(16 << 20).share(),
                              max_spans=max_spans)
    done = 0
    try:
        for node in nodes:
            value = 0
            for data in reader.read(node, 0, node.size, 1 << 20):
                value = crc32(data, value)
                done += len(data)
    finally:
        reader.close()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-spans", type=int, default=16)
    args = parser.parse_args()
    tune_malloc()  # as the server does
    tree = mixed_tree(DEFAULT_DIR, args.mib)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        with running(nginx_cmd(Path(tmp) / "nginx", tree.path, port), port, Path(tmp) / "nginx.log"), \
                ThreadPoolExecutor(16) as pool:
            objects = HttpObjects(UrlPolicy.from_prefixes([origin + "/"]))
            warm(tree.path)
            (u0, s0), start = cpu(), time.perf_counter()
            nodes = [objects.stat(f"{origin}/{f.relative_to(tree.path).as_posix()}")
                     for f in files_of(tree.path)]
            (u1, s1), seconds = cpu(), time.perf_counter() - start
            print(f"HEAD x {len(nodes)}: {seconds:.2f} s, {(u1 + s1 - u0 - s0) * 1e3 / len(nodes):.3f} "
                  f"ms CPU each", flush=True)
            for _ in range(args.repeat):
                (u0, s0), start = cpu(), time.perf_counter()
                done = read_all(objects, nodes, pool, args.max_spans)
                (u1, s1), seconds = cpu(), time.perf_counter() - start
                gb = done / 1e9
                print(f"read: {done / seconds / MB:.0f} MB/s, {(u1 + s1 - u0 - s0) / gb:.2f} CPU s/GB "
                      f"(user {(u1 - u0) / gb:.2f}, system {(s1 - s0) / gb:.2f})", flush=True)
            objects.close()


if __name__ == "__main__":
    main()
