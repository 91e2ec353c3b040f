"""The conversations behind ``previous_response_id``: kept in memory, and in the ledger's database.

A Responses API answer made with ``store`` on (the API's default) is kept as
the whole conversation up to and including it, in canonical messages, so the
next request can name it instead of resending it. Memory holds the newest
ones (bounded by :data:`MAX_MEMORY_BYTES` and :data:`KEEP_FOR`); a ledger's
database (:mod:`modelport.ledger._responses`, bounded by ``MAX_ROWS`` and the
same time) keeps them across restarts and replicas. Writing to the database
happens off the event loop and never fails a request; the memory copy is
written at once, so a client that continues a stream the moment it ended
finds its answer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec

from modelport.types import Message

__all__ = ["KEEP_FOR_SECONDS", "MAX_MEMORY_BYTES", "MAX_RESPONSE_BYTES", "ResponseStore"]

logger = logging.getLogger("modelport.server")

#: How long a kept response can be continued (as the database's bound).
KEEP_FOR_SECONDS = 24 * 3600.0
#: The most memory the kept conversations take; past it the oldest are forgotten.
MAX_MEMORY_BYTES = 256 * 1024 * 1024
#: A conversation larger than this is not kept (its continuation must resend it).
MAX_RESPONSE_BYTES = 8 * 1024 * 1024

_MESSAGES = msgspec.json.Decoder(list[Message])


class ResponseStore:
    """Kept conversations by response id.

    ``database`` makes the persistent half (a ledger's
    :meth:`~modelport.ledger.Ledger.response_store`): called once, in a worker
    thread, when the first response is kept or looked up, so a gateway that
    never sees the Responses API never creates its table.
    """

    def __init__(
        self,
        database: Callable[[], Any] | None = None,
        *,
        max_memory_bytes: int = MAX_MEMORY_BYTES,
        keep_for: float = KEEP_FOR_SECONDS,
    ) -> None:
        self._database_factory = database
        self._database: Any = None
        self._persistent = database is not None
        self._opening = threading.Lock()
        self._memory: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_memory_bytes
        self._keep_for = keep_for
        self._writes: set[asyncio.Task[None]] = set()

    def save(self, id: str, messages: list[Message]) -> None:
        """Keep ``messages`` as the conversation ``id`` ends (at once in memory)."""
        body = msgspec.json.encode(messages)
        if len(body) > MAX_RESPONSE_BYTES:
            logger.info(
                "response %s not kept for previous_response_id: %d bytes is over the %d limit",
                id,
                len(body),
                MAX_RESPONSE_BYTES,
            )
            return
        self._remember(id, body)
        if self._persistent:
            task = asyncio.get_running_loop().create_task(self._write(id, body))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def load(self, id: str) -> list[Message] | None:
        """The conversation that ``id`` ended, or ``None`` when it is unknown or too old."""
        body = self._recall(id)
        if body is None and self._persistent:
            try:
                body = await asyncio.to_thread(self._read, id)
            except Exception:
                logger.warning("could not read a kept response from the database", exc_info=True)
        if body is None:
            return None
        return _MESSAGES.decode(body)

    async def aclose(self) -> None:
        """Wait for the database writes still running."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _open(self) -> Any:
        """The database half, made on first use (``None``: the ledger has no database)."""
        with self._opening:
            if self._database_factory is not None:
                self._database = self._database_factory()
                self._database_factory = None
            return self._database

    def _read(self, id: str) -> bytes | None:
        database = self._open()
        return None if database is None else database.get(id)

    def _put(self, id: str, body: bytes) -> None:
        database = self._open()
        if database is not None:
            database.put(id, body)

    def _remember(self, id: str, body: bytes) -> None:
        old = self._memory.pop(id, None)
        if old is not None:
            self._bytes -= len(old[1])
        self._memory[id] = (time.monotonic(), body)
        self._bytes += len(body)
        while self._bytes > self._max_bytes and self._memory:
            _, (_, dropped) = self._memory.popitem(last=False)
            self._bytes -= len(dropped)

    def _recall(self, id: str) -> bytes | None:
        entry = self._memory.get(id)
        if entry is None:
            return None
        saved_at, body = entry
        if time.monotonic() - saved_at > self._keep_for:
            return None
        return body

    async def _write(self, id: str, body: bytes) -> None:
        try:
            await asyncio.to_thread(self._put, id, body)
        except Exception:
            logger.warning("could not keep a response in the database", exc_info=True)
