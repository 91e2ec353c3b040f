"""The one chat handler the chat APIs share: read the body, call the router, answer or stream.

``POST /v1/chat/completions``, ``/v1/messages`` and ``/v1/responses`` differ
only in what a :class:`ChatSurface` describes (the wire module, the answer's
id, the stream encoder's options, the keep-alive frame, the name the ledger
records, and for the Responses API an :class:`Exchange` per call);
:func:`chat_endpoint` makes the handler for one. Everything else is here:
reading the JSON body (within :data:`~modelport.server._errors.MAX_BODY_BYTES`),
attributing the call to the ledger (``api`` and the response id), forwarding
an Anthropic client's beta flags (:mod:`modelport.server._anthropic_betas`),
cancelling a non-streamed call whose client left, and making every error safe
to show before it is encoded (:func:`~modelport.server._errors.scrub_secrets`).
Every chat route passes the response cache here (:mod:`modelport.server._cached_answer`),
so a surface added through :func:`chat_endpoint` is cached like the others.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Scope

from modelport.aggregate import response_events
from modelport.errors import ModelportError
from modelport.events import UsageEvent
from modelport.server._anthropic_betas import beta_flags, forwarded_headers
from modelport.server._cached_answer import (
    Answered,
    answer_from_cache,
    answer_headers,
    cache_for,
)
from modelport.server._errors import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    ServerWire,
    json_error,
    scrub_secrets,
)
from modelport.server._governed import GovernedCall, admit_chat
from modelport.server._passthrough import (
    RELAY_KEEPALIVE,
    RelayEncoder,
    clamp,
    collect,
    passthrough_mode,
    relay_body,
    relay_factory,
)
from modelport.server._streaming import (
    BODY_KEY,
    DISCONNECT_EXTENSION,
    START_WITH_BODY_EXTENSION,
    EventStreamResponse,
    StreamEncoder,
    internal_error,
)
from modelport.types import ChatRequest, ChatResponse, Usage
from modelport.wire._json import decode_request

__all__ = [
    "DISCONNECT_EXTENSION",
    "ChatSurface",
    "Exchange",
    "answer_chat",
    "chat_endpoint",
    "read_json",
    "reject",
]


class Exchange(Protocol):
    """One call of an API whose answer needs more than the canonical response.

    The Responses API echoes the request in its answer, names tools as the
    client did and continues kept conversations: its surface makes one of
    these per call, after parsing, and the handler uses it instead of the
    wire module's plain encoders.
    """

    #: The request to send (a kept conversation added in front of the new input).
    chat: ChatRequest

    def stream_encoder(self, response_id: str) -> StreamEncoder: ...

    def encode_response(self, response: ChatResponse) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSurface:
    """What one chat API brings to the shared handler; the rest is the same for both."""

    #: What the ledger records the call under (``openai``, ``anthropic``).
    api: str
    #: The server half of its wire module: parses the request, encodes the answer and errors.
    wire: ServerWire
    #: The answer's id as a ``%`` template of one random integer of ``id_bits``
    #: bits (``"msg_%024x"`` with 96). Data, not a function: ``%`` costs less
    #: than a call, and less than an f-string.
    id_template: str
    id_bits: int
    #: ``(chat, id, payload) -> StreamEncoder`` for a request that asked for a stream;
    #: the payload is the request body, for the API's own stream options.
    stream_encoder: Callable[[ChatRequest, str, dict[str, Any]], StreamEncoder]
    #: The frame a silent stream gets, one that the API's SDKs skip.
    keepalive: bytes
    #: ``(request, payload, chat) -> Exchange``, for an API that needs one per call
    #: (:class:`Exchange`); ``None`` for the two chat APIs.
    exchange: Callable[[Request, dict[str, Any], ChatRequest], Awaitable[Exchange]] | None = None


def chat_endpoint(surface: ChatSurface) -> Callable[[Request], Awaitable[Response]]:
    """The ``POST`` handler for ``surface``'s chat route."""
    wire = surface.wire
    id_template = surface.id_template
    id_bits = surface.id_bits
    stream_encoder = surface.stream_encoder
    make_exchange = surface.exchange
    getrandbits = random.getrandbits
    # The same-format passthrough (see modelport.server._passthrough), for the chat APIs.
    relays = "off" if make_exchange is not None else passthrough_mode()

    async def chat_handler(request: Request) -> Response:
        started = time.perf_counter()
        exchange: Exchange | None = None
        try:
            payload = await read_json(request)
            chat = wire.parse_request(payload)
            if make_exchange is not None:
                exchange = await make_exchange(request, payload, chat)
                chat = exchange.chat
        except ClientDisconnect:
            # Gone before its body arrived (or timed out sending it): nothing to answer.
            request.app.state.metrics.disconnects.inc()
            request.scope.setdefault("state", {})["error"] = "ClientDisconnected"
            return Response(status_code=499)
        except Exception as exc:
            return reject(request, wire, exc)
        # The id the client sees, streamed or not, is the one the ledger records.
        # Random bits, as uuid4's hex but without its os.urandom call (~3 µs).
        request_id = id_template % getrandbits(id_bits)
        relayed = (
            relay_body(surface.api, payload, chat, request.scope["app"].state, relays)
            if relays != "off"
            else None
        )
        encoder = None
        if payload.get("stream") is True:
            if exchange is not None:
                encoder = exchange.stream_encoder(request_id)
            else:
                encoder = stream_encoder(chat, request_id, payload)
        return await answer_chat(
            request,
            chat,
            surface,
            encoder=encoder,
            started=started,
            request_id=request_id,
            encode=exchange.encode_response if exchange is not None else None,
            relayed=relayed,
            payload=payload,
        )

    return chat_handler


