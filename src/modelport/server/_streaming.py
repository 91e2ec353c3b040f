"""The event-stream response: canonical events in, one client's SSE frames out.

:class:`EventStreamResponse` is a pure ASGI response (no task group, no
per-chunk task) tuned for the gateway's hot path:

* **No buffering.** Each event is encoded and written as soon as the upstream
  iterator yields it; an ``await send(...)`` per write also gives us the
  server's backpressure (uvicorn's ``send`` waits while the socket is full).
  Events that came in the same upstream read are written together
  (:mod:`modelport._bursts`): one socket write per read, not per event.
* **Honest status codes.** Headers are held back until the encoder has bytes
  to write, so an upstream that fails before its first token (401, 429, an
  unknown model, an overloaded upstream) is answered with the proper HTTP
  status and error body instead of a 200 followed by an in-band error.
* **Keep-alives.** One watcher task per stream sleeps on ``receive()`` with a
  timeout; after ``keepalive_interval`` seconds without a write it sends the
  wire's keep-alive frame (committing the headers and the encoder's prelude
  first if nothing was sent yet).
* **Cancellation.** The same watcher sees ``http.disconnect`` at once and
  cancels the streaming task; the upstream iterator is then closed, and its
  ``finally`` closes the upstream response, exactly as with Starlette's
  ``StreamingResponse`` but without its per-request task group.
* **Broken streams stay broken.** A failure after the headers went out is
  written as the encoder's error frame and the body ends there, never with the
  wire's normal closing frames.
* **Shutdown.** With a :class:`~modelport.server._drain.Drain`, the stream is
  one of the calls a graceful shutdown waits for; one still running at the
  drain timeout ends with the error frame (or, before its first write, a whole
  503 answer), like any other failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from modelport._bursts import more_ready
from modelport.errors import ModelportError
from modelport.events import (
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.server._drain import Drain, InFlight

__all__ = [
    "BODY_KEY",
    "DISCONNECT_EXTENSION",
    "OUTPUT_EVENTS",
    "START_WITH_BODY_EXTENSION",
    "EventStreamResponse",
    "StreamEncoder",
    "StreamOutcome",
    "internal_error",
]

logger = logging.getLogger("modelport.server")

#: The most bytes of one read's frames held for one write.
_MAX_HELD = 64 * 1024

#: The scope extension through which the server tells a handler that its client's
#: connection was lost: ``watch(callback)``, ``watch(None)`` to stop watching
#: (:class:`~modelport.server._protocol.GatewayProtocol` offers it). A plain call is
#: cancelled through it, and a stream watched through it (:class:`_Pacer`), without a
#: task per request waiting on ``receive()``; under another server, that task does it.
DISCONNECT_EXTENSION = "modelport.disconnect"

#: The scope extension through which the server says that an ``http.response.start``
#: message may carry the response's first body bytes, under :data:`BODY_KEY` (with
#: ``more_body`` beside them, as in a body message): head and body then go out in one
#: write, at once (:class:`~modelport.server._response_head.GatewayCycle`).
START_WITH_BODY_EXTENSION = "modelport.start_with_body"
BODY_KEY = "modelport.body"

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tell reverse proxies (nginx) not to buffer the stream either.
    (b"x-accel-buffering", b"no"),
]


#: Events that are output a person waits for: the first of them is the time to first token.
#: (An Anthropic stream opens with a usage event, which is not.)
OUTPUT_EVENTS = (TextEvent, ReasoningEvent, ToolCallStartEvent, ToolCallDeltaEvent)


class StreamEncoder(Protocol):
    """What the wire modules' server-side ``StreamEncoder`` classes provide."""

    def start(self) -> bytes: ...

    def encode(self, event: StreamEvent) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, exc: ModelportError) -> bytes: ...


class StreamOutcome(Protocol):
    """Told when the first output arrives, and how a stream went once it is over."""

    def first_event(self) -> None: ...

    def finished(self, usage: UsageEvent | None, error: BaseException | None) -> None: ...


def internal_error(exc: BaseException) -> ModelportError:
    """A client-safe stand-in for a bug: the traceback goes to the log, not to the client."""
    logger.error("Unexpected error while serving a request", exc_info=exc)
    return ModelportError(f"The gateway hit an internal error ({type(exc).__name__}); see its log")


async def _aclose(iterator: AsyncIterator[StreamEvent]) -> None:
    aclose: Callable[[], Any] | None = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:  # closing must never mask what happened to the stream
        logger.debug("Closing the upstream stream failed", exc_info=True)


