"""Shared fixtures: the sample tree, real servers on it (from disk or from S3), the in-process app.

Module-scoped servers come from `serve`, which stops them when the module ends;
`sample` is the sample tree on local disk, and `served` is the same tree from
each source a test should hold for: local disk, and a bucket of the real Ceph
RGW (that parameter carries the `ceph` marker; see tests/s3/fixtures.py for
when it skips).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from tests.helpers import (
    TIMEOUT,
    Serve,
    Server,
    Site,
    build_tree,
    local_truth,
    start_server,
    stop_server,
)
from zipserve.http.app import create_app
from zipserve.settings import Settings

# The S3 store and its clients, the fault proxy, and the `ceph` marker's rule.
pytest_plugins = ["tests.s3.fixtures"]


def _factory(folder: Callable[[], Path]) -> Iterator[Serve]:
    """Yield a maker of servers (each with its own folder for log and CRC cache); stop them after."""
    started: list[Server] = []

    def make(root: Path | str, *args: str, env: dict[str, str] | None = None) -> Server:
        srv = start_server(root, folder(), *args, env=env)
        started.append(srv)
        return srv
    try:
        yield make
    finally:
        for srv in started:
            stop_server(srv)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "root")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Serve]:
    """Start servers for one test: server_factory(root, *serve_args, env=...); stopped after it."""
    yield from _factory(lambda: tmp_path)


@pytest.fixture
def server(tree: Path, server_factory: Serve) -> Server:
    return server_factory(tree)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """Start servers for a module: serve(root, *serve_args, env=...); stopped when it ends."""
    yield from _factory(lambda: tmp_path_factory.mktemp("server"))


@pytest.fixture(scope="module")
def sample(serve: Serve, tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A real server on the sample tree, on local disk, for the module."""
    root = build_tree(tmp_path_factory.mktemp("sample") / "root")
    return Site(serve(root), root, local_truth(root))


@pytest.fixture(scope="module")
def http(sample: Site) -> Iterator[httpx.Client]:
    """A client of the module's sample server (base URL set)."""
    with httpx.Client(base_url=sample.url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module", params=["local", pytest.param("s3", marks=pytest.mark.ceph)])
def served(request: pytest.FixtureRequest) -> Site:
    """The sample tree served from each source: local disk (the module's `sample`), then S3.

    For S3 the tree is uploaded under a prefix of a new bucket, and `truth` holds
    what the store says (upload times, no modes).
    """
    if request.param == "local":
        site: Site = request.getfixturevalue("sample")
        return site
    site = request.getfixturevalue("s3_sample")
    return site


@pytest.fixture(scope="module")
def served_http(served: Site) -> Iterator[httpx.Client]:
    """A client of the `served` server (base URL set)."""
    with httpx.Client(base_url=served.url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def client(tree: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The ASGI app in process (no socket), for header and error checks."""

    app = create_app(Settings(root=tree, crc_cache=tmp_path / "crc.sqlite3",
                              records=tmp_path / "records.sqlite3"))
    with TestClient(app, base_url="http://testserver") as c:
        yield c
