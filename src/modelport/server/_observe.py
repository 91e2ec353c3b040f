"""The outer middleware: count, time and log every HTTP request.

:class:`ObserveMiddleware` is a pure ASGI middleware (Starlette's
``BaseHTTPMiddleware`` costs a task and a memory stream per request): it times
the request, reads the status from ``http.response.start``, counts it in the
:class:`~modelport.server.metrics.GatewayMetrics` and writes one access-log
line (:mod:`modelport.server.access_log`). It never sees bodies and logs no
header, so no key can reach the log; the query string is left out for the
same reason.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.server.access_log import (
    AccessLogWriter,
    BufferedAccessLog,
    access_logger,
    log_access,
)

if TYPE_CHECKING:
    from modelport.server.metrics import GatewayMetrics

__all__ = ["ObserveMiddleware", "internal_server_error"]


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
        self._write_access: AccessLogWriter | None = None
        if isinstance(access_log, BufferedAccessLog):
            self._write_access = access_log
        elif access_log:
            self._write_access = log_access

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
                await internal_server_error(send)
            raise
        finally:
            metrics.in_flight -= 1
            self.record(scope, _route_label(scope, self.known_paths), status, started)

    def record(self, scope: Scope, route: str, status: int, started: float) -> None:
        """Count and log one finished request (``status`` 0: nothing was sent, a 500)."""
        status = status or 500
        seconds = time.perf_counter() - started
        self.metrics.observe_request(route, scope["method"], status, seconds)
        write_access = self._write_access
        if write_access is not None and access_logger.isEnabledFor(logging.INFO):
            write_access(scope, route, status, seconds)


async def internal_server_error(send: Send) -> None:
    """A plain 500, for a request whose handler failed before sending anything."""
    body = b"Internal Server Error"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
