"""The chat handler's side of the response cache: whether a call looks it up, answering
from an entry, and the headers that say who answered and whether the cache did.

Every answer names the address that produced it in ``x-modelport-deployment``
(a model group's deployment, a fallback, or the address asked for), and,
where the cache applies, ``x-modelport-cache: hit|miss|bypass``. A hit is
recorded in the usage ledger as a call with the outcome ``cache_hit``, no
tokens and a cost of zero: nothing went upstream.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from modelport.aggregate import aggregate
from modelport.events import StreamEvent
from modelport.server._response_cache import (
    CACHE_HEADER,
    CachedAnswer,
    Lookup,
    ResponseCache,
    cache_directive,
)
from modelport.server._streaming import EventStreamResponse, StreamEncoder
from modelport.types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from modelport.server._chat import ChatSurface

__all__ = ["Answered", "answer_from_cache", "answer_headers", "cache_for"]

DEPLOYMENT_HEADER = b"x-modelport-deployment"
#: Characters an address keeps in a header; anything else is percent-encoded (no CR/LF).
_SAFE = "/:@.-_~+=,;!*'()$&"


class Answered:
    """Told the address that answered (``Router.stream``'s ``on_answer``)."""

    __slots__ = ("address",)

    def __init__(self) -> None:
        self.address: str | None = None

    def set(self, address: str) -> None:
        self.address = address

    def get(self) -> str | None:
        return self.address


def answer_headers(address: str | None, lookup: Lookup | None) -> list[tuple[bytes, bytes]]:
    """``x-modelport-deployment`` (when known) and ``x-modelport-cache`` (when it applied)."""
    headers: list[tuple[bytes, bytes]] = []
    if address is not None:
        headers.append((DEPLOYMENT_HEADER, _deployment_value(address)))
    if lookup is not None:
        headers.append((CACHE_HEADER, lookup.encode("ascii")))
    return headers


@functools.lru_cache(maxsize=1024)
def _deployment_value(address: str) -> bytes:
    # The same few addresses answer every call: quoted once each, not per response.
    return quote(address, safe=_SAFE).encode("ascii")


def cache_for(
    request: Request, chat: ChatRequest, forwarded: Mapping[str, str] | None
) -> tuple[ResponseCache | None, str | None, Lookup | None]:
    """The cache, the entry key and what was decided before looking it up.

    ``(None, None, None)``: the cache does not apply. ``(cache, key, None)``:
    look ``key`` up. ``(cache, key, "miss")``: ``no-cache``, store without
    looking. ``(None, None, "bypass")``: ``no-store``.
    """
    state = request.scope["app"].state
    cache: ResponseCache | None = getattr(state, "cache", None)
    if cache is None or not cache.wants(chat.model):
        return None, None, None
    directive = cache_directive(request.headers)
    if directive == "bypass":
        return None, None, "bypass"
    keys = getattr(state, "keys", None)
    tenant = cache.tenant(request.scope.get("state") or {}, getattr(keys, "gateway_digest", None))
    return cache, cache.key(tenant, chat, forwarded), directive


def answer_from_cache(
    request: Request,
    hit: CachedAnswer,
    surface: ChatSurface,
    encoder: StreamEncoder | None,
    started: float,
    request_id: str,
    *,
    encode: Callable[[ChatResponse], bytes] | None = None,
) -> Response:
    """The stored answer, streamed (its events re-encoded) or whole, and its ledger row.

    ``encode`` writes the whole body where the surface has its own (the
    Responses API keeps the answer for ``previous_response_id``).
    """
    state = request.app.state
    request.scope.setdefault("state", {})["cache"] = "hit"
    _record_hit(state, request.scope["state"], hit.address, surface.api, request_id, started)
    headers = answer_headers(hit.address, "hit")
    if encoder is not None:
        return EventStreamResponse(
            _replay(hit.events),
            encoder,
            error_response=surface.wire.encode_error,
            keepalive=surface.keepalive,
            keepalive_interval=state.keepalive_interval,
            headers=lambda: headers,
        )
    response = aggregate(hit.events, model=request.scope["state"]["model"], id=request_id)
    body = (encode or surface.wire.encode_response)(response)
    reply = Response(body, media_type="application/json")
    reply.raw_headers += headers
    return reply


async def _replay(events: list[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


def _record_hit(
    state: Any,
    request_state: Mapping[str, Any],
    address: str,
    api: str,
    request_id: str,
    started: float,
) -> None:
    ledger = getattr(state, "ledger", None) or getattr(state.router, "ledger", None)
    record = getattr(ledger, "record", None)
    if record is None:
        return
    from modelport.ledger import CallRecord

    connection, _, model = address.partition("/")
    vkey = request_state.get("vkey")
    record(
        CallRecord(
            started_at=datetime.now(UTC),
            connection=connection,
            model=model,
            api=api,
            cost=0.0,
            latency_ms=(time.perf_counter() - started) * 1000,
            outcome="cache_hit",
            request_id=request_id,
            key_id=None if vkey is None else vkey.id,
        )
    )
