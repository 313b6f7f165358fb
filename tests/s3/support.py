"""Helpers the S3 test modules share: buckets and bodies."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zipserve.service import Service


def new_bucket(s3: Any) -> str:
    name = "zs-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name)
    return name


def put_all(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]),
                      objects.items()))


def body(svc: Service, paths: list[str], fmt: str, start: int = 0, stop: int | None = None,
         **options: Any) -> bytes:
    """Given a service and an archive's request fields, return its body (or the span asked)."""
    plan = svc.archive(paths, fmt, **options)
    chunks = svc.encoder.body(plan, start, stop)
    try:
        return b"".join(chunks)
    finally:
        chunks.close()  # type: ignore[attr-defined]
