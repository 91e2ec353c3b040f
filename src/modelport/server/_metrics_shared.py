"""``/metrics`` summed over the workers of ``modelport serve --workers N``.

A scrape reaches one worker, so each worker's figures must be where every
other can read them: prometheus-client's multiprocess mode, switched on by
``PROMETHEUS_MULTIPROC_DIR`` (the serve command sets it before the workers
start; prometheus-client reads it when first imported). Counters and
histograms then live in memory-mapped files, one per worker, and a scrape
sums them (:class:`~prometheus_client.multiprocess.MultiProcessCollector`).

What a worker holds as a plain number rather than a metric (requests in
flight, the ledger's written/dropped/failed records, the requests it
answered) is copied into such files once a second by a thread, and by the
scraping worker just before it answers. Requests per worker are a gauge with
a ``pid`` label (prometheus-client adds it in the ``all`` mode): how evenly
the kernel spreads connections over the workers.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

if TYPE_CHECKING:
    from modelport.ledger import Ledger

__all__ = ["SharedFigures", "multiprocess_dir"]

#: Seconds between copies of a worker's plain numbers into the shared files.
SYNC_INTERVAL_S = 1.0


def multiprocess_dir() -> str | None:
    """The folder the workers share metrics in, or None for one process."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class SharedFigures:
    """One worker's plain numbers, mirrored into multiprocess metrics."""

    def __init__(self, registry: CollectorRegistry, source: Any) -> None:
        # ``source`` is the worker's GatewayMetrics (in_flight, answered).
        self._source = source
        self.ledger: Ledger | None = None
        self._synced = {"written": 0, "dropped": 0, "failed": 0}
        self._lock = threading.Lock()
        self._in_flight = Gauge(
            "modelport_gateway_in_flight_requests",
            "Requests being answered right now (streams included).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._answered = Gauge(
            "modelport_gateway_worker_requests",
            "Requests answered by each worker process of this gateway (pid).",
            registry=registry,
            multiprocess_mode="all",
        )
        self._ledger = {
            "written": Counter(
                "modelport_ledger_records_written",
                "Usage records the ledger's database accepted.",
                registry=registry,
            ),
            "dropped": Counter(
                "modelport_ledger_records_dropped",
                "Usage records lost: the write queue was full, or the database refused them.",
                registry=registry,
            ),
            "failed": Counter(
                "modelport_ledger_records_failed",
                "Of the records dropped, those the database refused (see the log for why).",
                registry=registry,
            ),
        }
        thread = threading.Thread(target=self._run, name="modelport-metrics-sync", daemon=True)
        thread.start()

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(SYNC_INTERVAL_S):
            self.sync()

    def sync(self) -> None:
        """Copy this worker's plain numbers into the shared files."""
        with self._lock:
            self._in_flight.set(self._source.in_flight)
            self._answered.set(self._source.answered)
            ledger = self.ledger
            if ledger is None:
                return
            for name, counter in self._ledger.items():
                now = int(getattr(ledger, name))
                if now > self._synced[name]:
                    counter.inc(now - self._synced[name])
                    self._synced[name] = now

    def render(self) -> bytes:
        """Every worker's metrics, summed (the ``pid``-labelled gauge per worker)."""
        from prometheus_client.multiprocess import MultiProcessCollector

        self.sync()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
