"""The boto3 client every part of an S3 source shares: standard retries, timeouts, path-style hosts.

Why boto3 in worker threads (bench/bench_s3_clients.py: Ceph RGW 16 on
127.0.0.1, 2 cores shared with other jobs, best of 3). One 256 MiB object:
boto3 598 MB/s in one stream (0.31 CPU s/GB), 633 MB/s as 8 MiB ranged GETs 4
in flight; urllib3 on a presigned URL 696 MB/s; obstore 0.12 (Rust
object_store) 721 MB/s (0.41 CPU s/GB). 128 objects of 1 MiB on 16 threads:
boto3 507 MB/s, urllib3 619, obstore 643. 16 KiB objects: every client waits
~45 ms per GET on this store (21-22 GETs/s on one thread), 282-368 GETs/s on 16.
So the store, not the client, sets the pace once requests overlap; what boto3
costs is CPU per request: ~3 ms (1.7 CPU s/GB at 1 MiB objects) against
obstore's ~0.7 ms and a presigned URL's 0.3 ms plus urllib3's ~0.7. That is
most of what serving from S3 adds: a tar of 1 MiB files costs the server ~4.5
CPU s/GB from S3 against ~1 from disk (bench/bench_s3.py), so a server short
of CPU streams ~1 MiB files at a few hundred MB/s per core; big files barely
notice. Signing our own GETs for urllib3 would halve that, at the price of
redoing what botocore gets right (proxies, CA bundles, retries, error codes).
Against that, boto3 brings the whole AWS credential chain (environment, config
files and profiles, SSO, instance roles), the standard retry mode, and every
S3 field we use (If-Match, ChecksumMode, ChecksumType, ListObjectsV2 paging)
from the reference client, and its sync calls fit our encoders, which are sync
iterators in worker threads (an async client would need a loop bridge in every
read). Requests
overlap through the read-ahead (read.py), so the per-request latency is hidden.
"""

from __future__ import annotations

from typing import Any


def make_client(endpoint: str | None, pool: int) -> Any:
    """Given an endpoint (None: AWS, or one the environment or profile names), return a boto3 client."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    session = boto3.session.Session()

    def client(style: str) -> Any:
        config = Config(
            # Standard mode retries throttling, 5xx and connection errors with backoff
            # (up to 1, 2, then 4 s, jittered), before a response is handed to us: nothing
            # has been sent to our client yet. 4 tries in all ("max_attempts" counts retries).
            retries={"mode": "standard", "total_max_attempts": 4},
            connect_timeout=5, read_timeout=30, max_pool_connections=pool,
            s3={"addressing_style": style})
        return session.client("s3", endpoint_url=endpoint or None, config=config,
                              region_name=session.region_name or "us-east-1")

    made = client("auto")
    if "amazonaws.com" not in made.meta.endpoint_url:
        # A store of our own (Ceph, MinIO) is rarely set up for bucket-name hosts.
        made.close()
        made = client("path")
    return made