class EventStreamResponse(Response):
    """Stream ``events`` through ``encoder`` to the client as server-sent events.

    ``error_response`` turns an error raised before anything was written into
    a complete ``(status, body, headers)`` answer (the wire's ``encode_error``).
    ``keepalive`` is the wire's keep-alive frame, sent after ``keepalive_interval``
    seconds of silence. ``headers`` gives headers to add to the SSE ones, asked
    for when they are sent.
    """

    def __init__(
        self,
        events: AsyncIterator[StreamEvent],
        encoder: StreamEncoder,
        *,
        error_response: Callable[[ModelportError], tuple[int, bytes, dict[str, str]]],
        keepalive: bytes,
        keepalive_interval: float = 15.0,
        outcome: StreamOutcome | None = None,
        scrub: Callable[[ModelportError], None] | None = None,
        drain: Drain | None = None,
        headers: Callable[[], list[tuple[bytes, bytes]]] | None = None,
    ) -> None:
        # Response.__init__ would render a body; this response writes its own.
        # The status once a head is sent (200, or an error's): 0 until then.
        self.status_code = 0
        self.background = None
        self._events = events
        self._encoder = encoder
        self._error_response = error_response
        self._keepalive = keepalive
        self._interval = keepalive_interval
        self._outcome = outcome
        self._scrub = scrub
        self._drain = drain
        self._call: InFlight | None = None
        self._headers = headers
        self._started = False  # headers sent
        self._sending = False  # the streaming task is inside send()
        self._watcher_busy = False  # the watcher is inside send()
        self._watcher_idle = asyncio.Event()
        self._done = False  # past the last write: the watcher must not cancel us any more
        self._disconnected = False
        self._last_write = 0.0
        self._usage: UsageEvent | None = None
        self._failure: BaseException | None = None
        self._loop_time: Callable[[], float] = time.monotonic
        self._start_with_body = False  # the server takes the first frames with the head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        # Given the loop, current_task does not look it up again (on 3.11, a getpid each).
        task = asyncio.current_task(loop)
        assert task is not None
        self._loop_time = loop.time
        self._last_write = loop.time()
        drain = self._drain
        call = self._call = drain.enter(task) if drain is not None else None
        extensions = scope.get("extensions")
        watch = None
        if extensions:
            watch = extensions.get(DISCONNECT_EXTENSION)
            self._start_with_body = START_WITH_BODY_EXTENSION in extensions
        watcher: asyncio.Task[None] | _Pacer
        if watch is not None:
            watcher = _Pacer(self, send, task, loop)
            watch(watcher.lost)
        else:
            watcher = loop.create_task(self._watch(receive, send, task, loop))
        try:
            await self._pump(send, loop)
        except asyncio.CancelledError as exc:
            self._failure = exc
            if self._disconnected and task.uncancel() == 0:
                return  # our own watcher cancelled us because the client left
            if call is not None and call.ended is not None and task.uncancel() == 0:
                await self._end_with(send, call.ended)  # the gateway is shutting down
                return
            raise
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._done = True
            if call is not None:
                call.finishing = True
            watcher.cancel()
            if watch is not None:
                watch(None)
            await _aclose(self._events)
            if self._outcome is not None:
                self._outcome.finished(self._usage, self._failure)
            if drain is not None and call is not None:
                drain.leave(call)

    async def _end_with(self, send: Send, failure: ModelportError) -> None:
        """End the stream with ``failure``: its error frame, or a whole error answer."""
        self._failure = failure
        self._done = True
        if self._disconnected:
            return
        if not self._started:
            status, body, headers = self._error_response(failure)
            self.status_code = status  # what the access log and metrics report
            await _send_whole(send, status, body, headers)
        else:
            await self._write(send, self._encoder.error(failure), more_body=False)

    async def _pump(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        """Write every event, then the closing frames or the error frame."""
        encoder = self._encoder
        outcome = self._outcome
        waiting = outcome is not None  # for the first output, to time it
        # Frames of events that arrived in the same upstream read, written together
        # (see modelport._bursts); never held past the read they came in.
        held: list[bytes] = []
        held_bytes = 0
        more_ready.set(False)
        try:
            async for event in self._events:
                if waiting and isinstance(event, OUTPUT_EVENTS) and outcome is not None:
                    waiting = False
                    outcome.first_event()
                if type(event) is UsageEvent:
                    self._usage = event
                data = encoder.encode(event)
                if data:
                    held.append(data)
                    held_bytes += len(data)
                if not held or (more_ready.get() and held_bytes < _MAX_HELD):
                    continue
                data = held[0] if len(held) == 1 else b"".join(held)
                held.clear()
                held_bytes = 0
                if not self._started:
                    await self._start(send, encoder.start() + data)
                else:
                    await self._write(send, data)
            tail = encoder.finish()
        except Exception as exc:
            failure = exc if isinstance(exc, ModelportError) else internal_error(exc)
            if self._scrub is not None:
                self._scrub(failure)
            self._failure = failure
            self._finishing()
            if held:
                # Whatever had arrived before the failure goes out first, as it would have.
                data = b"".join(held)
                if not self._started:
                    await self._start(send, encoder.start() + data)
                else:
                    await self._write(send, data)
            if not self._started:
                status, body, headers = self._error_response(failure)
                self.status_code = status  # what the access log and metrics report
                await _send_whole(send, status, body, headers)
            else:
                await self._write(send, encoder.error(failure), more_body=False)
            return
        self._finishing()
        tail = b"".join(held) + tail
        if not self._started:
            await self._start(send, encoder.start() + tail, more_body=False)
        else:
            await self._write(send, tail, more_body=False)

    def _finishing(self) -> None:
        """Past the last event: only the closing (or error) frames are left to write."""
        self._done = True
        if self._call is not None:
            self._call.finishing = True  # a shutdown waits for these writes, never cuts them

    async def _start(self, send: Send, body: bytes, *, more_body: bool = True) -> None:
        # The watcher sets _started before its first await, so seeing it unset
        # here means no keep-alive is half-way out.
        self._started = True
        self._sending = True
        self.status_code = 200
        start = {"type": "http.response.start", "status": 200, "headers": self._head()}
        if self._start_with_body:
            # One message and one write for the head and the first frames.
            start[BODY_KEY] = body
            start["more_body"] = more_body
        try:
            await send(start)
        finally:
            self._sending = False
        if self._start_with_body:
            self._last_write = self._loop_time()
        else:
            await self._write(send, body, more_body=more_body)

    def _head(self) -> list[tuple[bytes, bytes]]:
        # Asked when the headers go out: by then the answering deployment is known.
        return _SSE_HEADERS if self._headers is None else _SSE_HEADERS + self._headers()

    async def _write(self, send: Send, body: bytes, *, more_body: bool = True) -> None:
        if self._watcher_busy:
            # A keep-alive is half-way out; frames must not interleave.
            await self._watcher_idle.wait()
        self._sending = True
        try:
            await send({"type": "http.response.body", "body": body, "more_body": more_body})
        finally:
            self._sending = False
        self._last_write = self._loop_time()

    async def _watch(
        self, receive: Receive, send: Send, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Send keep-alives on silence; cancel the stream the moment the client leaves."""
        interval = self._interval
        while True:
            remaining = self._last_write + interval - loop.time()
            if remaining <= 0:
                if not self._sending and not self._done:
                    try:
                        await self._send_keepalive(send)
                    except Exception:  # a server that raises on a closed socket
                        break
                    self._last_write = loop.time()
                remaining = interval
            try:
                async with asyncio.timeout(remaining):
                    message = await receive()
            except TimeoutError:
                continue
            if message["type"] == "http.disconnect":
                break
        self._disconnected = True
        if not self._done:
            task.cancel()

    async def _send_keepalive(self, send: Send) -> None:
        self._watcher_busy = True
        self._watcher_idle.clear()
        try:
            if not self._started:
                # A long wait for the first token: commit to a 200 and the
                # encoder's prelude (Anthropic SDKs need message_start before a ping).
                self._started = True
                self.status_code = 200
                await send({"type": "http.response.start", "status": 200, "headers": self._head()})
                body = self._encoder.start() + self._keepalive
            else:
                body = self._keepalive
            await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            self._watcher_busy = False
            self._watcher_idle.set()


class _Pacer:
    """What :meth:`EventStreamResponse._watch` does, for a server that reports a lost
    client itself (:data:`DISCONNECT_EXTENSION`): keep-alives from a timer, re-armed only
    when it fires (never per write), and a task only when a keep-alive is due.

    The watcher task cost every stream a task, a timeout armed and cancelled around
    ``receive()``, and its event; this costs one timer per stream.
    """

    __slots__ = ("_loop", "_response", "_send", "_sender", "_task", "_timer")

    def __init__(
        self,
        response: EventStreamResponse,
        send: Send,
        task: asyncio.Task[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._response = response
        self._send = send
        self._task = task
        self._loop = loop
        self._sender: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = loop.call_at(
            response._last_write + response._interval, self._due
        )

    def _due(self) -> None:
        self._timer = None
        response = self._response
        if response._done or response._disconnected:
            return
        remaining = response._last_write + response._interval - self._loop.time()
        if remaining <= 0:
            if not response._sending:
                self._sender = self._loop.create_task(self._keepalive())
                return  # re-armed once it is written
            remaining = response._interval
        self._timer = self._loop.call_later(remaining, self._due)

    async def _keepalive(self) -> None:
        response = self._response
        try:
            await response._send_keepalive(self._send)
        except Exception:  # a server that raises on a closed socket
            self.lost()
            return
        finally:
            self._sender = None
        response._last_write = self._loop.time()
        if not response._done:
            self._timer = self._loop.call_later(response._interval, self._due)

    def lost(self) -> None:
        """The client's connection is gone: cancel the stream (unless it is past its end)."""
        response = self._response
        response._disconnected = True
        if not response._done:
            self._task.cancel()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sender is not None:
            self._sender.cancel()


async def _send_whole(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    merged = {"content-type": "application/json"}
    merged.update((k.lower(), v) for k, v in headers.items())
    merged["content-length"] = str(len(body))
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})
