"""What a budget counter starts from: the spend the ledger already holds for its period.

Used when a counter does not exist yet: a new budget, a new period, a
restarted single instance, or a Redis that lost its data. The ledger rows of
the budget's keys (``key_id``), in the period, on its model if it names one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from modelport.governance._counters import BudgetLine, InitFrom
from modelport.governance._pricing import nanos

__all__ = ["budgets_with_spend", "keys_with_spend", "ledger_spend", "ledger_spend_on"]


def ledger_spend_on(conn: Connection, line: BudgetLine) -> tuple[int, int]:
    """(nano-dollars, tokens) the ledger holds for ``line``'s keys, period and model."""
    from modelport.ledger import spend_of_keys

    cost, tokens = spend_of_keys(
        conn, line.key_ids, since=line.since, until=line.until, address=line.address
    )
    return nanos(cost) if cost > 0 else 0, tokens


def ledger_spend(engine: Engine) -> InitFrom:
    """:func:`ledger_spend_on` on a connection of its own (the in-memory and Redis counters)."""

    def spend(line: BudgetLine) -> tuple[int, int]:
        with engine.connect() as conn:
            return ledger_spend_on(conn, line)

    return spend


def budgets_with_spend(
    engine: Engine, snapshot: Any, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Each budget's public form plus ``spent``: what the ledger holds for its current period.

    Settled spend only (calls still running hold more until they finish), so an
    admin sees how much room is left; ``since``/``until`` bound the period
    (``null`` for ``total``).
    """
    from modelport.governance._enforcer import _keys_of
    from modelport.governance._periods import period_bounds
    from modelport.ledger import spend_of_keys

    moment = now or datetime.now(UTC)
    answers = []
    with engine.connect() as conn:
        for budget in snapshot.budgets:
            since, until = period_bounds(budget.period, moment)
            cost, tokens = spend_of_keys(
                conn,
                _keys_of(snapshot.keys, budget),
                since=since,
                until=until,
                address=budget.model,
            )
            spent = {
                "cost": cost,
                "tokens": tokens,
                "since": None if since is None else since.isoformat(),
                "until": None if until is None else until.isoformat(),
            }
            answers.append({**budget.public(), "spent": spent})
    return answers


def keys_with_spend(
    engine: Engine, snapshot: Any, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Each key's public form plus ``spent``: what the ledger holds for it this month (UTC).

    Every key has one, budget or not, so an admin sees who spends what before
    setting any limit; ``since``/``until`` bound the month.
    """
    from modelport.governance._periods import period_bounds
    from modelport.ledger import spend_by_key

    since, until = period_bounds("month", now or datetime.now(UTC))
    with engine.connect() as conn:
        spent = spend_by_key(conn, since=since, until=until)
    bounds = {
        "since": None if since is None else since.isoformat(),
        "until": None if until is None else until.isoformat(),
    }
    answers = []
    for key in snapshot.keys:
        cost, tokens = spent.get(key.id, (0.0, 0))
        answers.append({**key.public(), "spent": {"cost": cost, "tokens": tokens, **bounds}})
    return answers
