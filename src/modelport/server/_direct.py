"""The chat routes' server side from one entry: observe, guard and handler as plain calls.

``POST /v1/chat/completions``, ``/v1/messages`` and ``/v1/responses`` skip
Starlette's stack (:class:`~modelport.server.app._Gateway`). They went through the
two middlewares as three nested coroutines (the observer, the guard, the call of the
endpoint), with a ``send`` wrapper that read the status off every message a stream
sent. :class:`DirectChat` runs the same steps from one coroutine, with the same
objects (so a configuration is the one the other routes get):

* the guard's checks (:meth:`GuardMiddleware._refusal`: host, origin, body type and
  size, key) and its budget of bodies in flight, exactly as the middleware runs them;
* the endpoint, then its response;
* the observer's count and access-log line (:meth:`ObserveMiddleware.record`), with
  the status read from the response once it has run instead of from each message:
  every response a chat handler returns keeps the status it sent in ``status_code``
  (an event stream's is 0 until its head goes out, so a stream whose client left
  before it is counted as before, as a 500); a handler that fails before anything
  was sent gets the observer's plain 500.

The middlewares stay what every other route goes through.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from modelport.server._guard import (
    _SMALL_BODY,
    GatewayBusy,
    GuardMiddleware,
    _counting,
    _Held,
    _refuse,
    _Request,
)
from modelport.server._observe import ObserveMiddleware, internal_server_error

__all__ = ["DirectChat"]


class DirectChat:
    """Observe, guard and answer one chat request (see the module docstring)."""

    __slots__ = ("_guard", "_observe")

    def __init__(self, observe: ObserveMiddleware, guard: GuardMiddleware) -> None:
        self._observe = observe
        self._guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``scope`` has ``route`` and ``endpoint`` set (a chat route, ``POST``)."""
        started = time.perf_counter()
        observe = self._observe
        metrics = observe.metrics
        metrics.in_flight += 1
        status = 0  # nothing sent yet
        response: Any = None
        try:
            guard = self._guard
            request = _Request(scope)
            refusal = guard._refusal(scope, request)
            if refusal is not None:
                status = refusal[0]
                await _refuse(scope, send, status, refusal[1])
                return
            size = request.size
            if not size and not request.streamed:
                response = await scope["endpoint"](Request(scope, receive, send))
                await response(scope, receive, send)
                return
            # The body counts in the budget from here to the end of its call.
            bodies = guard.bodies
            if size > _SMALL_BODY and bodies.held + size > bodies.limit:
                status = 503
                await _refuse(scope, send, 503, GatewayBusy(bodies.limit))
                return
            bodies.held += size
            if not request.streamed:
                try:
                    response = await scope["endpoint"](Request(scope, receive, send))
                    await response(scope, receive, send)
                finally:
                    bodies.held -= size
                return
            held = _Held(size)  # a chunked body: counted as it arrives
            receive = _counting(receive, held, bodies)
            try:
                response = await scope["endpoint"](Request(scope, receive, send))
                await response(scope, receive, send)
            finally:
                bodies.held -= held.size
        except Exception:
            if response is not None:
                status = response.status_code
            if not status:
                status = 500
                await internal_server_error(send)
            raise
        finally:
            metrics.in_flight -= 1
            if response is not None and not status:
                status = response.status_code
            observe.record(scope, scope["route"].path, status, started)
