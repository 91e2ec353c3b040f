"""The glue both chat routes share: read the body, call the router, answer or stream.

``POST /v1/chat/completions`` and ``POST /v1/messages`` differ only in their
wire module; everything else is here: reading the JSON body (within
:data:`~modelport.server._errors.MAX_BODY_BYTES`), attributing the call to the
ledger (``api`` and the response id), forwarding an Anthropic client's beta
flags to an Anthropic upstream, cancelling a non-streamed call whose client
left, and making every error safe to show before it is encoded
(:func:`~modelport.server._errors.scrub_secrets`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Scope

from modelport.errors import InvalidRequestError, ModelportError
from modelport.server._errors import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    ServerWire,
    json_error,
    scrub_secrets,
)
from modelport.server._streaming import EventStreamResponse, StreamEncoder, internal_error
from modelport.types import ChatRequest, ChatResponse, Usage

__all__ = ["answer_chat", "forwarded_headers", "read_json", "reject"]


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
    *,
    wire: ServerWire,
    encoder: StreamEncoder | None,
    keepalive: bytes,
    started: float,
    api: str,
    request_id: str,
) -> Response:
    """Run ``chat`` through the router: a stream when ``encoder`` is given, else one JSON body.

    ``api`` (``openai``/``anthropic``) and ``request_id`` (the id the client
    sees in the answer) are what the ledger records the call under.
    """
    state = request.app.state
    address = chat.model
    scope = request.scope
    scope.setdefault("state", {})["model"] = address
    outcome = _ChatOutcome(state, address, scope, started)
    options: dict[str, Any] = {"api": api, "request_id": request_id}
    headers = forwarded_headers(state.router, address, request.headers)
    if headers:
        options["headers"] = headers

    def scrub(exc: ModelportError) -> None:
        scrub_secrets(state, exc)

    if encoder is not None:
        try:
            events = state.router.stream(chat, **options)
        except Exception as exc:  # a router that fails before returning an iterator
            failure = exc if isinstance(exc, ModelportError) else internal_error(exc)
            scrub(failure)
            outcome.finished(None, failure)
            return json_error(wire, failure)
        return EventStreamResponse(
            events,
            encoder,
            error_response=wire.encode_error,
            keepalive=keepalive,
            keepalive_interval=state.keepalive_interval,
            outcome=outcome,
            scrub=scrub,
        )
    task = asyncio.current_task()
    assert task is not None
    left = asyncio.Event()
    watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(request, task, left))
    try:
        response: ChatResponse = await state.router.complete(chat, **options)
        body = wire.encode_response(msgspec.structs.replace(response, model=address, id=request_id))
    except asyncio.CancelledError:
        if left.is_set() and task.uncancel() == 0:
            # The client is gone and the upstream call with it; nobody reads this answer.
            outcome.finished(None, asyncio.CancelledError())
            return Response(status_code=499)
        raise
    except Exception as exc:
        failure = exc if isinstance(exc, ModelportError) else internal_error(exc)
        scrub(failure)
        outcome.finished(None, failure)
        return json_error(wire, failure)
    finally:
        watcher.cancel()
    outcome.finished(response.usage, None)
    return Response(body, media_type="application/json")


async def _cancel_on_disconnect(
    request: Request, task: asyncio.Task[Any], left: asyncio.Event
) -> None:
    """Cancel a non-streaming call the moment its client disconnects.

    The body has been read, so the next message can only be ``http.disconnect``.
    """
    message = await request.receive()
    if message["type"] == "http.disconnect":
        left.set()
        task.cancel()


# --- what an Anthropic client may pass through ---------------------------------------------

#: Beta flags an Anthropic client may have forwarded to an Anthropic upstream. A
#: fixed list, not whatever a client sends: each distinct header set is a provider
#: (and a connection pool) of its own, and these are the ones that change a chat.
ANTHROPIC_BETAS = frozenset(
    {
        "code-execution-2025-05-22",
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "computer-use-2025-11-24",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "dev-full-thinking-2025-05-14",
        "effort-2025-11-24",
        "extended-cache-ttl-2025-04-11",
        "files-api-2025-04-14",
        "fine-grained-tool-streaming-2025-05-14",
        "interleaved-thinking-2025-05-14",
        "mcp-client-2025-04-04",
        "mcp-client-2025-11-20",
        "model-context-window-exceeded-2025-08-26",
        "output-128k-2025-02-19",
        "pdfs-2024-09-25",
        "prompt-caching-2024-07-31",
        "structured-outputs-2025-11-13",
        "token-efficient-tools-2025-02-19",
    }
)


def forwarded_headers(router: Any, address: str, headers: Any) -> dict[str, str] | None:
    """The client's ``anthropic-beta`` flags, when ``address`` leads to an Anthropic upstream.

    Only known flags (:data:`ANTHROPIC_BETAS`) travel, merged with any the
    connection configures; ``anthropic-version`` never does (the provider speaks
    the version it was written for), nor does anything for another compat.
    """
    sent = headers.get("anthropic-beta")
    if not sent:
        return None
    flags = {flag.strip() for flag in sent.split(",")} & ANTHROPIC_BETAS
    if not flags:
        return None
    try:
        settings = router.resolve(address).settings
    except Exception:  # the call itself will say what is wrong with the address
        return None
    if settings.compat != "anthropic":
        return None
    configured = settings.headers.get("anthropic-beta") or settings.options.get("anthropic_beta")
    if isinstance(configured, str):
        flags.update(f.strip() for f in configured.split(",") if f.strip())
    elif configured:
        flags.update(str(f) for f in configured)
    return {"anthropic-beta": ",".join(sorted(flags))}


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
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from None
