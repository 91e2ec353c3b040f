"""The gateway's Prometheus metrics, and ``GET /metrics`` that exposes them.

Each app gets its own :class:`~prometheus_client.CollectorRegistry` (tests and
embedders may build several apps in one process). Label children are cached,
because ``Counter.labels()`` takes a lock and validates its arguments on every
call, and the hot path touches these on every request. Requests are counted
and timed by :class:`~modelport.server._observe.ObserveMiddleware`; the chat
routes add errors, time to first token and tokens.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from modelport.server._loop_counter import LoopCounter
from modelport.server._loop_histogram import LoopHistogram
from modelport.server._metrics_shared import WorkerExposition, worker_metrics_dir

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from modelport.ledger import Ledger
    from modelport.server._guard import BodyBudget
    from modelport.types import Usage

__all__ = ["MAX_MODEL_LABELS", "OTHER_MODELS", "GatewayMetrics", "metrics_endpoint"]

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip
_TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")

#: How many model addresses get a label of their own; later ones share
#: :data:`OTHER_MODELS`. The address is what the client sent, so without a cap a
#: client inventing a name per request would grow ``/metrics`` without end.
MAX_MODEL_LABELS = 200
#: The label every model past :data:`MAX_MODEL_LABELS` shares.
OTHER_MODELS = "other"


class GatewayMetrics:
    """The gateway's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        # The *_created series double the exposition for no use on a gateway.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Counted on every request: plain dicts, collected when scraped (see _loop_counter).
        self.requests = LoopCounter(
            "modelport_gateway_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
        )
        r.register(self.requests)
        self.errors = Counter(
            "modelport_gateway_errors",
            "Failed chat requests, by modelport error class.",
            ["error"],
            registry=r,
        )
        self.disconnects = Counter(
            "modelport_gateway_client_disconnects",
            "Streams the client closed before they ended (the upstream call is cancelled).",
            registry=r,
        )
        # Observed once or twice a request: plain lists too (see _loop_histogram).
        self.latency = LoopHistogram(
            "modelport_gateway_request_duration_seconds",
            "Time from request to the last byte of the response, by route template.",
            ("route",),
            _LATENCY_BUCKETS,
        )
        r.register(self.latency)
        self.ttft = LoopHistogram(
            "modelport_gateway_time_to_first_token_seconds",
            "Time from request to the first event from the upstream, for streamed chats.",
            ("model",),
            _LATENCY_BUCKETS,
        )
        r.register(self.ttft)
        self.tokens = LoopCounter(
            "modelport_gateway_tokens",
            "Tokens reported by upstreams, by model address and kind.",
            ("model", "kind"),
        )
        r.register(self.tokens)
        #: Requests being answered right now: a plain count, read by the gauge at each
        #: scrape (Gauge.inc/dec take a lock on every request; only the event loop counts).
        self.in_flight = 0
        #: Requests answered by this process (per worker under ``serve --workers``).
        self.answered = 0
        Gauge(
            "modelport_gateway_in_flight_requests",
            "Requests being answered right now (streams included).",
            registry=r,
        ).set_function(lambda: self.in_flight)
        Gauge(
            "modelport_gateway_asyncio_tasks",
            "asyncio tasks alive on the gateway's event loop (a leak shows as growth at rest).",
            registry=r,
        ).set_function(_task_count)
        folder = worker_metrics_dir()
        #: One of the workers of ``serve --workers N``: a scrape sums them all.
        self._workers = WorkerExposition(r, self, folder) if folder is not None else None
        self._children: dict[tuple[Any, ...], Any] = {}
        self._model_labels: set[str] = set()
        self._token_keys: dict[str, tuple[tuple[str, str], ...]] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.answered += 1
        self.requests.inc((route, method, str(status)))
        self.latency.observe((route,), seconds)

    def observe_error(self, exc: BaseException) -> None:
        self._child(self.errors, type(exc).__name__).inc()

    def _model_label(self, model: str) -> str:
        """``model``, while fewer than :data:`MAX_MODEL_LABELS` have a label; else ``other``.

        Only models an upstream answered for are observed (the first event, the
        usage), so a name that leads nowhere never takes a label.
        """
        labels = self._model_labels
        if model in labels:
            return model
        if len(labels) < MAX_MODEL_LABELS:
            labels.add(model)
            return model
        return OTHER_MODELS

    def observe_ttft(self, model: str, seconds: float) -> None:
        self.ttft.observe((self._model_label(model),), seconds)

    def observe_usage(self, model: str, usage: Usage) -> None:
        label = self._model_label(model)
        keys = self._token_keys.get(label)
        if keys is None:  # one tuple of label sets per model label (at most 201)
            keys = self._token_keys[label] = tuple((label, kind) for kind in _TOKEN_KINDS)
        # Straight-line on the counter's dict, kinds in the order they were always added
        # (a new label set is listed where it first came): once a call, on the event loop.
        counts = self.tokens.values
        input_key, output_key, read_key, write_key, reasoning_key = keys
        if tokens := usage.input_tokens:
            counts[input_key] = counts.get(input_key, 0.0) + tokens
        if tokens := usage.output_tokens:
            counts[output_key] = counts.get(output_key, 0.0) + tokens
        if tokens := usage.cache_read_tokens:
            counts[read_key] = counts.get(read_key, 0.0) + tokens
        if tokens := usage.cache_write_tokens:
            counts[write_key] = counts.get(write_key, 0.0) + tokens
        if tokens := usage.reasoning_tokens:
            counts[reasoning_key] = counts.get(reasoning_key, 0.0) + tokens

    def watch_bodies(self, bodies: BodyBudget) -> None:
        """Export the bytes of request bodies being answered, read at each scrape."""
        Gauge(
            "modelport_gateway_request_body_bytes_in_flight",
            "Bytes of the bodies of requests being answered now (bounded; 503 past it).",
            registry=self.registry,
        ).set_function(lambda: bodies.held)

    def watch_ledger(self, ledger: Ledger) -> None:
        """Export the ledger's counters, read at each scrape (its losses are otherwise silent)."""
        self.registry.register(_LedgerCollector(ledger))

    def render(self) -> bytes:
        if self._workers is not None:
            return self._workers.render()
        return generate_latest(self.registry)


def _task_count() -> int:
    # Read at scrape time, on the loop that serves /metrics; 0 from any other thread.
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return 0


class _LedgerCollector(Collector):
    """The usage ledger's written, dropped and failed records, as counters."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def collect(self) -> Iterator[Metric]:
        ledger = self._ledger
        yield CounterMetricFamily(
            "modelport_ledger_records_written",
            "Usage records the ledger's database accepted.",
            value=ledger.written,
        )
        yield CounterMetricFamily(
            "modelport_ledger_records_dropped",
            "Usage records lost: past the bounds of the write queue and the outage spool, "
            "or refused by the database.",
            value=ledger.dropped,
        )
        yield CounterMetricFamily(
            "modelport_ledger_records_failed",
            "Of the records dropped, those the database refused (see the log for why).",
            value=ledger.failed,
        )
        yield GaugeMetricFamily(
            "modelport_ledger_records_pending",
            "Usage records not written yet: queued, or waiting out a database outage.",
            value=ledger.pending,
        )
        yield GaugeMetricFamily(
            "modelport_ledger_records_spooled",
            "Of the pending records, those kept on disk until the database is back.",
            value=ledger.spooled,
        )
        yield GaugeMetricFamily(
            "modelport_ledger_degraded",
            "1 while the ledger's database cannot take records (they wait), else 0.",
            value=1 if ledger.degraded else 0,
        )


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: the Prometheus text exposition format."""
    metrics: GatewayMetrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
