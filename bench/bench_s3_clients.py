"""Which S3 client should zipserve read objects with? GET throughput and CPU, in one run.

Run: python bench/bench_s3_clients.py [--big-mib 256] [--small 1000] [--repeat 3]
against the store named by the usual variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION), e.g. the test cluster:

    python tests/s3/ceph_rgw.py start /tmp/ceph && eval "$(python tests/s3/ceph_rgw.py env /tmp/ceph)"

Cases, each on one big object and on many small ones, all in this process:

- boto3: get_object, the body read in 1 MiB chunks (one stream), and 8 MiB ranged GETs
  with 4 in flight from worker threads (what zipserve.s3 does);
- urllib3 with a presigned URL: the same requests without botocore's per-request work;
- obstore (Rust object_store; optional, measured when importable): get() streamed, and
  get_ranges() for the same parts.

MB/s is 10^6 bytes per wall second (best of the repeats: the machine may be shared);
CPU s/GB is this process's user+system time per 10^9 bytes; small objects report GETs
per second, sequential and with 16 threads; 1 MiB objects (what a tree of ordinary files
is made of) MB/s with 16 threads.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import urllib3
from botocore.config import Config

MIB = 1 << 20
PART = 8 * MIB
AHEAD = 4
SMALL_SIZE = 16 * 1024
THREADS = 16
MEDIUM = 128


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(fn: Callable[[], int], repeat: int) -> tuple[float, float]:
    """Given a reader returning bytes read, return (best MB/s, CPU s/GB of that run)."""
    best = (0.0, 0.0)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), cpu()
        n = fn()
        wall, used = time.perf_counter() - t0, cpu() - c0
        rate = n / wall / 1e6
        if rate > best[0]:
            best = (rate, used / n * 1e9)
    return best


def parts(size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + PART, size)) for lo in range(0, size, PART)]


def in_order(pool: ThreadPoolExecutor, fetch: Callable[[int, int], bytes], size: int) -> int:
    """Fetch the parts with AHEAD in flight, consumed in order (as a stream would); return bytes."""
    pending: list[Any] = []
    todo = iter(parts(size))
    total = 0
    for span in todo:
        pending.append(pool.submit(fetch, *span))
        if len(pending) >= AHEAD:
            break
    while pending:
        total += len(pending.pop(0).result())
        span = next(todo, None)
        if span is not None:
            pending.append(pool.submit(fetch, *span))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    s3 = boto3.client("s3", endpoint_url=endpoint, config=Config(
        s3={"addressing_style": "path"}, max_pool_connections=32,
        retries={"mode": "standard", "max_attempts": 4}))
    bucket = "bench-clients-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    size = args.big_mib * MIB
    s3.put_object(Bucket=bucket, Key="big", Body=os.urandom(MIB) * args.big_mib)
    small_keys = [f"small/{i:05d}" for i in range(args.small)]
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k,
                                              Body=os.urandom(SMALL_SIZE)), small_keys))
    medium_keys = [f"medium/{i:04d}" for i in range(MEDIUM)]
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=os.urandom(MIB)),
                      medium_keys))
    http = urllib3.PoolManager(maxsize=32)

    def boto_stream() -> int:
        body = s3.get_object(Bucket=bucket, Key="big")["Body"]
        n = 0
        with body:
            while data := body.read(MIB):
                n += len(data)
        return n

    def boto_part(lo: int, hi: int, key: str = "big") -> bytes:
        with s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={lo}-{hi - 1}")["Body"] as body:
            return bytes(body.read())

    def presigned(key: str) -> str:
        return str(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}))

    big_url = presigned("big")

    def urllib3_stream() -> int:
        response = http.request("GET", big_url, preload_content=False)
        n = 0
        for data in response.stream(MIB):
            n += len(data)
        response.release_conn()
        return n

    def urllib3_part(lo: int, hi: int, url: str = big_url) -> bytes:
        return bytes(http.request("GET", url, headers={"Range": f"bytes={lo}-{hi - 1}"}).data)

    cases: list[tuple[str, Callable[[], int]]] = []
    pool = ThreadPoolExecutor(THREADS)
    cases += [("boto3 one stream", boto_stream),
              ("boto3 8 MiB parts x4 threads", lambda: in_order(pool, boto_part, size)),
              ("urllib3 presigned one stream", urllib3_stream),
              ("urllib3 presigned parts x4", lambda: in_order(pool, urllib3_part, size))]
    store: Any = None
    try:
        import obstore
        from obstore.store import S3Store

        store = S3Store(bucket, endpoint=endpoint, region=os.environ.get("AWS_DEFAULT_REGION"),
                        client_options={"allow_http": True}, virtual_hosted_style_request=False)

        def obstore_stream() -> int:
            n = 0
            for data in obstore.get(store, "big").stream(MIB):
                n += len(data)
            return n

        def obstore_ranges() -> int:
            spans = parts(size)
            got = obstore.get_ranges(store, "big", starts=[a for a, _ in spans],
                                     ends=[b for _, b in spans])
            return sum(len(g) for g in got)

        cases += [("obstore get() stream", obstore_stream),
                  ("obstore get_ranges (all parts)", obstore_ranges)]
    except ImportError:
        print("obstore not importable: its rows are left out")

    print(f"one {args.big_mib} MiB object:")
    print(f"{'case':34} {'MB/s':>8} {'CPU s/GB':>9}")
    for name, fn in cases:
        rate, cpu_gb = measure(fn, args.repeat)
        print(f"{name:34} {rate:8.0f} {cpu_gb:9.2f}")

    urls = {k: presigned(k) for k in small_keys}
    small: list[tuple[str, Callable[[str], bytes]]] = [
        ("boto3", lambda k: boto_part(0, SMALL_SIZE, k)),
        ("urllib3 presigned", lambda k: urllib3_part(0, SMALL_SIZE, urls[k]))]
    if store is not None:
        small.append(("obstore", lambda k: bytes(obstore.get(store, k).bytes())))
    print(f"\n{args.small} objects of {SMALL_SIZE // 1024} KiB (GETs per second):")
    print(f"{'case':34} {'1 thread':>9} {f'{THREADS} threads':>11} {'CPU ms/GET':>11}")
    for name, get in small:
        rates = []
        for threads in (1, THREADS):
            best, cpu_per = 0.0, 0.0
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), cpu()
                if threads == 1:
                    for k in small_keys:
                        get(k)
                else:
                    list(pool.map(get, small_keys))
                wall, used = time.perf_counter() - t0, cpu() - c0
                if len(small_keys) / wall > best:
                    best, cpu_per = len(small_keys) / wall, used / len(small_keys) * 1000
            rates.append((best, cpu_per))
        print(f"{name:34} {rates[0][0]:9.0f} {rates[1][0]:11.0f} {rates[0][1]:11.2f}")
    print(f"\n{MEDIUM} objects of 1 MiB, {THREADS} threads:")
    print(f"{'case':34} {'MB/s':>8} {'CPU s/GB':>9}")
    medium_urls = {k: presigned(k) for k in medium_keys}
    medium: list[tuple[str, Callable[[str], bytes]]] = [
        ("boto3", lambda k: boto_part(0, MIB, k)),
        ("urllib3 presigned", lambda k: urllib3_part(0, MIB, medium_urls[k]))]
    if store is not None:
        medium.append(("obstore", lambda k: bytes(obstore.get(store, k).bytes())))
    for name, get in medium:
        rate, cpu_gb = measure(lambda get=get: sum(len(b) for b in pool.map(get, medium_keys)),
                               args.repeat)
        print(f"{name:34} {rate:8.0f} {cpu_gb:9.2f}")
    pool.shutdown()
    for k in ["big", *small_keys, *medium_keys]:
        s3.delete_object(Bucket=bucket, Key=k)
    s3.delete_bucket(Bucket=bucket)
    s3.close()


if __name__ == "__main__":
    main()