class _ChatOutcome:
    """Reports one chat call to the metrics, the health table and the access log."""

    __slots__ = ("_address", "_health", "_metrics", "_scope", "_started")

    def __init__(self, state: Any, address: str, scope: Scope, started: float) -> None:
        self._metrics = state.metrics
        self._health = state.health
        self._address = address
        self._scope = scope
        self._started = started

    def first_event(self) -> None:
        self._metrics.observe_ttft(self._address, time.perf_counter() - self._started)

    def finished(self, usage: Usage | None, error: BaseException | None) -> None:
        if error is None:
            if usage is not None:
                self._metrics.observe_usage(self._address, usage)
            self._health.record(self._address, None)
            return
        if isinstance(error, asyncio.CancelledError):
            self._metrics.disconnects.inc()
            self._scope.setdefault("state", {})["error"] = "ClientDisconnected"
            return
        self._metrics.observe_error(error)
        self._health.record(self._address, error)
        self._scope.setdefault("state", {})["error"] = type(error).__name__


async def answer_chat(
    request: Request,
    chat: ChatRequest,
    surface: ChatSurface,
    *,
    encoder: StreamEncoder | None,
    started: float,
    request_id: str,
    encode: Callable[[ChatResponse], bytes] | None = None,
    relayed: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
) -> Response:
    """Run ``chat`` through the router: a stream when ``encoder`` is given, else one JSON body.

    ``surface.api`` (``openai``/``anthropic``/``responses``) and ``request_id``
    (the id the client sees in the answer) are what the ledger records the
    call under. ``encode`` writes the JSON body (default: the wire module's
    ``encode_response``). ``relayed`` is the body to send on the same-format
    passthrough (:mod:`modelport.server._passthrough`), ``payload`` the client's.
    """
    wire = surface.wire
    # scope["app"], not request.app: a property call less (the same app, set by routing).
    state = request.scope["app"].state
    address = chat.model
    scope = request.scope
    scope_state = scope.setdefault("state", {})
    scope_state["model"] = address
    outcome = _ChatOutcome(state, address, scope, started)
    options: dict[str, Any] = {"api": surface.api, "request_id": request_id}
    headers: dict[str, str] | None = None
    flags = beta_flags(scope["headers"])
    if flags:
        headers = await forwarded_headers(state.router, address, flags)
        if headers:
            options["headers"] = headers

    def scrub(exc: ModelportError) -> None:
        scrub_secrets(state, exc)

    governed: GovernedCall | None = None
    key = scope_state.get("vkey")
    if key is not None:  # the guard found a virtual key: budgets and limits apply
        try:
            admitted, governed = await admit_chat(state, key, chat)
            if relayed is not None and admitted.max_tokens != chat.max_tokens:
                clamp(surface.api, relayed, admitted.max_tokens)
            chat = admitted
        except Exception as exc:
            failure = exc if isinstance(exc, ModelportError) else internal_error(exc)
            scrub(failure)
            outcome.finished(None, failure)
            return json_error(wire, failure)
        options["key_id"] = key.id

    # After the gate: a hit is for a model the key may use, counts as a request
    # against its rate limits, costs nothing, and its key is the request as sent
    # (max_tokens clamped to the budget is another request).
    cache, cache_key, lookup = cache_for(request, chat, headers)
    if cache_key is not None and lookup is None:
        hit = await cache.lookup(cache_key)  # type: ignore[union-attr]
        if hit is not None:
            if governed is not None:
                governed.done(None, "failed")  # nothing went upstream: release the hold
            return answer_from_cache(
                request, hit, surface, encoder, started, request_id, encode=encode
            )
        lookup = "miss"
    answered = Answered()
    relayed_answer = None
    # A cached model records canonical events: its calls take the decode-encode path.
    if relayed is not None and cache_key is None:
        assert payload is not None
        make_relay = relay_factory(surface.api, chat, request_id, payload)
        try:
            items = state.router.relay(
                chat,
                relayed,
                make_relay,
                stream=encoder is not None,
                on_answer=answered.set,
                **options,
            )
        except Exception as exc:
            failure = exc if isinstance(exc, ModelportError) else internal_error(exc)
            scrub(failure)
            outcome.finished(None, failure)
            if governed is not None:
                governed.done(None, "failed")
            return json_error(wire, failure)
        if governed is not None:
            items = governed.watch(items)
        if encoder is not None:
            return EventStreamResponse(
                items,
                RelayEncoder(encoder.error),
                error_response=wire.encode_error,
                keepalive=RELAY_KEEPALIVE,
                keepalive_interval=state.keepalive_interval,
                outcome=outcome,
                scrub=scrub,
                drain=state.drain,
                headers=lambda: answer_headers(answered.address, lookup),
            )
        relayed_answer = collect(items)
    if encoder is not None:
        try:
            events = state.router.stream(chat, on_answer=answered.set, **options)
        except Exception as exc:  # a router that fails before returning an iterator
            failure = exc if isinstance(exc, ModelportError) else internal_error(exc)
            scrub(failure)
            outcome.finished(None, failure)
            if governed is not None:
                governed.done(None, "failed")
            return json_error(wire, failure)
        if cache_key is not None:
            events = cache.recording(cache_key, events, answered.get)  # type: ignore[union-attr]
        if governed is not None:
            events = governed.watch(events)
        return EventStreamResponse(
            events,
            encoder,
            error_response=wire.encode_error,
            keepalive=surface.keepalive,
            keepalive_interval=state.keepalive_interval,
            outcome=outcome,
            scrub=scrub,
            drain=state.drain,
            headers=lambda: answer_headers(answered.address, lookup),
        )
    task = asyncio.current_task()
    assert task is not None
    left = _Left(task)
    extensions = scope.get("extensions")
    watch = extensions.get(DISCONNECT_EXTENSION) if extensions else None
    watcher: asyncio.Task[None] | None = None
    if watch is not None:
        watch(left.lost)
    else:
        watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(request, left))
    drain = state.drain
    call = drain.enter(task)
    usage: Usage | UsageEvent | None
    response: ChatResponse | None = None
    try:
        if relayed_answer is not None:
            body, usage = await relayed_answer
        else:
            response = await state.router.complete(chat, **options)
            answer = msgspec.structs.replace(response, model=address, id=request_id)
            body = (encode or wire.encode_response)(answer)
            usage = response.usage
    except asyncio.CancelledError:
        if governed is not None:
            governed.done(None, "broken")  # the upstream may have generated before we left
        if left.gone and task.uncancel() == 0:
            # The client is gone and the upstream call with it; nobody reads this answer.
            outcome.finished(None, asyncio.CancelledError())
            return Response(status_code=499)
        if call.ended is not None and task.uncancel() == 0:
            # The gateway is shutting down and this call outlived the drain timeout.
            outcome.finished(None, call.ended)
            return json_error(wire, call.ended)
        raise
    except Exception as exc:
        if governed is not None:
            governed.done(None, "failed")
        failure = exc if isinstance(exc, ModelportError) else internal_error(exc)
        scrub(failure)
        outcome.finished(None, failure)
        return json_error(wire, failure)
    finally:
        if watcher is not None:
            watcher.cancel()
        else:
            watch(None)  # type: ignore[misc]
        drain.leave(call)

    def after() -> None:
        if governed is not None:
            governed.done(usage, "ok")
        outcome.finished(usage, None)  # type: ignore[arg-type]
        if cache_key is not None and response is not None:
            cache.remember(cache_key, response.model, response_events(response))  # type: ignore[union-attr]

    answering = response.model if response is not None else answered.address
    return _PlainAnswer(body, answer_headers(answering, lookup), after)


