"""The calls a router has in flight, so a router being replaced closes only once they end.

A gateway that reloads its configuration swaps in a new router; the calls that
started on the old one finish on it, and the old one closes when the last of
them is done (:meth:`Router.aclose_when_idle <modelport.routing.Router>`).

A stream counts from the moment :meth:`Router.stream` returns it, not from its
first event, so a stream handed out and not yet read still holds its router
open. It stops counting when it is closed (``aclose``, as every consumer of
ours does), or at the latest when it is collected.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from modelport.events import StreamEvent

__all__ = ["CallCount", "CountedStream"]


class CallCount:
    """How many calls are in flight; :meth:`wait_idle` returns when none is."""

    __slots__ = ("_idle", "active")

    def __init__(self) -> None:
        self.active = 0
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        if self.active <= 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self) -> None:
        while self.active > 0:
            # Made here, on the loop that waits (a router belongs to one loop).
            self._idle = asyncio.Event()
            await self._idle.wait()


class CountedStream:
    """``events``, counted in ``count`` until closed.

    Each ``__anext__`` hands the inner iterator's awaitable straight through (no
    frame of its own per event, and nothing awaited between events, so the
    ``more_ready`` hint stays true).
    """

    __slots__ = ("_count", "_events", "_open")

    def __init__(self, events: AsyncIterator[StreamEvent], count: CallCount) -> None:
        self._events = events
        self._count = count
        self._open = True
        count.enter()

    def __aiter__(self) -> CountedStream:
        return self

    def __anext__(self) -> Awaitable[StreamEvent]:
        return self._events.__anext__()

    async def aclose(self) -> None:
        try:
            close: Any = getattr(self._events, "aclose", None)
            if close is not None:
                await close()
        finally:
            self._release()

    def _release(self) -> None:
        if self._open:
            self._open = False
            self._count.leave()

    def __del__(self) -> None:
        # A stream dropped without aclose (read to its end by a bare `async for`).
        self._release()
