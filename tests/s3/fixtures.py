"""The fixtures the S3 test modules share, loaded with ``pytest_plugins = ["tests.s3.fixtures"]``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.s3.ceph_rgw import CephRgw
from tests.s3.fault_proxy import FaultProxy
from zipserve.service import Service
from zipserve.settings import Settings


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


@pytest.fixture
def services(s3_env: CephRgw) -> Iterator[Callable[..., Service]]:
    """Make in-process services on the store (settings as keywords, s3_* ones as source options;
    closed after the test)."""
    made: list[Service] = []

    def make(served: str, **settings: Any) -> Service:
        options = {"s3_endpoint": s3_env.endpoint}
        options.update({k: settings.pop(k) for k in list(settings) if k.startswith("s3_")})
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
