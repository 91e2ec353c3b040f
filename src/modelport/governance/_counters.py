"""What every counter backend does, and the one decision the in-process and SQL ones share.

A request's :class:`Plan` lists the budget counters (one per budget that
applies, for the current period) and the rate counters (one per rate limit
that applies) it must pass. :func:`decide` checks all of them and, only if
every one has room, takes a hold on each, in one step:

* **budgets**: room is ``limit − spent − held``. The request's output is
  clamped to what the tightest budget can still pay for (and what the
  tightest token limit leaves); below ``min_output`` it is refused. The hold
  is the clamped worst case, a lease that expires ``ttl`` after it was last
  renewed, so a crashed instance's holds free themselves.
* **rate limits**: fixed one-minute windows. A request counts in the window it
  was admitted in: ``count + 1 ≤ rpm``, and its worst-case tokens are held
  against ``tpm`` until it settles to its real tokens.

Settling replaces a hold with the real cost and tokens. The Redis backend
runs the same decision as a Lua script (``_redis.py``); the tests hold both to
the same sequences of operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from modelport.governance._pricing import Charge

__all__ = [
    "WINDOW_MS",
    "BudgetLine",
    "BudgetState",
    "CounterBackend",
    "Granted",
    "Hold",
    "Lease",
    "Plan",
    "RateLine",
    "Refused",
    "Settlement",
    "WindowState",
    "decide",
    "settle_into",
]

#: The rate-limit window: one minute, aligned to the clock.
WINDOW_MS = 60_000


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One budget's counter for the current period.

    ``counter`` names it (budget id and period label); ``max_cost`` is in
    nano-dollars. ``ends_at_ms`` is when the period ends (``None`` for a budget
    that never resets). ``key_ids``, ``address`` and the period's
    bounds say which ledger rows the counter is rebuilt from.
    """

    counter: str
    max_cost: int | None
    max_tokens: int | None
    ends_at_ms: int | None
    key_ids: tuple[str, ...]
    address: str | None
    since: datetime | None
    until: datetime | None
    label: str = ""