class _PlainAnswer(Response):
    """A plain call's JSON answer; its bookkeeping runs once the answer is written.

    The metrics, the health table, a virtual key's budget and the response cache
    need nothing the client waits for, so they follow the write (``after``, in a
    ``finally``: a client gone mid-write still settles its budget) instead of
    preceding it: at one connection that is their time off every answer's latency.
    They still run in the same step of the task, before the loop reads the next
    request. Starlette's ``Response.__init__`` (``render``, ``init_headers``) is
    skipped: the body is bytes and the headers are known.
    """

    media_type = "application/json"

    def __init__(
        self, body: bytes, headers: list[tuple[bytes, bytes]], after: Callable[[], None]
    ) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
            *headers,
        ]
        self._after = after

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            extensions = scope.get("extensions")
            if extensions and START_WITH_BODY_EXTENSION in extensions:
                # Head and body in one message, written at once (GatewayCycle).
                start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                start[BODY_KEY] = self.body
                await send(start)
            else:
                start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                await send(start)
                await send({"type": "http.response.body", "body": self.body})
        finally:
            self._after()


class _Left:
    """Whether a plain call's client has gone; its going cancels the call's task."""

    __slots__ = ("gone", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.gone = False

    def lost(self) -> None:
        self.gone = True
        self.task.cancel()


async def _cancel_on_disconnect(request: Request, left: _Left) -> None:
    """Cancel a non-streaming call the moment its client disconnects (under a server
    without :data:`DISCONNECT_EXTENSION`).

    The body has been read, so the next message can only be ``http.disconnect``.
    """
    message = await request.receive()
    if message["type"] == "http.disconnect":
        left.lost()


# --- reading the request -------------------------------------------------------------------


def reject(request: Request, wire: ServerWire, exc: Exception) -> Response:
    """Answer a request that could not be parsed (counted as an error, not sent upstream)."""
    failure = exc if isinstance(exc, ModelportError) else internal_error(exc)
    request.app.state.metrics.observe_error(failure)
    request.scope.setdefault("state", {})["error"] = type(failure).__name__
    return json_error(wire, failure)


async def read_json(request: Request, *, limit: int = MAX_BODY_BYTES) -> Any:
    """The request body as JSON.

    :class:`~modelport.server._errors.BodyTooLarge` past ``limit`` bytes (the
    guard refuses a declared length over it; this catches a chunked body),
    :class:`InvalidRequestError` when it is not JSON.
    """
    # Straight from receive(), not request.stream(): an async generator costs ~2 µs a
    # request, and the chat handlers read their body once.
    receive = request.receive
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnect()
    body = message.get("body", b"")
    if len(body) > limit:
        raise BodyTooLarge(limit)
    if not message.get("more_body", False):
        return decode_request(body)  # the usual case: one piece
    # Pieces go into one buffer as they come, so a large body is held once, not twice
    # (a list of pieces and then their join).
    buffer = bytearray(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        buffer += message.get("body", b"")
        if len(buffer) > limit:
            raise BodyTooLarge(limit)
    return decode_request(buffer)
