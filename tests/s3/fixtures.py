"""The S3 fixtures and the `ceph` marker's rule; a pytest plugin, loaded by tests/conftest.py.

Every test that needs the real Ceph RGW carries the `ceph` marker: by hand, or
here at collection for every test that uses the `ceph_rgw` fixture. Where Ceph
is not installed, such a test skips with one reason, naming the packages;
where the environment variable CI is set (CI=true, as CI runners set it), it
fails instead, since CI must run them all. `ceph_missing` is the check
(ZIPSERVE_CEPH_PATH points it elsewhere than $PATH, to exercise it).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import Server, Site, build_tree, in_ci
from tests.s3.ceph_rgw import INSTALL_HINT, CephRgw, missing_binaries, start, stop
from tests.s3.fault_proxy import FaultProxy
from tests.s3.support import new_bucket, s3_truth, upload_tree
from zipserve.service import Service
from zipserve.settings import Settings

# --- the `ceph` marker ---------------------------------------------------------------------------


def ceph_missing() -> str | None:
    """Return why the Ceph tests cannot run here (the programs not found), or None if they can."""
    missing = missing_binaries()
    if not missing:
        return None
    return f"needs Ceph's radosgw (not found: {', '.join(missing)}); {INSTALL_HINT}"


def require_ceph() -> None:
    """Return if Ceph can run; else skip the test, or fail it when in CI."""
    reason = ceph_missing()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI is set: Ceph tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the store (before -m selects), so none can forget the marker."""
    for item in items:
        if "ceph_rgw" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("ceph"):
            item.add_marker(pytest.mark.ceph)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of a `ceph` test is set up: skip it, or fail it in CI, without Ceph."""
    if item.get_closest_marker("ceph") is not None:
        require_ceph()


# --- the store and its clients -------------------------------------------------------------------


@pytest.fixture(scope="session")
def ceph_rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephRgw]:
    """A real S3 server (a one-node Ceph cluster) for the session."""
    require_ceph()
    directory = tmp_path_factory.mktemp("ceph")
    cluster = start(directory, die_with_parent=True)
    try:
        yield cluster
    finally:
        stop(directory)
        shutil.rmtree(directory / "osd", ignore_errors=True)  # memstore's data: logs stay


@pytest.fixture(scope="module")
def s3(ceph_rgw: CephRgw) -> Iterator[Any]:
    """A boto3 client of the store, straight to RGW (never through the proxy)."""
    client = ceph_rgw.client(max_pool_connections=16)
    yield client
    client.close()


@pytest.fixture
def s3_env(ceph_rgw: CephRgw, monkeypatch: pytest.MonkeyPatch) -> CephRgw:
    """The usual AWS variables, as a server on this store would have them."""
    for key, value in ceph_rgw.env().items():
        monkeypatch.setenv(key, value)
    return ceph_rgw


@pytest.fixture(scope="module")
def s3_sample(ceph_rgw: CephRgw, s3: Any, serve: Callable[..., Server],
              tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A real server on a copy of the sample tree uploaded to a new bucket, served as s3://bucket/tree."""
    tree = build_tree(tmp_path_factory.mktemp("s3-sample") / "root")
    bucket = new_bucket(s3)
    upload_tree(s3, bucket, "tree/", tree)
    server = serve(f"s3://{bucket}/tree", "--s3-endpoint", ceph_rgw.endpoint, env=ceph_rgw.env())
    return Site(server, tree, s3_truth(s3, bucket, "tree/"))


@pytest.fixture
def services(s3_env: CephRgw) -> Iterator[Callable[..., Service]]:
    """Make in-process services on the store (settings as keywords, s3_* ones as source options;
    closed after the test)."""
    made: list[Service] = []

    def make(served: str, **settings: Any) -> Service:
        options = {"s3_endpoint": s3_env.endpoint}
        options.update({k: settings.pop(k) for k in list(settings) if k.startswith("s3_")})
        settings.setdefault("records", None)
        svc = Service(Settings(root=served, crc_cache=None, source_options=options, **settings))
        made.append(svc)
        return svc
    yield make
    for svc in made:
        svc.close()


@pytest.fixture(scope="module")
def proxy(ceph_rgw: CephRgw) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of RGW, for this module."""
    host, port = ceph_rgw.endpoint.removeprefix("http://").rsplit(":", 1)
    running = FaultProxy((host, int(port))).start()
    yield running
    running.stop()


@pytest.fixture
def faults(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The proxy with a clean record and no rule, restored after the test."""
    proxy.clear()
    yield proxy
    proxy.clear()
    proxy.reset_connections(0)
