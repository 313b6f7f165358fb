"""Helpers the S3 test modules share: buckets, trees uploaded to them, and bodies."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.helpers import Truth
from zipserve.service import Service


def new_bucket(s3: Any) -> str:
    name = "zs-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name)
    return name


def put_all(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]),
                      objects.items()))


def upload_tree(s3: Any, bucket: str, prefix: str, folder: Path) -> None:
    """Given a folder, upload its files, and a "name/" marker for each empty folder, under prefix."""
    objects = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file():
            objects[prefix + rel] = path.read_bytes()
        elif not any(path.iterdir()):
            objects[prefix + rel + "/"] = b""
    put_all(s3, bucket, objects)


def s3_truth(s3: Any, bucket: str, prefix: str) -> Truth:
    """Objects carry their upload time, no mode; a folder, its marker's time or its newest object's."""
    truth, markers, newest = Truth(), {}, {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel, when = obj["Key"][len(prefix):], int(obj["LastModified"].timestamp())
            parts = rel.rstrip("/").split("/")
            for i in range(1, len(parts)):
                folder = "/".join(parts[:i])
                newest[folder] = max(newest.get(folder, 0), when)
            if rel.endswith("/"):
                markers[rel.rstrip("/")] = when
            else:
                truth.mtimes[rel], truth.modes[rel] = when, 0o644
    for folder in newest.keys() | markers.keys():
        truth.mtimes[folder] = markers.get(folder, newest.get(folder, 0))
        truth.modes[folder] = 0o755
    return truth


def body(svc: Service, paths: list[str], fmt: str, start: int = 0, stop: int | None = None,
         **options: Any) -> bytes:
    """Given a service and an archive's request fields, return its body (or the span asked)."""
    plan = svc.archive(paths, fmt, **options)
    chunks = svc.encoder.body(plan, start, stop)
    try:
        return b"".join(chunks)
    finally:
        chunks.close()  # type: ignore[attr-defined]
