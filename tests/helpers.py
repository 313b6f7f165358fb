"""Small helpers shared by the tests that watch a running server."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx

_SAMPLE = re.compile(r'^(zipserve_\w+?)(?:\{outcome="(\w+)"\})? (\S+)$')


def metrics(url: str) -> dict[str, float]:
    """Given a server URL, return its /metrics samples: name (or name:outcome) -> value."""
    out = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[m[1] + (":" + m[2] if m[2] else "")] = float(m[3])
    return out


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll check (bounded in time) until it holds; return whether it did."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()
