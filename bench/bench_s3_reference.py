"""A stored ZIP from the Ceph RGW beside a plain 16-thread ranged-GET client of the same objects.

Run: python bench/bench_s3_reference.py [--mixed-mib 256] [--repeat 3] [--store DIR]
     [--dir /tmp/zipserve-bench]

The store is a real Ceph radosgw on 127.0.0.1 (tests/s3/ceph_rgw.py, memstore):
started here and stopped at the end, or the one running in --store DIR. The
mixed tree of bench/trees.py (~1 MiB files, half text, half random) is uploaded
once. In each round, in turn: the reference, boto3 on 16 threads GETting every
object (8 MiB ranges for bigger ones) and reading it to nowhere; the same GETs
as presigned URLs through urllib3 (what a cheaper client would cost); then zipserve's
stored ZIP of the prefix (CRCs warm: learned by one untimed download first),
curl to /dev/null. MB/s of object bytes, medians; the ratio is same-run; CPU
s/GB is each side's CPU time per GB (the reference's own process, the server's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import trees
from bench_s3 import BUCKET, curl, store, upload, zipserve
from trees import MIB

MB = 1_000_000
THREADS = 16
PART = 8 * MIB


def spans(s3: Any, prefix: str) -> list[tuple[str, int, int]]:
    """Given a client and a prefix, return every object's GETs: (key, first byte, last byte)."""
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            out += [(obj["Key"], lo, min(lo + PART, obj["Size"]) - 1)
                    for lo in range(0, obj["Size"], PART)]
    return out


def reference(s3: Any, gets: list[tuple[str, int, int]]) -> tuple[int, float, float]:
    """Given a client and the GETs, run them on 16 threads; return (bytes, seconds, CPU seconds)."""
    def get(span: tuple[str, int, int]) -> int:
        key, lo, hi = span
        body = s3.get_object(Bucket=BUCKET, Key=key, Range=f"bytes={lo}-{hi}")["Body"]
        got = 0
        while data := body.read(MIB):
            got += len(data)
        return got
    cpu, start = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        total = sum(pool.map(get, gets))
    return total, time.perf_counter() - start, time.process_time() - cpu


def presigned(s3: Any, gets: list[tuple[str, int, int]]) -> tuple[int, float, float]:
    """Given a client and the GETs, run them on 16 threads as presigned URLs through urllib3.

    What the server's reads would cost with boto3 only signing (the same
    credentials) and urllib3 fetching: return (bytes, seconds, CPU seconds).
    """
    import urllib3

    http = urllib3.PoolManager(maxsize=THREADS)

    def get(span: tuple[str, int, int]) -> int:
        key, lo, hi = span
        url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key},
                                        ExpiresIn=300)
        resp = http.request("GET", url, headers={"Range": f"bytes={lo}-{hi}"},
                            preload_content=False)
        got = 0
        while data := resp.read(MIB):
            got += len(data)
        resp.release_conn()
        return got
    cpu, start = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        total = sum(pool.map(get, gets))
    return total, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mixed-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", default=None, help="a running cluster's folder")
    parser.add_argument("--dir", type=Path, default=trees.DEFAULT_DIR)
    args = parser.parse_args()
    tree = trees.mixed_tree(args.dir, args.mixed_mib)
    prefix = f"{tree.name}/"
    with store(args.store) as cluster:
        upload(cluster, tree, prefix)
        s3 = cluster.client(max_pool_connections=THREADS)
        gets = spans(s3, prefix)
        ref: list[tuple[float, float]] = []
        signed: list[tuple[float, float]] = []
        ours: list[tuple[float, float]] = []
        url_path = "/archive?path=.&format=zip&compression=store&name=t"
        with zipserve(f"s3://{BUCKET}/{prefix}", cluster, args.dir / "logs" / "s3ref.log") as srv:
            curl(srv.url + url_path)  # CRCs learned, connections open
            for _ in range(args.repeat):
                size, seconds, cpu = reference(s3, gets)
                ref.append((size / seconds / MB, cpu / (size / 1e9)))
                size, seconds, cpu = presigned(s3, gets)
                signed.append((size / seconds / MB, cpu / (size / 1e9)))
                before = srv.cpu_seconds()[0]
                _, seconds, _ = curl(srv.url + url_path)
                ours.append((tree.bytes / seconds / MB,
                             (srv.cpu_seconds()[0] - before) / (tree.bytes / 1e9)))
        s3.close()
    r = statistics.median(x for x, _ in ref)
    print(f"mixed tree from the Ceph RGW: {tree.files:,} objects, {tree.bytes / MB:,.0f} MB,"
          f" {len(gets)} GETs; median of {args.repeat}; {os.cpu_count()} CPUs")
    print(f"{'case':<40}{'MB/s':>8}{'ratio':>7}{'CPU s/GB':>10}   runs MB/s")
    cases = ((f"boto3, {THREADS} threads, ranged GETs", ref),
             (f"presigned + urllib3, {THREADS} threads", signed),
             ("zipserve stored ZIP, CRCs warm", ours))
    for label, rows in cases:
        mbps, cpu = statistics.median(x for x, _ in rows), statistics.median(c for _, c in rows)
        runs = " ".join(f"{x:.0f}" for x, _ in rows)
        print(f"{label:<40}{mbps:>8,.0f}{mbps / r:>7.2f}{cpu:>10.2f}   {runs}")


if __name__ == "__main__":
    main()
