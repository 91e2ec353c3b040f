"""The gate every governed request passes: who is calling, may they, is there room.

:class:`Governance` keeps the catalog (:class:`~modelport.governance._catalog.Snapshot`)
in memory and reloads it when its version moves (polled every
``poll_interval``, so a revoked key stops working on every instance within
about that long). Per request the gateway asks it three things:

1. :meth:`Governance.authenticate`: the presented secret's digest, looked up
   in a dictionary; revoked and expired keys are refused.
2. :meth:`Governance.admit`: the model must be one the key may use; then
   every budget and rate limit that applies is checked and held in one atomic
   step by the counter backend, which also clamps the request's output to
   what is left. A refusal raises (429 with ``retry-after``, 403, or 503 when
   the counters cannot be reached: the gate fails closed).
3. :meth:`Governance.finish`: the hold is settled to the call's real cost and
   tokens, in the background: the leases that end within a few milliseconds
   are settled together, in one step of the counter backend. Until then one
   timer renews every live lease, all at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import math
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from modelport.errors import (
    AuthError,
    BudgetExceededError,
    ConfigError,
    RateLimitError,
    UpstreamError,
)
from modelport.governance._catalog import Catalog, Snapshot
from modelport.governance._counters import (
    BudgetLine,
    CounterBackend,
    Granted,
    Lease,
    Plan,
    RateLine,
    Refused,
    Settlement,
)
from modelport.governance._instances import HEARTBEAT_S, InstanceRegistry, conflict
from modelport.governance._periods import period_bounds, period_label
from modelport.governance._pricing import (
    Charge,
    actual_nanos,
    chat_input_bound,
    embedding_input_bound,
    limit_nanos,
    price_per_token,
)
from modelport.governance._values import Budget, RateLimit, VirtualKey
from modelport.types import ChatRequest, EmbeddingRequest, ModelPrices, Usage

__all__ = ["CountersUnavailable", "Governance"]

logger = logging.getLogger("modelport.governance")


#: How long a settlement waits for others to go with it (seconds): one step for the
#: settlements of a few milliseconds costs a fraction of one step each. A call this
#: instance would refuse while settlements wait gets them sent first and is looked at
#: again, so their holds never refuse room that is free here; another instance sees
#: them released a few milliseconds later.
SETTLE_DELAY = 0.005


class CountersUnavailable(Exception):
    """The counter backend could not be reached (Redis or the database is down)."""


#: How a call ended, for settling: ``ok`` with its usage, ``failed`` before any
#: output reached us (nothing generated, nothing billed), or ``broken`` (cancelled
#: or failed after output began: charged its worst case).
Outcome = str


class Governance:
    """Virtual keys, budgets and rate limits for one gateway instance."""

    def __init__(
        self,
        catalog: Catalog,
        counters: CounterBackend,
        *,
        hold_seconds: float = 120.0,
        default_max_tokens: int = 4096,
        poll_interval: float = 0.25,
        clock: Callable[[], float] = time.time,
        registry: InstanceRegistry | None = None,
    ) -> None:
        self.catalog = catalog
        self.counters = counters
        self.registry = registry
        self.hold_seconds = hold_seconds
        self.default_max_tokens = default_max_tokens
        self.poll_interval = poll_interval
        self._clock = clock
        self.snapshot: Snapshot = catalog.snapshot()
        #: Why governed requests are refused right now (a setup that cannot enforce).
        self.blocked: str | None = None
        self._plans: dict[tuple[str, str], tuple[Plan, float, int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Settlements waiting to be sent together (:data:`SETTLE_DELAY`).
        self._settling: list[Settlement] = []
        # Lease ids: this instance's random prefix and a count (unique across instances
        # without a system call for randomness on every request).
        self._lease_prefix = secrets.token_hex(6) + "-"
        self._lease_numbers = itertools.count(1)
        #: Settlements on their way to the counters.
        self._settle_tasks: set[asyncio.Task[None]] = set()
        #: Leases of calls still running (with budget holds to renew), by id.
        self._live: dict[str, Lease] = {}
        self._renewer: asyncio.TimerHandle | None = None
        self._poller: asyncio.Task[None] | None = None
        #: What the gateway works out once per config for this gate (addresses asked,
        #: prices held at); the server fills it, and drops it when its config changes.
        self.memo: Any = None
        #: Settlements whose cost exceeded their hold (an upstream that ignored max_tokens).
        self.overruns = 0

    @property
    def active(self) -> bool:
        """Whether model calls need a virtual key (this gateway has issued one)."""
        return self.snapshot.governed

    # --- the catalog --------------------------------------------------------------------

    def reload(self) -> None:
        """Read the catalog again (after a change made here, or seen by the poll)."""
        self.snapshot = self.catalog.snapshot()
        self._plans.clear()

    async def start(self) -> None:
        """Announce this instance, refuse a setup that cannot enforce, start polling.

        Raises :class:`~modelport.errors.ConfigError` when this gateway has virtual
        keys and another live instance on the same database does not share its Redis.
        """
        if self.registry is not None:
            await asyncio.to_thread(self.registry.announce)
            reason = await self._conflict()
            if reason is not None:
                await asyncio.to_thread(self.registry.leave)
                raise ConfigError(f"Refusing to start: {reason}")
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll())

    async def _conflict(self) -> str | None:
        if self.registry is None or not self.active:
            return None
        others = await asyncio.to_thread(self.registry.others)
        return conflict(self.registry.redis, others)

    async def _poll(self) -> None:
        next_beat = 0.0
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                version = await asyncio.to_thread(self.catalog.version)
                if version != self.snapshot.version:
                    snapshot = await asyncio.to_thread(self.catalog.snapshot)
                    self.snapshot = snapshot
                    self._plans.clear()
                if self.registry is not None and time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + HEARTBEAT_S
                    await asyncio.to_thread(self.registry.announce)
                    reason = await self._conflict()
                    if reason != self.blocked:
                        if reason is not None:
                            logger.error("refusing governed calls: %s", reason)
                        self.blocked = reason
            except Exception:  # the database is down: keep what we know, try again
                logger.warning("reading the virtual key catalog failed", exc_info=True)

    # --- 1. who -------------------------------------------------------------------------

    def authenticate(self, presented: list[bytes]) -> VirtualKey | AuthError:
        """The virtual key among ``presented``, or why none will do."""
        by_digest = self.snapshot.by_digest
        for candidate in presented:
            key = by_digest.get(hashlib.sha256(candidate).digest())
            if key is None:
                continue
            if key.revoked_at is not None:
                return AuthError(f"Virtual key {key.id} ({key.name}) was revoked.")
            if key.expires_at is not None and self._clock() >= key.expires_at.timestamp():
                return AuthError(f"Virtual key {key.id} ({key.name}) expired.")
            return key
        if presented:
            return AuthError(
                "The key sent is not a valid virtual key of this gateway (keys from "
                "`modelport vkeys create` start with mpvk-)."
            )
        return AuthError(
            "This gateway issues virtual keys: send yours as `Authorization: Bearer <key>` "
            "or in the `x-api-key` header."
        )

    # --- 2. may they, is there room ----------------------------------------------------

    def plan(self, key: VirtualKey, address: str) -> Plan:
        """The counters a call by ``key`` to ``address`` must pass (cached per period)."""
        now = self._clock()
        cached = self._plans.get((key.id, address))
        version = self.snapshot.version
        if cached is not None and cached[1] > now and cached[2] == version:
            return cached[0]
        plan, valid_until = self._build_plan(key, address, now)
        if len(self._plans) > 10_000:
            self._plans.clear()
        self._plans[(key.id, address)] = (plan, valid_until, version)
        return plan

    def _build_plan(self, key: VirtualKey, address: str, now: float) -> tuple[Plan, float]:
        snapshot = self.snapshot
        subjects = {"key": key.id, "user": key.user, "team": key.team}
        moment = datetime.fromtimestamp(now, UTC)
        valid_until = now + 3600
        lines: list[BudgetLine] = []
        for budget in snapshot.budgets:
            if subjects.get(budget.scope) != budget.subject:
                continue
            if budget.model is not None and budget.model != address:
                continue
            since, until = period_bounds(budget.period, moment)
            if until is not None:
                valid_until = min(valid_until, until.timestamp())
            lines.append(
                BudgetLine(
                    counter=f"b:{budget.id}:{period_label(budget.period, moment)}",
                    max_cost=None if budget.max_cost is None else limit_nanos(budget.max_cost),
                    max_tokens=budget.max_tokens,
                    ends_at_ms=None if until is None else int(until.timestamp() * 1000),
                    key_ids=_keys_of(snapshot.keys, budget),
                    address=budget.model,
                    since=since,
                    until=until,
                    label=_describe_budget(budget),
                )
            )
        rates = [
            RateLine(
                counter=f"r:{limit.id}",
                rpm=limit.rpm,
                tpm=limit.tpm,
                label=_describe_limit(limit),
            )
            for limit in snapshot.limits
            if _limit_applies(limit, subjects, address)
        ]
        return Plan(budgets=tuple(lines), rates=tuple(rates)), valid_until

    def check_model(self, key: VirtualKey, requested: str, address: str) -> None:
        if key.models and requested not in key.models and address not in key.models:
            raise AuthError(
                f"Virtual key {key.id} may not use model {requested!r}; it may use: "
                f"{', '.join(key.models)}.",
                status=403,
            )

    def chat_charge(
        self, plan: Plan, chat: ChatRequest, prices: ModelPrices | None, address: str
    ) -> Charge:
        per_token = self._per_token(plan, prices, address)
        input_tokens = chat_input_bound(chat)
        return Charge(
            input_cost=math.ceil(input_tokens * per_token[0] - 1e-6),
            input_tokens=input_tokens,
            output_price=per_token[1],
            max_output=chat.max_tokens or self.default_max_tokens,
        )

    def embedding_charge(
        self, plan: Plan, request: EmbeddingRequest, prices: ModelPrices | None, address: str
    ) -> Charge:
        per_token = self._per_token(plan, prices, address)
        input_tokens = embedding_input_bound(request)
        return Charge(
            input_cost=math.ceil(input_tokens * per_token[0] - 1e-6),
            input_tokens=input_tokens,
            output_price=0.0,
            max_output=0,
            min_output=0,
        )

    def _per_token(
        self, plan: Plan, prices: ModelPrices | None, address: str
    ) -> tuple[float, float]:
        per_token = price_per_token(prices)
        if per_token is not None:
            return per_token
        if plan.needs_prices:
            connection = address.partition("/")[0]
            raise AuthError(
                f"Model {address!r} has no known price, and a budget in dollars applies to "
                "this key: the gateway cannot bound what the call would cost. Set its input "
                f"and output prices under [connections.{connection}.prices] in config.toml "
                "(0 for a free local model), or use a token budget.",
                status=403,
            )
        return 0.0, 0.0

    async def admit(self, plan: Plan, charge: Charge) -> Lease:
        """Check and hold every counter of ``plan`` at once; raise when one has no room."""
        if self.blocked is not None:
            raise UpstreamError(self.blocked, status=503)
        lease_id = f"{self._lease_prefix}{next(self._lease_numbers):x}"
        result = await self._reserve(plan, charge, lease_id)
        if isinstance(result, Refused) and result.kind != "rpm" and self._settlements_pending:
            # The holds of calls that ended here may be what stands in the way: settle
            # them now and look again, rather than refuse room that is free.
            await self._settled()
            result = await self._reserve(plan, charge, lease_id)
        if isinstance(result, Refused):
            raise _refusal(result)
        lease = result.lease
        self._renew_later(lease)
        return lease

    async def _reserve(self, plan: Plan, charge: Charge, lease_id: str) -> Granted | Refused:
        try:
            return await self.counters.reserve(plan, charge, lease_id)
        except CountersUnavailable as exc:
            raise UpstreamError(
                f"The gateway cannot reach its budget and rate counters ({exc}); it refuses "
                "model calls until they are back rather than let limits go unchecked.",
                status=503,
            ) from None

    # --- 3. settle ------------------------------------------------------------------------

    def finish(
        self,
        lease: Lease,
        *,
        usage: Usage | None,
        prices: ModelPrices | None,
        outcome: Outcome,
    ) -> None:
        """Settle ``lease`` to what the call cost, in the background (never raises)."""
        if lease.settled:
            return
        lease.settled = True
        self._live.pop(lease.id, None)
        if outcome == "failed":
            cost, tokens = 0, 0
        elif outcome == "ok" and usage is not None:
            cost = actual_nanos(usage, prices)
            tokens = usage.input_tokens + usage.output_tokens
            if cost > lease.cost or tokens > lease.tokens:
                # The upstream went past max_tokens, or its own price is above ours: the
                # truth is counted, and the overrun is said out loud.
                self.overruns += 1
                logger.warning(
                    "a call cost more than its hold (%d > %d nano-dollars, %d > %d tokens): "
                    "the upstream ignored max_tokens or charges above the configured prices",
                    cost,
                    lease.cost,
                    tokens,
                    lease.tokens,
                )
        else:
            cost, tokens = lease.cost, lease.tokens
        if not self._settling:
            asyncio.get_running_loop().call_later(SETTLE_DELAY, self._send_settlements)
        self._settling.append((lease, cost, tokens))

    def _send_settlements(self) -> None:
        batch, self._settling = self._settling, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._settle(batch))
            self._settle_tasks.add(task)
            task.add_done_callback(self._settle_tasks.discard)

    @property
    def _settlements_pending(self) -> bool:
        return bool(self._settling or self._settle_tasks)

    async def _settled(self, timeout: float = 1.0) -> None:
        """Send the settlements waiting, and wait (up to ``timeout``) for all on their way."""
        self._send_settlements()
        if self._settle_tasks:
            await asyncio.wait(list(self._settle_tasks), timeout=timeout)

    async def _settle(self, batch: list[Settlement]) -> None:
        delay = 0.05
        deadline = time.monotonic() + self.hold_seconds
        while True:
            try:
                await self.counters.settle_many(batch)
                return
            except Exception:
                if time.monotonic() > deadline:
                    logger.error(
                        "settling %d holds failed for %.0f s; giving up",
                        len(batch),
                        self.hold_seconds,
                    )
                    return
                logger.warning("settling %d holds failed; retrying", len(batch), exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _renew_later(self, lease: Lease) -> None:
        if not lease.plan.budgets:
            return  # rate windows need no lease: they end with their minute
        self._live[lease.id] = lease
        if self._renewer is None:
            self._renewer = asyncio.get_running_loop().call_later(
                self.hold_seconds / 3, self._renew_live
            )

    def _renew_live(self) -> None:
        """Renew every live lease (each at most a third of its term after its last renewal)."""
        self._renewer = None
        if not self._live:
            return
        self._spawn(self._renew(list(self._live.values())))
        self._renewer = asyncio.get_running_loop().call_later(
            self.hold_seconds / 3, self._renew_live
        )

    async def _renew(self, leases: list[Lease]) -> None:
        try:
            await self.counters.renew_many(leases)
        except Exception:
            logger.warning("renewing %d holds failed", len(leases), exc_info=True)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for settlements in flight (tests, and shutting down)."""
        self._send_settlements()
        tasks = self._tasks | self._settle_tasks
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        await self.drain()
        await self.counters.aclose()
        if self.registry is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.registry.leave)
        await asyncio.to_thread(self.catalog.close)


