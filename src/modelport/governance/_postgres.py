"""Counters in PostgreSQL, for a gateway with a database but no Redis: one transaction a step.

Each reserve and settle is one transaction that locks the rows it reads
(``SELECT … FOR UPDATE``, budget counters then rate windows, each in sorted
order, so two transactions never wait on each other in a cycle), runs
:func:`~modelport.governance._counters.decide` on them and writes back. Time
is the database's clock, so the minute is the same for every caller. Slower
than Redis (a transaction a step, on a worker thread) but exact and durable:
the counters survive a restart, and holds are rows with an expiry.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from modelport.governance import _schema as t
from modelport.governance._counters import (
    WINDOW_MS,
    BudgetLine,
    BudgetState,
    Granted,
    Hold,
    Lease,
    Plan,
    Refused,
    Settlement,
    WindowState,
    decide,
    settle_into,
)
from modelport.governance._pricing import Charge
from modelport.governance._spend import ledger_spend_on

__all__ = ["PostgresCounters"]

_NOW_MS = sa.text("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)")
_C = t.budget_counters
_H = t.budget_holds
_W = t.rate_windows


class PostgresCounters:
    """Budget and rate counters in three tables of the ledger's PostgreSQL database."""

    #: The dialect's ``INSERT`` (its ``on_conflict_do_nothing`` is the same in SQLite's).
    _insert: Any = staticmethod(insert)

    def __init__(self, engine: Engine, *, ttl_ms: int) -> None:
        self._engine = engine
        self._ttl_ms = ttl_ms

    def _now_ms(self, conn: Connection) -> int:
        return int(conn.execute(_NOW_MS).scalar_one())

    async def reserve(self, plan: Plan, charge: Charge, lease_id: str) -> Granted | Refused:
        return await self._in_thread(self._reserve, plan, charge, lease_id)

    async def _in_thread(self, function: Any, *args: Any) -> Any:
        from modelport.governance._enforcer import CountersUnavailable

        try:
            return await asyncio.to_thread(function, *args)
        except sa.exc.OperationalError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise CountersUnavailable(f"the database: {reason}") from None

    def _reserve(self, plan: Plan, charge: Charge, lease_id: str) -> Granted | Refused:
        with self._engine.begin() as conn:
            now = self._now_ms(conn)
            window = now // WINDOW_MS
            states = self._lock_budgets(conn, plan.budgets)
            windows = self._lock_windows(conn, [line.counter for line in plan.rates], window)
            before = {name: dict(state.holds) for name, state in states.items()}
            budgets = [(line, states[line.counter]) for line in plan.budgets]
            rates = [(line, windows[line.counter]) for line in plan.rates]
            result = decide(
                budgets,
                rates,
                charge,
                plan=plan,
                lease_id=lease_id,
                now_ms=now,
                ttl_ms=self._ttl_ms,
            )
            if isinstance(result, Refused):
                self._write_budgets(conn, states, before)  # expired holds purged still go
                return result
            self._write_budgets(conn, states, before)
            self._write_windows(conn, windows, window)
            return result

    def _lock_budgets(
        self, conn: Connection, lines: tuple[BudgetLine, ...]
    ) -> dict[str, BudgetState]:
        names = sorted({line.counter for line in lines})
        if not names:
            return {}
        found = self._select_budgets(conn, names)
        missing = [line for line in lines if line.counter not in found]
        for line in missing:
            cost, tokens = ledger_spend_on(conn, line)
            conn.execute(
                self._insert(_C)
                .values(
                    counter=line.counter,
                    epoch=secrets.token_hex(4),
                    spent_cost=cost,
                    spent_tokens=tokens,
                    held_cost=0,
                    held_tokens=0,
                )
                .on_conflict_do_nothing()
            )
        if missing:
            found = self._select_budgets(conn, names)
        holds = conn.execute(sa.select(_H).where(_H.c.counter.in_(names)))
        for row in holds:
            state = found[row.counter]
            state.holds[row.lease] = Hold(row.cost, row.tokens, row.expires_ms)
            state.next_expiry = min(state.next_expiry, row.expires_ms)
        return found

    def _select_budgets(self, conn: Connection, names: list[str]) -> dict[str, BudgetState]:
        query = (
            sa.select(_C).where(_C.c.counter.in_(names)).order_by(_C.c.counter).with_for_update()
        )
        return {
            row.counter: BudgetState(
                epoch=row.epoch,
                spent_cost=row.spent_cost,
                spent_tokens=row.spent_tokens,
                held_cost=row.held_cost,
                held_tokens=row.held_tokens,
            )
            for row in conn.execute(query)
        }

    def _lock_windows(
        self, conn: Connection, names: list[str], window: int
    ) -> dict[str, WindowState]:
        names = sorted(set(names))
        if not names:
            return {}
        conn.execute(
            self._insert(_W)
            .values(
                [
                    {"counter": n, "window": window, "count": 0, "tokens": 0, "held": 0}
                    for n in names
                ]
            )
            .on_conflict_do_nothing()
        )
        query = (
            sa.select(_W)
            .where(_W.c.counter.in_(names), _W.c.window == window)
            .order_by(_W.c.counter)
            .with_for_update()
        )
        return {
            row.counter: WindowState(count=row.count, tokens=row.tokens, held=row.held)
            for row in conn.execute(query)
        }

    def _write_budgets(
        self,
        conn: Connection,
        states: dict[str, BudgetState],
        before: dict[str, dict[str, Hold]],
    ) -> None:
        for name, state in states.items():
            conn.execute(
                _C.update()
                .where(_C.c.counter == name)
                .values(
                    spent_cost=state.spent_cost,
                    spent_tokens=state.spent_tokens,
                    held_cost=state.held_cost,
                    held_tokens=state.held_tokens,
                )
            )
            gone = [lease for lease in before[name] if lease not in state.holds]
            if gone:
                conn.execute(_H.delete().where(_H.c.counter == name, _H.c.lease.in_(gone)))
            new = [
                {
                    "counter": name,
                    "lease": lease,
                    "cost": h.cost,
                    "tokens": h.tokens,
                    "expires_ms": h.expires_ms,
                }
                for lease, h in state.holds.items()
                if lease not in before[name]
            ]
            if new:
                conn.execute(_H.insert(), new)

    def _write_windows(
        self, conn: Connection, windows: dict[str, WindowState], window: int
    ) -> None:
        for name, state in windows.items():
            conn.execute(
                _W.update()
                .where(_W.c.counter == name, _W.c.window == window)
                .values(count=state.count, tokens=state.tokens, held=state.held)
            )
        # Windows older than two minutes are of no use to anyone.
        conn.execute(_W.delete().where(_W.c.window < window - 2))

    async def settle_many(self, settlements: Sequence[Settlement]) -> None:
        await self._in_thread(self._settle, settlements)

    def _settle(self, settlements: Sequence[Settlement]) -> None:
        """Settle a batch in one transaction, locking as a reserve does (budgets, then
        windows, each in sorted order), so it never waits on one in a cycle."""
        with self._engine.begin() as conn:
            names = sorted(
                {line.counter for lease, _, _ in settlements for line in lease.plan.budgets}
            )
            states = self._select_budgets(conn, names) if names else {}
            if names:
                holds = conn.execute(
                    sa.select(_H).where(
                        _H.c.counter.in_(names),
                        _H.c.lease.in_([lease.id for lease, _, _ in settlements]),
                    )
                )
                for row in holds:
                    states[row.counter].holds[row.lease] = Hold(
                        row.cost, row.tokens, row.expires_ms
                    )
            before = {name: dict(state.holds) for name, state in states.items()}
            windows: dict[tuple[str, int], WindowState] = {}
            pairs = sorted(
                {
                    (line.counter, window)
                    for lease, _, _ in settlements
                    for line, window in zip(lease.plan.rates, lease.windows, strict=True)
                }
            )
            for name, window in pairs:
                row = conn.execute(
                    sa.select(_W)
                    .where(_W.c.counter == name, _W.c.window == window)
                    .with_for_update()
                ).first()
                if row is not None:
                    windows[(name, window)] = WindowState(row.count, row.tokens, row.held)
            for lease, cost, tokens in settlements:
                settle_into(
                    [states.get(line.counter) for line in lease.plan.budgets],
                    [
                        windows.get((line.counter, window))
                        for line, window in zip(lease.plan.rates, lease.windows, strict=True)
                    ],
                    lease,
                    cost,
                    tokens,
                )
            self._write_budgets(conn, states, before)
            for (name, window), state in windows.items():
                conn.execute(
                    _W.update()
                    .where(_W.c.counter == name, _W.c.window == window)
                    .values(count=state.count, tokens=state.tokens, held=state.held)
                )

    async def renew_many(self, leases: Sequence[Lease]) -> None:
        await self._in_thread(self._renew, leases)

    def _renew(self, leases: Sequence[Lease]) -> None:
        names = sorted({line.counter for lease in leases for line in lease.plan.budgets})
        if not names:
            return
        with self._engine.begin() as conn:
            now = self._now_ms(conn)
            conn.execute(
                _H.update()
                .where(_H.c.counter.in_(names), _H.c.lease.in_([lease.id for lease in leases]))
                .values(expires_ms=now + self._ttl_ms)
            )

    async def rebuild(self) -> None:
        """Drop every budget counter; each restarts from the ledger on its next use."""
        await self._in_thread(self._rebuild)

    def _rebuild(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(_H.delete())
            conn.execute(_C.delete())

    async def aclose(self) -> None:
        return None
