"""The same-format passthrough on the chat routes: who takes it, and answering through it.

An OpenAI client (``/v1/chat/completions``) on an OpenAI-compatible upstream,
or an Anthropic client (``/v1/messages``) on an Anthropic upstream, gets the
upstream's own bytes with only the ``model``, the ``id`` and what the ledger
made the gateway ask for rewritten (:mod:`modelport.wire.relay`). Everything
around the call is the decode-encode path's: the guard, governance (with
``max_tokens`` clamped in the body sent), the router's routes, retries before
the first byte, fallbacks, the ledger, metrics, the access log, cancellation
on disconnect, status and error mapping.

A call takes the passthrough only when all of these hold (:func:`relay_body`: the
request's side in :func:`covers_request`, the routes' in ``Router.relay_compat``);
otherwise it takes the decode-encode path, which can do everything:

* ``MODELPORT_PASSTHROUGH`` is not ``off`` (:func:`passthrough_mode`), and the
  request asks for a stream unless it is ``all``;
* the route is ``/v1/chat/completions`` or ``/v1/messages`` (the Responses API
  is always translated), and no response cache is kept for the model (the
  cache records canonical events; :mod:`modelport.server._chat` checks);
* the address and every configured fallback lead to connections of the
  client's API (``compat = "openai"`` for an OpenAI client, ``"anthropic"``
  for an Anthropic one), none of them a model group, a plugin, an OAuth login
  or a connection with request defaults (:func:`modelport.routing._relay.relay_compat`);
* an OpenAI request asks for one choice (``n`` absent or 1: the decode-encode
  path answers the first choice only);
* the request's reasoning is not the adaptive kind the decode-encode path
  drops when the upstream refuses it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from modelport.errors import ModelportError
from modelport.events import UsageEvent
from modelport.types import ChatRequest

__all__ = [
    "RELAY_KEEPALIVE",
    "RelayEncoder",
    "clamp",
    "collect",
    "covers_request",
    "passthrough_mode",
    "relay_body",
    "relay_factory",
]

#: An SSE comment: skipped by every SSE client before any event (an Anthropic ``ping``
#: before the upstream's own ``message_start`` would not be).
RELAY_KEEPALIVE = b": keep-alive\n\n"

_OFF = frozenset({"0", "off", "false", "no"})


def passthrough_mode() -> str:
    """``MODELPORT_PASSTHROUGH``, read when the app is built: ``streams`` (the default,
    also ``on``), ``all`` (plain answers too) or ``off``.

    Plain answers take the decode-encode path by default: measured side by side
    (docs/performance.md) the passthrough saved nothing on them, while it did on
    streams, whose decode-encode path handles every event.
    """
    value = os.environ.get("MODELPORT_PASSTHROUGH", "streams").strip().lower()
    if value in _OFF:
        return "off"
    return "all" if value == "all" else "streams"


def relay_body(
    api: str, payload: dict[str, Any], chat: ChatRequest, state: Any, mode: str = "all"
) -> dict[str, Any] | None:
    """The body to relay for this call, or ``None`` where it takes the decode-encode path.

    A call is relayed when the passthrough covers both its request
    (:func:`covers_request`) and every route it may take (the router's
    ``relay_compat``: connections of the client's API that add nothing of their own).
    """
    if not covers_request(api, payload, chat, mode):
        return None
    if state.router.relay_compat(chat.model) != api:
        return None
    body = dict(payload)
    if api == "openai" and payload.get("stream") is True:
        # The ledger needs the usage; a client that did not ask does not get it (the relay).
        options = payload.get("stream_options")
        body["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    return body


#: The chat APIs a same-format upstream exists for (the Responses API is always translated).
_RELAYED_APIS = frozenset({"openai", "anthropic"})


def covers_request(api: str, payload: dict[str, Any], chat: ChatRequest, mode: str) -> bool:
    """Whether the passthrough covers what this request asks for: all of

    * a chat API with a same-format upstream (``openai``, ``anthropic``);
    * an answer of a kind ``mode`` relays (streams; plain answers too with ``all``);
    * one choice (an OpenAI ``n`` absent or 1: the decode-encode path answers the first);
    * reasoning other than the adaptive kind (which the decode-encode path drops when an
      upstream refuses it).
    """
    reasoning = chat.reasoning
    return (
        api in _RELAYED_APIS
        and (mode == "all" or payload.get("stream") is True)
        and (api != "openai" or payload.get("n") in (None, 1))
        and (reasoning is None or not reasoning.adaptive)
    )


def clamp(api: str, body: dict[str, Any], max_tokens: int | None) -> None:
    """Write a budget's ``max_tokens`` clamp into ``body``, under the name the client used."""
    if max_tokens is None:
        return
    if api == "openai" and "max_completion_tokens" in body:
        body["max_completion_tokens"] = max_tokens
    else:
        body["max_tokens"] = max_tokens


def relay_factory(
    api: str, chat: ChatRequest, request_id: str, payload: dict[str, Any]
) -> Callable[[], Any]:
    """A fresh relay for each attempt of the call (retries and fallbacks start over)."""
    from modelport.wire.relay import AnthropicRelay, OpenAIRelay

    if api == "anthropic":
        return lambda: AnthropicRelay(model=chat.model, response_id=request_id)
    options = payload.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return lambda: OpenAIRelay(
        model=chat.model, response_id=request_id, include_usage=include_usage
    )


class RelayEncoder:
    """The stream encoder of a relayed stream: the relay's bytes as they are.

    Events are the ledger's and the metrics' (see :mod:`modelport.wire.relay`) and
    write nothing; an error after the first byte is the API's own error frame.
    """

    __slots__ = ("_error",)

    def __init__(self, error: Callable[[ModelportError], bytes]) -> None:
        self._error = error

    def start(self) -> bytes:
        return b""

    def encode(self, item: Any) -> bytes:
        return item if type(item) is bytes else b""

    def finish(self) -> bytes:
        return b""

    def error(self, exc: ModelportError) -> bytes:
        return self._error(exc)


async def collect(items: AsyncIterator[Any]) -> tuple[bytes, UsageEvent | None]:
    """A relayed plain answer: its body, and the usage the ledger saw."""
    body = b""
    usage: UsageEvent | None = None
    try:
        async for item in items:
            if type(item) is bytes:
                body = item
            elif type(item) is UsageEvent:
                usage = item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
    return body, usage
