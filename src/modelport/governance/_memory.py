"""Counters in this process: one gateway on SQLite (or PostgreSQL with no other instance).

The decision is :func:`~modelport.governance._counters.decide`, run with no
await between reading and writing, so on one event loop it is atomic. A
budget counter starts, in each process and period, from what the ledger
says was spent (:data:`~modelport.governance._counters.InitFrom`), so a
restart forgets only the holds of the requests it interrupted.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence

from modelport.governance._counters import (
    WINDOW_MS,
    BudgetState,
    Granted,
    InitFrom,
    Lease,
    Plan,
    Refused,
    Settlement,
    WindowState,
    decide,
    settle_into,
)
from modelport.governance._pricing import Charge

__all__ = ["MemoryCounters"]


class MemoryCounters:
    """Budget and rate counters in dictionaries; ``clock`` returns milliseconds."""

    def __init__(self, init_from: InitFrom, *, ttl_ms: int, clock: object = None) -> None:
        self._init_from = init_from
        self._ttl_ms = ttl_ms
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._budgets: dict[str, BudgetState] = {}
        self._windows: dict[tuple[str, int], WindowState] = {}

    def _now(self) -> int:
        return int(self._clock())  # type: ignore[operator]

    async def reserve(self, plan: Plan, charge: Charge, lease_id: str) -> Granted | Refused:
        for line in plan.budgets:
            if line.counter not in self._budgets:
                cost, tokens = await asyncio.to_thread(self._init_from, line)
                # Another request may have initialised it while we read the ledger.
                self._budgets.setdefault(
                    line.counter,
                    BudgetState(epoch=secrets.token_hex(4), spent_cost=cost, spent_tokens=tokens),
                )
        now = self._now()
        window = now // WINDOW_MS
        self._forget_old_windows(window)
        budgets = [(line, self._budgets[line.counter]) for line in plan.budgets]
        rates = [
            (line, self._windows.setdefault((line.counter, window), WindowState()))
            for line in plan.rates
        ]
        return decide(
            budgets, rates, charge, plan=plan, lease_id=lease_id, now_ms=now, ttl_ms=self._ttl_ms
        )

    def _forget_old_windows(self, window: int) -> None:
        if self._windows and len(self._windows) > 64:
            for key in [k for k in self._windows if k[1] < window]:
                del self._windows[key]

    async def settle_many(self, settlements: Sequence[Settlement]) -> None:
        for lease, cost, tokens in settlements:
            budgets = [self._budgets.get(line.counter) for line in lease.plan.budgets]
            rates = [
                self._windows.get((line.counter, window))
                for line, window in zip(lease.plan.rates, lease.windows, strict=True)
            ]
            settle_into(budgets, rates, lease, cost, tokens)

    async def renew_many(self, leases: Sequence[Lease]) -> None:
        expires = self._now() + self._ttl_ms
        for lease in leases:
            for line in lease.plan.budgets:
                state = self._budgets.get(line.counter)
                hold = state.holds.get(lease.id) if state is not None else None
                if hold is not None:
                    hold.expires_ms = expires

    async def rebuild(self) -> None:
        """Forget every budget counter; each starts again from the ledger on next use."""
        self._budgets.clear()

    async def aclose(self) -> None:
        return None
