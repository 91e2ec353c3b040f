"""Usage tracking around one call: what the router hands the ledger.

A stream's events pass through :meth:`UsageTracker.track` as they arrive. A
non-streaming call makes one non-streaming upstream request
(``Provider.complete``), and the ledger sees the events its answer stands for
(:func:`~modelport.aggregate.response_events`), so both paths record alike.
An embedding call is recorded the same way, from one usage event holding its
input tokens (:func:`track_embedding`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from modelport.aggregate import response_events
from modelport.events import StreamEvent, UsageEvent
from modelport.providers import Provider
from modelport.types import ChatRequest, ChatResponse, EmbeddingResponse, ModelPrices

if TYPE_CHECKING:
    from modelport.routing._route import Route

__all__ = ["Attribution", "UsageTracker", "track_answer", "track_embedding", "track_events"]


@runtime_checkable
class UsageTracker(Protocol):
    """What the router needs from the usage ledger: wrap a stream, pass events through."""

    def track(
        self,
        events: AsyncIterator[StreamEvent],
        *,
        connection: str,
        model: str,
        prices: ModelPrices | None,
        api: str = "python",
        request_id: str | None = None,
        key_id: str | None = None,
    ) -> AsyncIterator[StreamEvent]: ...


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who made a call, for the ledger: the front end, its request id and the virtual key."""

    api: str
    request_id: str | None
    key_id: str | None = None


def track_events(
    ledger: UsageTracker,
    route: Route,
    events: AsyncIterator[StreamEvent],
    *,
    prices: ModelPrices | None,
    attribution: Attribution,
) -> AsyncIterator[StreamEvent]:
    """``events`` of a call on ``route``, recorded by ``ledger`` as they pass.

    ``key_id`` is passed only when a virtual key made the call, so a tracker
    written before keys existed keeps working for every other call.
    """
    if attribution.key_id is None:
        return ledger.track(
            events,
            connection=route.connection,
            model=route.model,
            prices=prices,
            api=attribution.api,
            request_id=attribution.request_id,
        )
    return ledger.track(
        events,
        connection=route.connection,
        model=route.model,
        prices=prices,
        api=attribution.api,
        request_id=attribution.request_id,
        key_id=attribution.key_id,
    )


def track_answer(
    ledger: UsageTracker,
    route: Route,
    provider: Provider,
    request: ChatRequest,
    *,
    prices: ModelPrices | None,
    attribution: Attribution,
) -> Awaitable[ChatResponse]:
    """``provider.complete(request)``, recorded by ``ledger`` from its answer's events.

    A ledger with a ``track_answer`` (the :class:`~modelport.ledger.Ledger`) records
    the answer without the events; any other tracker sees them through ``track``.
    Not a coroutine itself: the caller awaits the ledger's own, so a plain call's
    await chain has no frame of ours that every resumption of the task walks through.
    """
    fast = getattr(ledger, "track_answer", None)
    if fast is not None:
        return cast(
            "Awaitable[ChatResponse]",
            fast(
                provider.complete(request),
                connection=route.connection,
                model=route.model,
                prices=prices,
                api=attribution.api,
                request_id=attribution.request_id,
                key_id=attribution.key_id,
            ),
        )
    return _track_answer_events(ledger, route, provider, request, prices, attribution)


async def _track_answer_events(
    ledger: UsageTracker,
    route: Route,
    provider: Provider,
    request: ChatRequest,
    prices: ModelPrices | None,
    attribution: Attribution,
) -> ChatResponse:
    """The answer, recorded through ``ledger.track`` from the events it stands for."""
    answer: list[ChatResponse] = []
    events = track_events(
        ledger,
        route,
        _answer_events(provider, request, answer),
        prices=prices,
        attribution=attribution,
    )
    try:
        async for _event in events:
            pass
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
    return answer[0]


async def track_embedding(
    ledger: UsageTracker,
    route: Route,
    embed: Callable[[], Awaitable[EmbeddingResponse]],
    *,
    prices: ModelPrices | None,
    attribution: Attribution,
) -> EmbeddingResponse:
    """``embed()``, recorded by ``ledger`` as a call whose usage is its input tokens."""
    answer: list[EmbeddingResponse] = []

    async def usage() -> AsyncIterator[StreamEvent]:
        response = await embed()
        answer.append(response)
        yield UsageEvent(input_tokens=response.usage.input_tokens, cost=response.usage.cost)

    events = track_events(ledger, route, usage(), prices=prices, attribution=attribution)
    try:
        async for _event in events:
            pass
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
    return answer[0]


async def _answer_events(
    provider: Provider, request: ChatRequest, answer: list[ChatResponse]
) -> AsyncIterator[StreamEvent]:
    """The events ``provider.complete(request)``'s response stands for."""
    response = await provider.complete(request)
    answer.append(response)
    for event in response_events(response):
        yield event
