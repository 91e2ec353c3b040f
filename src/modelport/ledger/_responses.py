"""Answers of the Responses API kept for ``previous_response_id``, in the ledger's database.

One table beside the calls, ``modelport_responses``: a response's id, when it
was made, and the conversation up to and including it (canonical messages as
JSON, written by the gateway). It is bounded twice: a row older than
:data:`KEEP_FOR` is never read again and is deleted, and past
:data:`MAX_ROWS` rows the oldest go. Both bounds are checked every
:data:`_PRUNE_EVERY` writes. Importing this module imports SQLAlchemy.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelport.ledger._store import _UTCDateTime

__all__ = ["KEEP_FOR", "MAX_ROWS", "SQLResponseStore"]

#: How long a kept response can be continued.
KEEP_FOR = timedelta(hours=24)
#: How many responses are kept at most (the newest).
MAX_ROWS = 1000
_PRUNE_EVERY = 64

_metadata = sa.MetaData()
responses = sa.Table(
    "modelport_responses",
    _metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("created_at", _UTCDateTime(), nullable=False, index=True),
    sa.Column("body", sa.LargeBinary(), nullable=False),
)


class SQLResponseStore:
    """Reads and writes kept responses on ``engine`` (blocking: call it off the event loop)."""

    def __init__(self, engine: Engine, *, keep_for: timedelta = KEEP_FOR, max_rows: int = MAX_ROWS):
        self._engine = engine
        self._keep_for = keep_for
        self._max_rows = max_rows
        self._writes = 0
        self._lock = threading.Lock()
        try:
            _metadata.create_all(engine, checkfirst=True)
        except sa.exc.DBAPIError:
            # Several replicas may race to create the table; losing the race is fine.
            if not sa.inspect(engine).has_table(responses.name):
                raise

    def put(self, id: str, body: bytes) -> None:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(sa.delete(responses).where(responses.c.id == id))
            conn.execute(sa.insert(responses).values(id=id, created_at=now, body=body))
        with self._lock:
            self._writes += 1
            due = self._writes % _PRUNE_EVERY == 1
        if due:
            self.prune(now)

    def get(self, id: str) -> bytes | None:
        since = datetime.now(UTC) - self._keep_for
        query = sa.select(responses.c.body).where(
            responses.c.id == id, responses.c.created_at >= since
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else bytes(row[0])

    def prune(self, now: datetime | None = None) -> None:
        """Delete what is past its time, then all but the newest :data:`MAX_ROWS`."""
        now = now or datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(sa.delete(responses).where(responses.c.created_at < now - self._keep_for))
            cutoff = conn.execute(
                sa.select(responses.c.created_at)
                .order_by(responses.c.created_at.desc())
                .offset(self._max_rows)
                .limit(1)
            ).scalar()
            if cutoff is not None:
                conn.execute(sa.delete(responses).where(responses.c.created_at <= cutoff))
