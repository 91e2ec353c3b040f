"""The calls a router has in flight, so a router being replaced closes only once they end.

A gateway that reloads its configuration swaps in a new router; the calls that
started on the old one finish on it, and the old one closes when the last of
them is done (:meth:`Router.aclose_when_idle <modelport.routing.Router>`).

A stream counts from the moment :meth:`Router.stream` returns it, not from its
first event, so a stream handed out and not yet read still holds its router
open. It stops counting when it ends or is closed, or, never started, when it
is collected. Nothing of this runs per event: a wrapper around the events
would cost ~0.4 µs each (measured; a hold costs less than that per stream).
"""

from __future__ import annotations

import asyncio

__all__ = ["CallCount", "CallHold"]


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


class CallHold:
    """One call's place in a :class:`CallCount`, given up once: by :meth:`release`, or
    when the hold is collected.

    A stream holds one in the frame of the generator that yields its routes,
    so giving it up costs nothing per event: the generator's ``finally``
    releases it when the stream ends or is closed, and a stream closed (or
    dropped) before it ever started frees that frame, and the hold with it.
    """

    __slots__ = ("_count", "_open")

    def __init__(self, count: CallCount) -> None:
        self._count = count
        self._open = True
        count.enter()

    def release(self) -> None:
        if self._open:
            self._open = False
            self._count.leave()

    def __del__(self) -> None:
        self.release()
