"""Test doubles for the ledger: an in-memory store and scripted streams."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from modelport.events import StreamEvent


class MemoryStore:
    """A store that keeps rows in a list; ``delay`` makes every insert slow."""

    def __init__(self, *, delay: float = 0.0, fail: bool = False) -> None:
        self.rows: list[dict[str, Any]] = []
        self.batches: list[int] = []
        self.delay = delay
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()
        #: Set once an insert has begun (and is maybe waiting at ``gate``).
        self.entered = threading.Event()
        self.closed = False

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        self.entered.set()
        self.gate.wait(10)
        if self.delay:
            threading.Event().wait(self.delay)
        if self.fail:
            raise RuntimeError("database is down")
        self.batches.append(len(rows))
        self.rows.extend(rows)

    def recent(self, limit: int) -> list[dict[str, Any]]:
        return sorted(self.rows, key=lambda row: row["started_at"], reverse=True)[:limit]

    def summary(self, since: datetime | None, by: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


Script = Sequence[StreamEvent | float | BaseException]


def scripted(script: Script, closed: list[bool] | None = None) -> AsyncIterator[StreamEvent]:
    """An async generator playing ``script``: events, pauses (seconds), then maybe an error.

    ``closed`` gets ``True`` appended when the generator's ``finally`` runs, the
    way a provider closes its HTTP response.
    """

    async def _play() -> AsyncIterator[StreamEvent]:
        try:
            for step in script:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, float | int):
                    await asyncio.sleep(step)
                else:
                    yield step
        finally:
            if closed is not None:
                closed.append(True)

    return _play()
