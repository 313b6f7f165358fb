"""--workers N: any worker serves any request, one scrape sees every worker."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import metrics


def worker_pids(server) -> set[int]:
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    return {int(pid) for pid in children}


def test_two_workers_start(tree, server_factory):
    srv = server_factory(tree, "--workers", "2")
    assert len(worker_pids(srv)) >= 2


def test_every_worker_gives_the_same_bytes_and_ranges(tree, server_factory):
    """A resume landing on another worker continues the same archive."""
    srv = server_factory(tree, "--workers", "2")
    url = srv.url + "/archive/docs.zip?compression=store"
    with httpx.Client() as c:
        full = c.get(url).content
        etag = c.head(url).headers["etag"].strip('"')
        for start in range(0, len(full), max(len(full) // 40, 1)):
            # New connections, so the kernel spreads them over both workers.
            r = httpx.get(f"{url}&etag={etag}", headers={"Range": f"bytes={start}-"})
            assert r.status_code == 206
            assert r.content == full[start:]


def test_one_scrape_sums_every_worker(tree, server_factory):
    srv = server_factory(tree, "--workers", "2")
    before = metrics(srv.url).get("zipserve_archives_total:complete", 0)
    for _ in range(20):
        assert httpx.get(srv.url + "/archive/docs.tar").status_code == 200
    for _ in range(5):  # whichever worker answers the scrape sees all 20
        assert metrics(srv.url)["zipserve_archives_total:complete"] - before == 20
    assert metrics(srv.url)["zipserve_streams_in_flight"] == 0
