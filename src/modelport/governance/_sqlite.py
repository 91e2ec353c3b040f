"""Counters in SQLite, for the workers of one ``modelport serve --workers N`` without Redis.

The workers are processes: counters kept in each (``_memory``) would let N
workers allow N times every limit. So they share the PostgreSQL backend's
three tables and its transactions, in the ledger's SQLite file. SQLite has no
row locks: each transaction starts with ``BEGIN IMMEDIATE``, which takes the
database's write lock before the first read, so a reserve or settle reads and
writes with no other writer in between (the others wait, up to the busy
timeout). Time is this machine's clock, the same for every worker.

Counters left in the file by an earlier run may be behind the ledger (a run
with counters in memory records spend without them), so ``modelport serve``
drops them once before its workers start (:meth:`SqliteCounters.rebuild`);
each then restarts from the ledger on its next use.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.engine import Connection, Engine

from modelport.governance._postgres import PostgresCounters

__all__ = ["SqliteCounters", "locking_engine"]


def locking_engine(url: str) -> Engine:
    """An engine on the SQLite file at ``url`` whose every transaction is ``BEGIN IMMEDIATE``."""
    from modelport.ledger import make_engine

    engine, _ = make_engine(url)

    # SQLAlchemy's recipe: let the driver stop opening transactions itself, then open
    # each one ourselves, with the write lock taken up front.
    @sa.event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class SqliteCounters(PostgresCounters):
    """The PostgreSQL backend's tables and steps, one locked SQLite transaction a step."""

    _insert: Any = staticmethod(insert)

    def __init__(self, engine: Engine, *, ttl_ms: int) -> None:
        super().__init__(engine, ttl_ms=ttl_ms)

    def _now_ms(self, conn: Connection) -> int:
        return int(time.time() * 1000)

    async def aclose(self) -> None:
        self._engine.dispose()
