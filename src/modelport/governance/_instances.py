"""Instances announce themselves in the database, so several never enforce silently wrong.

Each gateway writes a row (host, pid, the Redis it uses) when it starts and
refreshes it every :data:`HEARTBEAT_S`; a row not refreshed for
:data:`LIVE_S` belongs to an instance that is gone. Budgets and rate limits
are only exact across instances that share one Redis: counters kept in each
process, or in a Redis of its own, would let N instances allow N times every
limit. So while this gateway has virtual keys, an instance refuses to start
next to live others unless all use the same Redis; one already running that
sees such an instance appear refuses governed calls (503) until it is gone.
The workers of one ``modelport serve --workers N`` share a group, named at
the start of their ids, and are not others to each other: their counters are
shared (Redis, PostgreSQL, or the SQLite file, see ``_sqlite``).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelport.governance import _schema as t

__all__ = ["HEARTBEAT_S", "LIVE_S", "Instance", "InstanceRegistry", "conflict"]

HEARTBEAT_S = 2.0
LIVE_S = 10.0


@dataclass(frozen=True, slots=True)
class Instance:
    id: str
    host: str
    pid: int
    redis: str
    seen_at: float


class InstanceRegistry:
    """This instance's row in ``modelport_instances``, and a view of the others."""

    def __init__(self, engine: Engine, redis: str, *, group: str = "") -> None:
        self._engine = engine
        self.redis = redis
        self.host = socket.gethostname()
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        #: The id's start every worker of this serve shares ("" for a lone instance).
        self.group = f"{group}." if group else ""
        if group:
            # The host last: a long name may be cut to the column, never the group or pid.
            self.id = f"{self.group}{os.getpid()}-{secrets.token_hex(3)}-{self.host}"[:64]

    def announce(self) -> None:
        now = time.time()
        with self._engine.begin() as conn:
            updated = conn.execute(
                t.instances.update().where(t.instances.c.id == self.id).values(seen_at=now)
            ).rowcount
            if not updated:
                conn.execute(
                    t.instances.insert().values(
                        id=self.id,
                        host=self.host[:255],
                        pid=os.getpid(),
                        started_at=now,
                        seen_at=now,
                        redis=self.redis,
                    )
                )
            # Rows of instances long gone would only grow the table.
            conn.execute(t.instances.delete().where(t.instances.c.seen_at < now - 3600))

    def others(self) -> list[Instance]:
        """The other instances seen within :data:`LIVE_S`, not counting this one's workers."""
        since = time.time() - LIVE_S
        query = sa.select(t.instances).where(
            t.instances.c.seen_at >= since, t.instances.c.id != self.id
        )
        with self._engine.connect() as conn:
            return [
                Instance(row.id, row.host, row.pid, row.redis, row.seen_at)
                for row in conn.execute(query)
                if not (self.group and row.id.startswith(self.group))
            ]

    def leave(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(t.instances.delete().where(t.instances.c.id == self.id))


def conflict(mine: str, others: list[Instance]) -> str | None:
    """Why this instance cannot enforce limits beside ``others``, or None."""
    for other in others:
        ago = max(0.0, time.time() - other.seen_at)
        who = f"another modelport gateway ({other.host}, pid {other.pid}, seen {ago:.0f} s ago)"
        if not mine or not other.redis:
            return (
                f"{who.capitalize()} uses the same database, and budgets and rate limits are "
                "only exact when every instance shares one Redis. Set redis_url in config.toml "
                "on every instance (pip install 'modelport[redis]'), or stop the other one."
            )
        if other.redis != mine:
            return (
                f"{who.capitalize()} uses the same database but another Redis ({other.redis}, "
                f"here {mine}): their counters would not add up. Point every instance's "
                "redis_url at the same Redis."
            )
    return None
