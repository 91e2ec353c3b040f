"""What the gateway observes: Prometheus metrics and the structured access log.

Each app gets its own :class:`~prometheus_client.CollectorRegistry` (tests and
embedders may build several apps in one process). Label children are cached,
because ``Counter.labels()`` takes a lock and validates its arguments on every
call, and the hot path touches these on every request.

:class:`ObserveMiddleware` is a pure ASGI middleware (Starlette's
``BaseHTTPMiddleware`` costs a task and a memory stream per request): it times
the request, reads the status from ``http.response.start``, counts it and
writes one access-log line. It never sees bodies and logs no header, so no key
can reach the log; the query string is left out for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import IO, TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from modelport.ledger import Ledger
    from modelport.types import Usage

__all__ = ["BufferedAccessLog", "GatewayMetrics", "ObserveMiddleware", "metrics_endpoint"]

access_logger = logging.getLogger("modelport.access")

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip
_TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")


class GatewayMetrics:
    """The gateway's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        # The *_created series double the exposition for no use on a gateway.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "modelport_gateway_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
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
        self.latency = Histogram(
            "modelport_gateway_request_duration_seconds",
            "Time from request to the last byte of the response, by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "modelport_gateway_time_to_first_token_seconds",
            "Time from request to the first event from the upstream, for streamed chats.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "modelport_gateway_tokens",
            "Tokens reported by upstreams, by model address and kind.",
            ["model", "kind"],
            registry=r,
        )
        #: Requests being answered right now: a plain count, read by the gauge at each
        #: scrape (Gauge.inc/dec take a lock on every request; only the event loop counts).
        self.in_flight = 0
        Gauge(
            "modelport_gateway_in_flight_requests",
            "Requests being answered right now (streams included).",
            registry=r,
        ).set_function(lambda: self.in_flight)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._child(self.requests, route, method, str(status)).inc()
        self._child(self.latency, route).observe(seconds)

    def observe_error(self, exc: BaseException) -> None:
        self._child(self.errors, type(exc).__name__).inc()

    def observe_ttft(self, model: str, seconds: float) -> None:
        self._child(self.ttft, model).observe(seconds)

    def observe_usage(self, model: str, usage: Usage) -> None:
        for kind, value in zip(
            _TOKEN_KINDS,
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.reasoning_tokens,
            ),
            strict=True,
        ):
            if value:
                self._child(self.tokens, model, kind).inc(value)

    def watch_ledger(self, ledger: Ledger) -> None:
        """Export the ledger's counters, read at each scrape (its losses are otherwise silent)."""
        self.registry.register(_LedgerCollector(ledger))

    def render(self) -> bytes:
        return generate_latest(self.registry)


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
            "Usage records lost: the write queue was full, or the database refused them.",
            value=ledger.dropped,
        )
        yield CounterMetricFamily(
            "modelport_ledger_records_failed",
            "Of the records dropped, those the database refused (see the log for why).",
            value=ledger.failed,
        )


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: the Prometheus text exposition format."""
    metrics: GatewayMetrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _route_label(scope: Scope, known: frozenset[str]) -> str:
    # The matched route's template keeps the label set small ("/plugins/{name}");
    # a request refused before routing keeps its path if it is one of ours, and
    # anything else (404 probes) shares one label.
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    return scope["path"] if scope["path"] in known else "unmatched"


class ObserveMiddleware:
    """Count, time and log every HTTP request (pure ASGI, no body buffering).

    ``access_log`` is True (one :mod:`logging` record per request on
    ``modelport.access``), False (none), or a :class:`BufferedAccessLog`.

    It also does what Starlette's ``ServerErrorMiddleware`` does, for the chat
    routes, which skip Starlette's stack: an exception before anything was sent
    gets a plain 500, then goes on to the server's log. (It already watches
    ``http.response.start``; a second wrapper would cost every streamed frame
    another call.) On the other routes Starlette's middleware, outside this
    one, then sees a response already started and only re-raises.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: GatewayMetrics,
        access_log: bool | BufferedAccessLog = True,
        known_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.known_paths = known_paths
        self._access: BufferedAccessLog | None = None
        if isinstance(access_log, BufferedAccessLog):
            self._access = access_log
            self.access_log = True
        else:
            self.access_log = bool(access_log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0  # nothing sent yet

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics = self.metrics
        metrics.in_flight += 1
        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            if not status:
                status = 500
                await _internal_server_error(send)
            raise
        finally:
            status = status or 500
            metrics.in_flight -= 1
            seconds = time.perf_counter() - started
            route = _route_label(scope, self.known_paths)
            self.metrics.observe_request(route, scope["method"], status, seconds)
            if self.access_log and access_logger.isEnabledFor(logging.INFO):
                if self._access is not None:
                    self._access(scope, route, status, seconds)
                else:
                    _log_access(scope, route, status, seconds)


async def _internal_server_error(send: Send) -> None:
    body = b"Internal Server Error"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def access_fields(scope: Scope, route: str, status: int, seconds: float) -> dict[str, Any]:
    """One request's access-log fields: no header, no query string, no body."""
    client = scope.get("client")
    state = scope.get("state") or {}
    return {
        "method": scope["method"],
        "path": scope["path"],  # never the query string: some clients put keys there
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "client": f"{client[0]}:{client[1]}" if client else None,
        "model": state.get("model"),
        "error": state.get("error"),
    }


def access_message(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


def _log_access(scope: Scope, route: str, status: int, seconds: float) -> None:
    fields = access_fields(scope, route, status, seconds)
    access_logger.info(access_message(fields), extra={"access": fields})


class BufferedAccessLog:
    """The access log without the logging machinery: for ``modelport serve``.

    A :class:`logging.LogRecord` per request, passed through the handlers and
    written with a flush each, cost the event loop ~75 µs a request. This
    formats the same line as the serve log format
    (``%(asctime)s %(levelname)s %(name)s: %(message)s``) and writes lines
    in batches: every ``max_lines`` lines, ``interval`` seconds after the
    first unwritten line, and on :meth:`flush` (the app's shutdown). It honours
    the ``modelport.access`` logger's level, so ``--log-level warning`` still
    silences it. Embedders keep the default: one record per request through
    :mod:`logging`.
    """

    def __init__(self, stream: IO[str], *, max_lines: int = 256, interval: float = 0.5) -> None:
        self._stream = stream
        self._max_lines = max_lines
        self._interval = interval
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def __call__(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        message = access_message(access_fields(scope, route, status, seconds))
        millis = int((now - second) * 1000)
        lines = self._lines
        lines.append(f"{self._stamp},{millis:03d} INFO modelport.access: {message}\n")
        if len(lines) >= self._max_lines:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self._interval, self.flush)

    def flush(self) -> None:
        """Write every line held so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a closed stderr must not fail a request
            pass
