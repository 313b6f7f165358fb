"""The boto3 client every part of an S3 source shares: standard retries, timeouts, path-style hosts.

Why boto3 in worker threads: once requests overlap, the store, not the client,
sets the pace; what boto3 costs is CPU per request (~3 ms, against ~0.7 ms for
obstore), and what it brings is the whole AWS credential chain, the standard
retry mode and every S3 field used (If-Match, ChecksumMode, ListObjectsV2
paging), with sync calls that fit the encoders' worker threads. Requests
overlap through the read-ahead (read.py). The data GETs, where the CPU per
request adds up, are only signed by it and fetched by urllib3 (signed.py).
Figures: docs/performance.md.
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
            signature_version="s3v4",  # presigned URLs too (sources/s3/signed.py), not SigV2
            s3={"addressing_style": style})
        return session.client("s3", endpoint_url=endpoint or None, config=config,
                              region_name=session.region_name or "us-east-1")

    made = client("auto")
    if "amazonaws.com" not in made.meta.endpoint_url:
        # A store of our own (Ceph, MinIO) is rarely set up for bucket-name hosts.
        made.close()
        made = client("path")
    return made
