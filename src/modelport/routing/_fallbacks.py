"""Explicit fallback: the chain of addresses a call may try, and walking it.

``[fallbacks]`` in ``config.toml`` maps an address — as the caller wrote it,
else as it resolved — to the addresses to try next, in order. There are no
implicit fallbacks. A call moves on to the next address only when its error
is retryable (after that route's own retries) and no event has reached the
caller yet, so an answer is never stitched together from two models; each
move is logged. A fallback gets only the call's ``timeout`` and
``max_retries``, so a per-call key or header never travels to another
connection. An address in the chain may name a model group; the router
walks its deployments there (:mod:`._balancer`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from modelport.config import Config, resolve_target
from modelport.errors import ModelportError
from modelport.events import StreamEvent
from modelport.types import ChatResponse

if TYPE_CHECKING:
    from modelport.routing._route import Route

__all__ = [
    "RouteChain",
    "complete_along",
    "fallback_chain",
    "log_fallback",
    "overrides_at",
    "stream_along",
]

logger = logging.getLogger("modelport.routing")

#: Each route of a call's chain, with the address that comes after it (``None`` for the last).
RouteChain = AsyncGenerator[tuple["Route", "str | None"], None]

#: The per-call overrides a fallback keeps.
_SHARED_OVERRIDES = ("timeout", "max_retries")


def fallback_chain(address: str | None, config: Config, env: Mapping[str, str]) -> list[str]:
    """``address`` resolved (``None``: the default model), then its configured fallbacks.

    Each is an address or the name of a model group.
    """
    first = resolve_target(address, config, env=env)
    fallbacks = config.fallbacks
    return [first, *fallbacks.get(address or "", fallbacks.get(first, []))]


def overrides_at(position: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides for the chain's ``position``: all for the first, only limits after."""
    if position == 0:
        return overrides
    return {name: overrides[name] for name in _SHARED_OVERRIDES}


async def stream_along(
    routes: RouteChain,
    open_events: Callable[[Route], AsyncIterator[StreamEvent]],
    on_answer: Callable[[str], object] | None = None,
) -> AsyncIterator[StreamEvent]:
    """The events of the first route that answers; ``routes`` is closed at the end.

    ``on_answer`` is told the address that answered, before its first event goes out.
    """
    try:
        async for route, next_address in routes:
            events = open_events(route)
            started = False
            try:
                async for event in events:
                    if not started:
                        started = True
                        if on_answer is not None:
                            on_answer(route.address)
                    yield event
                return
            except ModelportError as error:
                if started or not error.retryable or next_address is None:
                    raise
                log_fallback(route, error, next_address)
            finally:
                await _aclose(events)
    finally:
        await routes.aclose()


async def complete_along(
    routes: RouteChain, answer: Callable[[Route], Awaitable[ChatResponse]]
) -> ChatResponse:
    """The first route's answer, its ``model`` set to the address that answered."""
    try:
        async for route, next_address in routes:
            try:
                response = await answer(route)
            except ModelportError as error:
                if not error.retryable or next_address is None:
                    raise
                log_fallback(route, error, next_address)
                continue
            return msgspec.structs.replace(response, model=route.address)
    finally:
        await routes.aclose()
    raise AssertionError("unreachable: the last route raises or answers")  # pragma: no cover


def log_fallback(route: Route, error: ModelportError, next_address: str) -> None:
    logger.warning(
        "%s failed before answering (%s); falling back to %s as configured",
        route.address,
        type(error).__name__,
        next_address,
    )


async def _aclose(closeable: object) -> None:
    close = getattr(closeable, "aclose", None)
    if close is not None:
        await close()
