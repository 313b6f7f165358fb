"""Memory with many S3 streams: read-ahead comes out of one budget per process, not per stream.

Slow clients of a stored ZIP served from the real Ceph RGW (a cold server: it
learns every CRC as it goes, so it also holds small files whole while their
headers are made) must keep the server's RSS under 100 MiB plus 5 MiB per
stream beyond the first. Before the budget, each stream held up to
`--s3-read-ahead` parts of 8 MiB: 20 slow clients took the server to ~565 MiB.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.helpers import Server, SlowClient, metrics, rss_mib, wait_until
from tests.s3.ceph_rgw import CephRgw
from tests.s3.support import new_bucket, put_all
from zipserve.sources.ahead import AheadBudget

MiB = 1 << 20
TARGET = "/archive/m.zip?compression=store"
SAMPLES, EVERY = 40, 0.25  # RSS samples while every client is reading


@pytest.fixture(scope="module")
def mixed_bucket(s3: Any) -> str:
    """Big files (several parts), photo-sized ones (held whole when cold) and small ones."""
    name = new_bucket(s3)
    objects = {f"m/big{i}.bin": os.urandom(24 * MiB) for i in range(2)}
    objects |= {f"m/mid{i}.jpg": os.urandom(3 * MiB) for i in range(8)}
    objects |= {f"m/small{i:03d}.jpg": os.urandom(20_000) for i in range(200)}
    put_all(s3, name, objects)
    return name


@pytest.mark.parametrize("streams", [20, 50])
def test_slow_clients_of_an_s3_stored_zip_keep_rss_under_100_mib_plus_5_per_stream(
        mixed_bucket: str, ceph_rgw: CephRgw, server_factory: Callable[..., Server],
        streams: int) -> None:
    server = server_factory(f"s3://{mixed_bucket}", "--s3-endpoint", ceph_rgw.endpoint,
                            env=ceph_rgw.env())
    stop = threading.Event()
    clients: list[SlowClient] = []
    try:
        with ThreadPoolExecutor(8) as pool:
            clients = list(pool.map(lambda _: SlowClient(server.port, TARGET, stop), range(streams)))
        assert wait_until(lambda: metrics(server.url)["zipserve_streams_in_flight"] == streams)
        peak = 0.0
        for _ in range(SAMPLES):
            time.sleep(EVERY)
            peak = max(peak, rss_mib(server.proc.pid))
        in_flight = metrics(server.url)["zipserve_streams_in_flight"]
    finally:
        stop.set()
        for client in clients:
            client.close()
    bound = 100 + 5 * (streams - 1)
    print(f"\n{streams} slow clients: peak RSS {peak:.0f} MiB (bound {bound}),"
          f" {sum(c.got for c in clients) / streams / MiB:.1f} MiB read each")
    assert in_flight == streams  # all still streaming: slow, not done
    assert min(c.got for c in clients) > MiB  # every one of them moved
    assert peak < bound


@pytest.mark.parametrize(("readers", "idle", "asks", "granted"), [
    (1, 0, [8, 8, 8, 8, 8], [True, True, True, True, False]),  # one reader: the whole budget
    (1, 3, [8, 8, 8, 8, 8], [True, True, True, True, False]),  # readers that never ask: no split
    (2, 0, [8, 8, 8], [True, True, False]),  # two: half each
    (4, 0, [8, 1], [True, False]),
    (8, 0, [8], [False]),  # more readers than parts: none read ahead (the part in turn streams)
])
def test_read_ahead_budget_is_split_between_the_readers_asking(
        readers: int, idle: int, asks: list[int], granted: list[bool]) -> None:
    budget = AheadBudget(32)
    shares = [budget.share() for _ in range(readers + idle)]
    for other in shares[1:readers]:
        assert other.take(0)  # asks, and so joins the split
    assert [shares[0].take(n) for n in asks] == granted
    assert budget.used == sum(n for n, ok in zip(asks, granted, strict=True) if ok)


def test_read_ahead_budget_is_given_back_when_a_reader_closes() -> None:
    budget = AheadBudget(32)
    first, second = budget.share(), budget.share()
    assert second.take(0)
    assert first.take(16) and not first.take(8)
    first.close()
    first.close()  # idempotent
    assert (budget.used, budget.readers) == (0, 1)
    assert second.take(32)
    second.give(8)
    assert budget.used == 24
    assert not first.take(1)  # closed
