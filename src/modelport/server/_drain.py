"""Graceful shutdown: in-flight chat calls finish, up to a deadline; the rest end with an error.

When ``modelport serve`` gets SIGTERM, uvicorn stops accepting connections
and closes the idle ones (:class:`~modelport.server._serving.GatewayServer`),
and :meth:`Drain.run` starts the clock. Calls still running when the drain
timeout passes are ended, each in its client's own terms: a stream that has
begun gets its API's in-band error frame (never a silent truncation, which an
SDK could take for a finished answer), one that has not, and a non-streamed
call, get a whole 503 error response. The message rides on the task's
cancellation, so the usage ledger records why the call ended.

Each chat call registers itself for its duration (:meth:`Drain.enter`,
:meth:`Drain.leave`): a set insert and removal, nothing else on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from modelport.errors import UpstreamError

__all__ = ["Drain", "InFlight", "shutdown_error"]

logger = logging.getLogger("modelport.server")


def shutdown_error(timeout: float) -> UpstreamError:
    """What a client whose call outlived the drain timeout is told (status 503: retry elsewhere)."""
    return UpstreamError(
        f"The gateway is shutting down and ended this call after its {timeout:g} s drain "
        "timeout; retry the request",
        status=503,
        retry_after=1.0,
    )


class InFlight:
    """One chat call in progress: its task, and the error it was ended with (if it was)."""

    __slots__ = ("ended", "finishing", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        #: Set by :meth:`Drain.end_all` just before the task is cancelled.
        self.ended: UpstreamError | None = None
        #: Set by the call once its answer is complete and it is only tidying up
        #: (closing the upstream, recording usage): it is then waited for, never ended.
        self.finishing = False


class Drain:
    """The gateway's in-flight chat calls, and the shutdown that waits for them."""

    def __init__(self) -> None:
        self._calls: set[InFlight] = set()
        #: True once a shutdown began: the gateway takes no new work.
        self.draining = False

    def __len__(self) -> int:
        return len(self._calls)

    def enter(self, task: asyncio.Task[Any] | None = None) -> InFlight:
        """Register the current task's call (``task``, when the caller has it at hand);
        pass the result to :meth:`leave`."""
        task = task or asyncio.current_task()
        assert task is not None
        call = InFlight(task)
        self._calls.add(call)
        return call

    def leave(self, call: InFlight) -> None:
        self._calls.discard(call)

    def end_all(self, error: UpstreamError) -> int:
        """End every call still running with ``error``; how many there were."""
        calls = list(self._calls)
        for call in calls:
            if call.ended is None and not call.finishing and not call.task.done():
                call.ended = error
                # The message reaches every generator on the way up (the ledger records it).
                call.task.cancel(msg=error.message)
        return len(calls)

    async def run(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the calls in flight, then end the rest."""
        self.draining = True
        started = time.monotonic()
        if self._calls:
            logger.info("draining %d call(s) in flight for up to %g s", len(self._calls), timeout)
        finished = await self.wait_idle(timeout)
        if finished:
            return
        ended = self.end_all(shutdown_error(timeout))
        logger.warning(
            "drain timeout (%g s) passed after %.1f s: ended %d call(s) with an error",
            timeout,
            time.monotonic() - started,
            ended,
        )

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is in flight; False if ``timeout`` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._calls:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.05, remaining))
        return True
