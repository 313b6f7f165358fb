"""Memory with many streams of URL objects: read-ahead (whole files and parts of big ones) comes out
of one budget per process, and a cold body holds at most one file whole for its header's CRC.

Slow clients of a manifest's stored ZIP whose sources are nginx URLs (a cold
server: it learns every CRC as it goes) must keep the server's RSS under 100
MiB plus 5 MiB per stream beyond the first, as S3 streams must.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import Serve, SlowClient, metrics, rss_mib, wait_until
from tests.manifest_tools import link, manifest_of, write
from tests.origin import Origin, start_origin, stop_origin

MiB = 1 << 20
MTIME = 1_700_000_000
SAMPLES, EVERY = 40, 0.25  # RSS samples while every client is reading


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """Big files (several parts), photo-sized ones (held whole when cold) and small ones."""
    served = start_origin(tmp_path_factory.mktemp("origin"), {})
    objects = {f"ok/big{i}.bin": os.urandom(24 * MiB) for i in range(2)}
    objects |= {f"ok/mid{i}.jpg": os.urandom(3 * MiB) for i in range(8)}
    objects |= {f"ok/small{i:03d}.jpg": os.urandom(20_000) for i in range(200)}
    for name, data in objects.items():
        write(served.www / name, data, MTIME)
    yield served
    stop_origin(served)


def test_slow_clients_of_a_url_stored_zip_keep_rss_under_100_mib_plus_5_per_stream(
        serve: Serve, tmp_path: Path, origin: Origin) -> None:
    streams = 20
    server = serve(tmp_path, "--allow-url", f"{origin.base}/ok/")
    names = sorted(p.name for p in (origin.www / "ok").iterdir())
    entries = [{"source": f"{origin.base}/ok/{name}", "name": name} for name in names]
    path = link(server, manifest_of(entries, "zip", "store"))["path"]
    stop = threading.Event()
    clients: list[SlowClient] = []
    try:
        with ThreadPoolExecutor(8) as pool:
            clients = list(pool.map(lambda _: SlowClient(server.port, path, stop), range(streams)))
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
