"""/metrics in Prometheus text (prometheus-client), and the streams-in-flight cap.

Under ``--workers N`` the CLI sets PROMETHEUS_MULTIPROC_DIR before the workers
start, so every worker writes its samples there and one scrape, whichever
worker answers it, sums them all. The cap itself is per process.
"""

from __future__ import annotations

import os
import threading

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from zipserve.http.streaming import Outcome
from zipserve.http.trim import IdleTrim

OUTCOMES = ("complete", "client_gone", "failed")
disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise to every scrape


class Metrics:
    """Streams in flight, bytes sent, archives by outcome and stream durations, for this app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.trim = IdleTrim(lambda: self.in_flight > 0)
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # One registry per app (tests build many apps in one process); in
        # multiprocess mode samples go to files and are collected at scrape time.
        self.registry = None if self.multiprocess else CollectorRegistry()
        reg = self.registry
        self.streams = Gauge("zipserve_streams_in_flight", "Archives being sent now.",
                             registry=reg, multiprocess_mode="livesum")
        self.sent = Counter("zipserve_bytes_sent", "Archive body bytes sent.", registry=reg)
        self.archives = Counter("zipserve_archives", "Archives by outcome.", ["outcome"],
                                registry=reg)
        self.seconds = Histogram("zipserve_archive_seconds", "Time to send an archive.",
                                 ["outcome"], registry=reg,
                                 buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, float("inf")))
        for outcome in OUTCOMES:
            self.archives.labels(outcome)

    def try_start(self, limit: int) -> bool:
        """Given the cap, count one more stream and return True, or return False when full."""
        with self._lock:
            if self.in_flight >= limit:
                return False
            self.in_flight += 1
        self.streams.inc()
        return True

    def release(self) -> None:
        """Free a slot taken by try_start for work that sent no archive (HEAD ?prepare=1)."""
        with self._lock:
            self.in_flight -= 1
        self.streams.dec()

    def finish(self, outcome: Outcome, seconds: float) -> None:
        """Given how a stream ended and how long it took, count it and free its slot.

        The last stream in flight ending schedules a heap trim (see trim.py).
        """
        with self._lock:
            self.in_flight -= 1
            idle = self.in_flight == 0
        if idle:
            self.trim.idle()
        self.streams.dec()
        self.sent.inc(outcome.sent)
        self.archives.labels(outcome.result).inc()
        self.seconds.labels(outcome.result).observe(seconds)

    def render(self) -> bytes:
        """Return every metric in Prometheus text format (all workers' in multiprocess mode)."""
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
