"""What a budget counter starts from: the spend the ledger already holds for its period.

Used when a counter does not exist yet: a new budget, a new period, a
restarted single instance, or a Redis that lost its data. The ledger rows of
the budget's keys (``key_id``), in the period, on its model if it names one.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection, Engine

from modelport.governance._counters import BudgetLine, InitFrom
from modelport.governance._pricing import nanos

__all__ = ["ledger_spend", "ledger_spend_on"]


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
