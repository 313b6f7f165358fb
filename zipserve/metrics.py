"""Counters for /metrics (Prometheus text) and the streams-in-flight cap."""

from __future__ import annotations

import threading

from .streaming import Outcome


class Metrics:
    """Streams in flight, bytes sent and archives by outcome, for this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.bytes_sent = 0
        self.outcomes = {"complete": 0, "client_gone": 0, "failed": 0}

    def try_start(self, limit: int) -> bool:
        """Given the cap, count one more stream and return True, or return False when full."""
        with self._lock:
            if self.in_flight >= limit:
                return False
            self.in_flight += 1
            return True

    def finish(self, outcome: Outcome) -> None:
        """Given how a stream ended, count it and free its slot."""
        with self._lock:
            self.in_flight -= 1
            self.bytes_sent += outcome.sent
            self.outcomes[outcome.result] = self.outcomes.get(outcome.result, 0) + 1

    def render(self) -> str:
        """Return the counters in Prometheus text format."""
        with self._lock:
            lines = [
                "# HELP zipserve_streams_in_flight Archives being sent now.",
                "# TYPE zipserve_streams_in_flight gauge",
                f"zipserve_streams_in_flight {self.in_flight}",
                "# HELP zipserve_bytes_sent_total Archive body bytes sent.",
                "# TYPE zipserve_bytes_sent_total counter",
                f"zipserve_bytes_sent_total {self.bytes_sent}",
                "# HELP zipserve_archives_total Archives by outcome.",
                "# TYPE zipserve_archives_total counter",
            ]
            lines += [f'zipserve_archives_total{{outcome="{k}"}} {v}'
                      for k, v in sorted(self.outcomes.items())]
        return "\n".join(lines) + "\n"