@dataclass(frozen=True, slots=True)
class RateLine:
    """One rate limit's counter; the window is chosen when the request is admitted."""

    counter: str
    rpm: int | None
    tpm: int | None
    label: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """Every counter one request must pass."""

    budgets: tuple[BudgetLine, ...] = ()
    rates: tuple[RateLine, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.budgets and not self.rates

    @property
    def bounds_output(self) -> bool:
        """Whether the request's output must be bounded (a money or token limit applies)."""
        return bool(self.budgets) or any(line.tpm is not None for line in self.rates)

    @property
    def needs_prices(self) -> bool:
        return any(line.max_cost is not None for line in self.budgets)


@dataclass(slots=True)
class Lease:
    """The holds one admitted request took, to settle or release once it ends."""

    id: str
    plan: Plan
    cost: int
    tokens: int
    epochs: tuple[str, ...]
    windows: tuple[int, ...]
    max_output: int
    settled: bool = False


@dataclass(frozen=True, slots=True)
class Granted:
    lease: Lease


@dataclass(frozen=True, slots=True)
class Refused:
    """Why not: ``kind`` is ``budget``, ``rpm`` or ``tpm``; ``line`` the counter's label."""

    kind: str
    line: str
    retry_after: float | None


#: A lease to settle, with the real cost (nano-dollars) and tokens of its call.
Settlement = tuple[Lease, int, int]


class CounterBackend(Protocol):
    """Where counters live: this process, PostgreSQL, or Redis.

    ``settle_many`` and ``renew_many`` take every lease that ended (or lives on)
    since the last batch: settling is off the request path, and one step for many
    leases costs a fraction of one step each. ``settle_many`` is all or nothing,
    so a batch that failed can be tried again whole.
    """

    async def reserve(self, plan: Plan, charge: Charge, lease_id: str) -> Granted | Refused: ...
    async def settle_many(self, settlements: Sequence[Settlement]) -> None: ...
    async def renew_many(self, leases: Sequence[Lease]) -> None: ...
    async def rebuild(self) -> None: ...
    async def aclose(self) -> None: ...


# --- the decision, for the backends that run it in Python ----------------------------------


@dataclass(slots=True)
class Hold:
    cost: int
    tokens: int
    expires_ms: int


@dataclass(slots=True)
class BudgetState:
    epoch: str
    spent_cost: int = 0
    spent_tokens: int = 0
    held_cost: int = 0
    held_tokens: int = 0
    holds: dict[str, Hold] = field(default_factory=dict)
    #: No hold expires before this (a lower bound: renewals only move expiries later).
    next_expiry: int = 1 << 62

    def purge(self, now_ms: int) -> None:
        """Drop holds whose lease ran out: their request's instance stopped renewing them."""
        if now_ms < self.next_expiry:
            return
        soonest = 1 << 62
        for lease_id, hold in list(self.holds.items()):
            if hold.expires_ms <= now_ms:
                del self.holds[lease_id]
                self.held_cost -= hold.cost
                self.held_tokens -= hold.tokens
            elif hold.expires_ms < soonest:
                soonest = hold.expires_ms
        self.next_expiry = soonest


@dataclass(slots=True)
class WindowState:
    count: int = 0
    tokens: int = 0
    held: int = 0


def decide(
    budgets: Sequence[tuple[BudgetLine, BudgetState]],
    rates: Sequence[tuple[RateLine, WindowState]],
    charge: Charge,
    *,
    plan: Plan,
    lease_id: str,
    now_ms: int,
    ttl_ms: int,
) -> Granted | Refused:
    """Check every counter; if all have room, hold the clamped worst case on each."""
    window = now_ms // WINDOW_MS
    window_left = ((window + 1) * WINDOW_MS - now_ms) / 1000
    output = charge.max_output
    for line, state in budgets:
        state.purge(now_ms)
        if line.max_cost is not None:
            room = line.max_cost - state.spent_cost - state.held_cost - charge.input_cost
            affordable = _affordable(room, charge.output_price)
            if affordable < charge.min_output:
                return Refused("budget", line.label, _budget_retry(line, state, charge, now_ms))
            output = min(output, affordable)
        if line.max_tokens is not None:
            room = line.max_tokens - state.spent_tokens - state.held_tokens - charge.input_tokens
            if room < charge.min_output:
                return Refused("budget", line.label, _budget_retry(line, state, charge, now_ms))
            output = min(output, room)
    for line, state in rates:
        if line.rpm is not None and state.count + 1 > line.rpm:
            return Refused("rpm", line.label, window_left)
        if line.tpm is not None:
            room = line.tpm - state.tokens - state.held - charge.input_tokens
            if room < charge.min_output:
                return Refused("tpm", line.label, window_left)
            output = min(output, room)
    output = max(output, charge.min_output)
    cost = charge.cost_of(output)
    tokens = charge.input_tokens + output
    expires = now_ms + ttl_ms
    for _line, state in budgets:
        state.held_cost += cost
        state.held_tokens += tokens
        state.holds[lease_id] = Hold(cost, tokens, expires)
        if expires < state.next_expiry:
            state.next_expiry = expires
    for _line, state in rates:
        state.count += 1
        state.held += tokens
    lease = Lease(
        id=lease_id,
        plan=plan,
        cost=cost,
        tokens=tokens,
        epochs=tuple(state.epoch for _line, state in budgets),
        windows=tuple(window for _ in rates),
        max_output=output,
    )
    return Granted(lease)


def _affordable(room: int, price: float) -> int:
    # The Lua script computes the same, in the same double arithmetic.
    if room < 0:
        return -1
    if price <= 0:
        return 1 << 62
    return math.floor(room / price)


def _budget_retry(
    line: BudgetLine, state: BudgetState, charge: Charge, now_ms: int
) -> float | None:
    """When trying again can help: soon, if holds of requests in flight are what stands
    in the way; else when the period starts afresh (``None``: a total budget never does)."""
    smallest = charge.cost_of(charge.min_output)
    fits_cost = line.max_cost is None or state.spent_cost + smallest <= line.max_cost
    fits_tokens = (
        line.max_tokens is None
        or state.spent_tokens + charge.input_tokens + charge.min_output <= line.max_tokens
    )
    if fits_cost and fits_tokens and state.holds:
        soonest = min(hold.expires_ms for hold in state.holds.values())
        return max(1.0, min(5.0, (soonest - now_ms) / 1000))
    if line.ends_at_ms is None:
        return None
    return max(1.0, (line.ends_at_ms - now_ms) / 1000)


def settle_into(
    budgets: Sequence[BudgetState | None],
    rates: Sequence[WindowState | None],
    lease: Lease,
    cost: int,
    tokens: int,
) -> None:
    """Replace ``lease``'s holds with the real ``cost`` and ``tokens``.

    A budget counter rebuilt since the hold was taken (its epoch changed, or
    it is gone: ``None``) gets nothing: the rebuild read this call from the
    ledger, or will. A hold that expired is gone already; the real cost is
    still counted, as it was spent.
    """
    for state, epoch in zip(budgets, lease.epochs, strict=True):
        if state is None or state.epoch != epoch:
            continue
        hold = state.holds.pop(lease.id, None)
        if hold is not None:
            state.held_cost -= hold.cost
            state.held_tokens -= hold.tokens
        state.spent_cost += cost
        state.spent_tokens += tokens
    for state in rates:
        if state is None:
            continue
        state.held -= lease.tokens
        state.tokens += tokens


#: Reads what a budget counter starts from: (nano-dollars, tokens) spent in its period.
InitFrom = Callable[[BudgetLine], tuple[int, int]]
