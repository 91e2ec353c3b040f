"""Where a governed call passes the team gateway's gate: the one place the model routes call.

The guard found the caller's virtual key (``scope["state"]["vkey"]``); a route
with one hands its parsed request here before calling the router:
:func:`admit_chat` (the chat routes: chat completions, messages, responses)
and :func:`admit_embedding` check the model is one the key may use, then
reserve every budget and rate limit that applies in one step
(:meth:`~modelport.governance.Governance.admit`), clamping ``max_tokens`` to
what is left. The :class:`GovernedCall` they return settles the hold to the
real cost once the call ends: :meth:`GovernedCall.watch` for a stream,
:meth:`GovernedCall.done` for an answer. Plugin models are called through the
same router, so they pass the same gate.

A request without a virtual key never comes here: the ungoverned path is one
dictionary lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec

from modelport.config import resolve_address, resolve_target
from modelport.events import StreamEvent, UsageEvent
from modelport.types import ChatRequest, EmbeddingRequest, ModelPrices, Usage

if TYPE_CHECKING:
    from modelport.governance import Governance, VirtualKey
    from modelport.governance._counters import Lease

__all__ = ["GovernedCall", "admit_chat", "admit_embedding"]


class GovernedCall:
    """One admitted call: its lease, and the prices its real cost is counted at."""

    __slots__ = ("_governance", "key_id", "lease", "prices")

    def __init__(
        self, governance: Governance, key_id: str, lease: Lease, prices: ModelPrices | None
    ) -> None:
        self._governance = governance
        self.key_id = key_id
        self.lease = lease
        self.prices = prices

    def done(self, usage: Usage | UsageEvent | None, outcome: str) -> None:
        """Settle: ``ok`` (at ``usage``), ``failed`` (nothing was generated) or ``broken``."""
        self._governance.finish(self.lease, usage=usage, prices=self.prices, outcome=outcome)  # type: ignore[arg-type]

    async def watch(self, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        """Re-yield ``events`` untouched; settle when they end, however they end.

        A stream that ends with its usage settles to it. One that fails before
        any event was generated nothing and costs nothing; one cancelled or
        broken later is charged its hold (the upstream bills what it generated,
        and no usage came to say how much).
        """
        usage: UsageEvent | None = None
        started = False
        outcome = "broken"
        try:
            async for event in events:
                started = True
                if type(event) is UsageEvent:
                    usage = event
                yield event
            outcome = "ok"
        except (GeneratorExit, asyncio.CancelledError):
            raise
        except BaseException:
            outcome = "broken" if started else "failed"
            raise
        finally:
            self.done(usage, outcome)
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()


class _Known:
    """What the gate worked out from one config: addresses by name asked, prices by address."""

    __slots__ = ("addresses", "config", "prices")

    def __init__(self, config: Any) -> None:
        self.config = config
        self.addresses: dict[str, str] = {}
        self.prices: dict[str, ModelPrices] = {}


def _known(state: Any, governance: Governance) -> _Known:
    """The gate's memory for the router's config, started afresh when the config changes."""
    config = state.router.config
    known: _Known | None = governance.memo
    if known is None or known.config is not config:
        known = governance.memo = _Known(config)
    return known


def _address(state: Any, governance: Governance, requested: str) -> str:
    """The address ``requested`` leads to, or the name of the model group it is."""
    addresses = _known(state, governance).addresses
    found = addresses.get(requested)
    if found is None:
        router = state.router
        found = resolve_target(requested, router.config, env=router.env)
        if len(addresses) < 10_000:  # names come from clients: keep the memory bounded
            addresses[requested] = found
    return found


async def _prices(state: Any, governance: Governance, address: str) -> ModelPrices | None:
    """The prices a call to ``address`` is held at: the highest along its fallback chain.

    Kept per address while the router's config is the same object, when every link's
    prices come from that config (a plugin's, or those seen listed, may change).
    """
    known = _known(state, governance).prices
    found = known.get(address)
    if found is not None:
        return found
    prices, configured = await _chain_prices(state, address)
    if configured and prices is not None:
        known[address] = prices
    return prices


async def _chain_prices(state: Any, address: str) -> tuple[ModelPrices | None, bool]:
    """The highest prices along ``address``'s fallback chain, and whether config set them all."""
    from modelport.routing._fallbacks import fallback_chain

    router = state.router
    chain = fallback_chain(address, router.config, router.env)
    found: list[ModelPrices] = []
    groups = router.config.model_groups
    # A model group may answer from any of its deployments: each counts as a link.
    addresses = [
        address
        for entry in chain
        for address in (
            groups[entry].addresses
            if entry in groups
            else (resolve_address(entry, router.config, env=router.env),)
        )
    ]
    configured = True
    for resolved in addresses:
        connection, _, model = resolved.partition("/")
        await router.load_providers(connection)  # a plugin's models carry their prices
        prices = router.prices_for(connection, model)
        if prices is None:
            return None, False
        found.append(prices)
        connection_config = router.config.connections.get(connection)
        configured = configured and (
            connection_config is not None and model in connection_config.prices
        )
    if len(found) == 1:
        return found[0], configured
    return ModelPrices(
        input=_highest(p.input for p in found),
        output=_highest(p.output for p in found),
        cache_read=_highest(p.cache_read for p in found),
        cache_write=_highest(p.cache_write for p in found),
    ), configured


def _highest(values: Any) -> float | None:
    known = list(values)
    return None if any(v is None for v in known) else max(known)


async def admit_chat(
    state: Any, key: VirtualKey, chat: ChatRequest
) -> tuple[ChatRequest, GovernedCall | None]:
    """``chat`` as it may be sent (``max_tokens`` clamped), and its call to settle.

    Raises what the client is answered with: 403 (a model the key may not
    use, or no price where a dollar budget applies), 429 (a budget or rate
    limit; ``retry-after`` says when), 503 (the counters cannot be reached).
    """
    governance: Governance = state.governance
    address = _address(state, governance, chat.model)
    governance.check_model(key, chat.model, address)
    plan = governance.plan(key, address)
    if plan.empty:
        return chat, None
    prices = await _prices(state, governance, address)
    charge = governance.chat_charge(plan, chat, prices, address)
    lease = await governance.admit(plan, charge)
    if plan.bounds_output and chat.max_tokens != lease.max_output:
        chat = msgspec.structs.replace(chat, max_tokens=lease.max_output)
    return chat, GovernedCall(governance, key.id, lease, prices)


async def admit_embedding(
    state: Any, key: VirtualKey, request: EmbeddingRequest
) -> GovernedCall | None:
    """As :func:`admit_chat`, for an embedding call (its input is all it costs)."""
    governance: Governance = state.governance
    address = _address(state, governance, request.model)
    governance.check_model(key, request.model, address)
    plan = governance.plan(key, address)
    if plan.empty:
        return None
    prices = await _prices(state, governance, address)
    charge = governance.embedding_charge(plan, request, prices, address)
    lease = await governance.admit(plan, charge)
    return GovernedCall(governance, key.id, lease, prices)