def _keys_of(keys: tuple[VirtualKey, ...], budget: Budget) -> tuple[str, ...]:
    """The keys whose calls count against ``budget`` (for rebuilding it from the ledger)."""
    if budget.scope == "key":
        return (budget.subject,)
    attribute = "user" if budget.scope == "user" else "team"
    return tuple(sorted(key.id for key in keys if getattr(key, attribute) == budget.subject))


def _limit_applies(limit: RateLimit, subjects: dict[str, str | None], address: str) -> bool:
    if limit.scope == "model":
        return limit.subject == address
    if subjects.get(limit.scope) != limit.subject:
        return False
    return limit.model is None or limit.model == address


def _describe_budget(budget: Budget) -> str:
    amounts = []
    if budget.max_cost is not None:
        amounts.append(f"${budget.max_cost:g}")
    if budget.max_tokens is not None:
        amounts.append(f"{budget.max_tokens:,} tokens")
    model = f" on {budget.model}" if budget.model else ""
    per = "in total" if budget.period == "total" else f"per {budget.period}"
    return f"the {budget.scope} {budget.subject}'s budget of {' and '.join(amounts)} {per}{model}"


def _describe_limit(limit: RateLimit) -> str:
    amounts = []
    if limit.rpm is not None:
        amounts.append(f"{limit.rpm:,} requests")
    if limit.tpm is not None:
        amounts.append(f"{limit.tpm:,} tokens")
    model = f" on {limit.model}" if limit.model else ""
    return f"the {limit.scope} {limit.subject}'s limit of {' and '.join(amounts)} per minute{model}"


def _refusal(refused: Refused) -> RateLimitError:
    if refused.kind == "budget":
        return BudgetExceededError(
            f"No room left in {refused.line} for this request.", retry_after=refused.retry_after
        )
    what = "requests" if refused.kind == "rpm" else "tokens"
    return RateLimitError(
        f"Rate limited: {refused.line} is used up for this minute ({what}).",
        retry_after=refused.retry_after,
    )
