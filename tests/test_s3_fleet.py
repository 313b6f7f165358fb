"""CRCs a fleet shares (--s3-crc-prefix): a resume on a cold server asks the store once for them.

Counted on the wire: the cold servers reach the real RGW through the proxy
(which passes everything and records every request), so what is counted is
what the store was asked, retries included.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.s3.fault_proxy import FaultProxy, Seen
from tests.s3.support import body, new_bucket, put_all
from zipserve.service import Service

CRC_PREFIX = ".zipserve-crc/"
FILES = 50


@pytest.fixture
def fleet_bucket(s3: Any) -> str:
    """A bucket with a folder of 50 files of 20-200 KB."""
    name = new_bucket(s3)
    rng = random.Random(5)
    put_all(s3, name, {f"v/{i:02d}.bin": os.urandom(rng.randrange(20_000, 200_000))
                       for i in range(FILES)})
    return name


def in_crc_area(fleet_bucket: str) -> Callable[[Seen], bool]:
    return lambda s: s.target.startswith(f"/{fleet_bucket}/{CRC_PREFIX}")


def data_gets(fleet_bucket: str) -> Callable[[Seen], bool]:
    return lambda s: s.method == "GET" and s.target.startswith(f"/{fleet_bucket}/v/")


def resume(svc: Service, start: int, whole: bytes) -> None:
    """Given a cold service, download the stored ZIP from `start` and check it against the whole."""
    assert body(svc, ["v"], "zip", start, compression="store") == whole[start:]
    assert svc.root.crc_store is not None
    svc.root.crc_store.flush()  # type: ignore[attr-defined]


def files_from(svc: Service, start: int) -> set[str]:
    """Given a service and an offset in the stored ZIP, return the files whose data lies past it."""
    plan = svc.archive(["v"], "zip", compression="store")
    assert plan.layout is not None and plan.total is not None
    return {"/".join(plan.entries[piece.index].node.path)
            for piece, _, _ in plan.layout.overlapping(start, plan.total) if piece.kind == "data"}


def test_a_first_download_on_a_cold_fleet_asks_no_crc_and_writes_each_once(
        fleet_bucket: str, services: Callable[..., Service], faults: FaultProxy) -> None:
    a = services(f"s3://{fleet_bucket}", s3_crc_prefix=CRC_PREFIX, s3_endpoint=faults.url)
    body(a, ["v"], "zip", compression="store")
    a.root.crc_store.flush()  # type: ignore[union-attr]
    asked = faults.requests(in_crc_area(fleet_bucket))
    # Each file is read for its bytes anyway, which gives its CRC: asking first would only wait.
    assert [s for s in asked if s.method == "GET"] == []
    puts = [s.target.split("/")[3] for s in asked if s.method == "PUT"]
    assert len(puts) == FILES + 1 and puts.count("zip") == 1  # one per file, one for the ZIP


def test_a_cold_server_resuming_at_90_percent_asks_the_store_once_for_crcs(
        fleet_bucket: str, services: Callable[..., Service], faults: FaultProxy) -> None:
    a = services(f"s3://{fleet_bucket}", s3_crc_prefix=CRC_PREFIX)
    whole = body(a, ["v"], "zip", compression="store")  # a complete download: every CRC known
    a.root.crc_store.flush()  # type: ignore[union-attr]
    b = services(f"s3://{fleet_bucket}", s3_crc_prefix=CRC_PREFIX, s3_endpoint=faults.url)
    start = len(whole) * 9 // 10
    resume(b, start, whole)
    asked = faults.requests(in_crc_area(fleet_bucket))
    # The archive's object, asked at the central directory or found through the pointer
    # of the first file whose CRC the body looks up (then: one per-file GET before it).
    assert len(asked) <= 2 and {s.method for s in asked} == {"GET"}, asked
    assert [s.status for s in asked if s.target.split("/")[3] == "zip"] == [200]
    assert {s.target.split("?")[0][len(fleet_bucket) + 2:]
            for s in faults.requests(data_gets(fleet_bucket))} == files_from(b, start)


def test_a_cold_resume_without_an_archive_object_asks_file_by_file_then_writes_one(
        fleet_bucket: str, services: Callable[..., Service], faults: FaultProxy) -> None:
    a = services(f"s3://{fleet_bucket}", s3_crc_prefix=CRC_PREFIX)
    plan = a.archive(["v"], "zip", compression="store")
    assert plan.total is not None
    half = plan.total // 2
    whole_first_half = body(a, ["v"], "zip", 0, half, compression="store")  # cut: no central dir
    a.root.crc_store.flush()  # type: ignore[union-attr]
    b = services(f"s3://{fleet_bucket}", s3_crc_prefix=CRC_PREFIX, s3_endpoint=faults.url)
    rest = body(b, ["v"], "zip", half, compression="store")
    whole = whole_first_half + rest
    b.root.crc_store.flush()  # type: ignore[union-attr]
    asked = faults.requests(in_crc_area(fleet_bucket))
    before_cut = FILES - len(files_from(b, half))
    archive = [(s.method, s.status) for s in asked if s.target.split("/")[3] == "zip"]
    assert archive == [("GET", 404), ("PUT", 200)]  # not there yet, then written
    files_asked = [s for s in asked if s.method == "GET" and s.target.split("/")[3] != "zip"]
    assert len(files_asked) >= before_cut  # each CRC that A learned, file by file
    faults.clear()
    c = services(f"s3://{fleet_bucket}", s3_crc_prefix=CRC_PREFIX, s3_endpoint=faults.url)
    resume(c, len(whole) * 9 // 10, whole)
    asked = faults.requests(in_crc_area(fleet_bucket))
    assert len(asked) <= 2 and {s.method for s in asked} == {"GET"}, asked

