"""uvicorn's server, with the gateway's graceful shutdown (:mod:`modelport.server._drain`).

On SIGTERM or SIGINT uvicorn already stops accepting, closes idle keep-alive
connections and asks busy ones to close after their response. What it does
not do is end a long stream cleanly: past ``timeout_graceful_shutdown`` it
cancels the request's task and closes the socket mid-body. So the drain runs
first: :meth:`GatewayServer.shutdown` starts :meth:`Drain.run` with the drain
timeout, which ends what is still running with each API's error event, and
uvicorn's own timeout, set :data:`BACKSTOP` seconds later, only catches a
call that cannot even write its error (a client that stopped reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn

from modelport.server._drain import Drain

__all__ = ["BACKSTOP", "GatewayServer", "uvicorn_timeout"]

#: Seconds after the drain timeout before uvicorn cancels what is left.
BACKSTOP = 5.0


class GatewayServer(uvicorn.Server):
    """A :class:`uvicorn.Server` whose shutdown drains ``drain`` for ``drain_timeout`` seconds.

    The uvicorn config's ``timeout_graceful_shutdown`` should be
    ``drain_timeout + BACKSTOP`` (:func:`uvicorn_timeout`).
    """

    def __init__(self, config: uvicorn.Config, *, drain: Drain, drain_timeout: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_timeout = drain_timeout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        draining = asyncio.get_running_loop().create_task(self.drain.run(self.drain_timeout))
        try:
            await super().shutdown(sockets)
        finally:
            draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await draining


def uvicorn_timeout(drain_timeout: float) -> float:
    """uvicorn's ``timeout_graceful_shutdown`` for a drain of ``drain_timeout`` seconds."""
    return drain_timeout + BACKSTOP
