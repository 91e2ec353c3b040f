"""A lean Redis connection for the hot path: pipelined commands over one socket.

A call a request (the team gateway's reservation; its settlement goes with
others') must cost little. redis-py's asyncio
client spends 180-260 µs of CPU a command here (its pool, locks and per-call
machinery; measured with EVALSHA at 1 and 32 concurrent callers, hiredis
installed); this connection spends 20-50 µs. It gathers the commands of one
event-loop turn into one write, with no lock and no round trip to wait for,
and matches replies to callers in order, which is how Redis answers. The protocol itself is
``hiredis`` (Redis's own C parser and command packer), so nothing of RESP is
written here by hand.

It is shared by everything that keeps state in Redis (the team gateway's
counters, the balancer's in-flight counts and cooldowns, the response cache),
which is why it sits beside the core and imports only ``errors``. A
connection lost fails every call in flight with :class:`Unavailable`; the
next call connects again (at most one attempt a second). A call that gets no answer
within ``timeout`` closes the connection, with the same effect.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from modelport.errors import ConfigError

__all__ = [
    "BackgroundCommands",
    "RedisAddress",
    "RedisConnection",
    "ReplyError",
    "Script",
    "Unavailable",
    "parse_redis_url",
]


class Unavailable(Exception):
    """Redis could not be reached, or stopped answering."""


class ReplyError(Exception):
    """Redis answered with an error (a script's ``error_reply``, NOSCRIPT, ...)."""


def _hiredis() -> Any:
    try:
        import hiredis
    except ImportError as exc:
        raise ConfigError(
            "redis_url needs the Redis extra: pip install 'modelport[redis]'."
        ) from exc
    return hiredis


@dataclass(frozen=True, slots=True)
class RedisAddress:
    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    tls: bool
    #: A Unix socket's path (``unix://``); ``host`` and ``port`` are then unused.
    path: str | None = None

    @property
    def fingerprint(self) -> str:
        """Which Redis, without credentials: instances on one database must share it."""
        if self.path is not None:
            return f"unix://{self.path}?db={self.db}"
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/{self.db}"


_URL_SHAPE = (
    "redis_url must look like redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://… for TLS, "
    "or unix://[:PASSWORD@]/PATH/TO/redis.sock[?db=DB] for a Unix socket."
)


def parse_redis_url(url: str) -> RedisAddress:
    """``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS, or
    ``unix://[[user]:password@]/path/to/socket[?db=N]`` (redis-py's form)."""
    parts = urlsplit(url)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if parts.scheme == "unix":
        db_values = parse_qs(parts.query).get("db", ["0"])
        if not parts.path or parts.hostname:
            raise ConfigError(_URL_SHAPE)
        try:
            db = int(db_values[-1])
        except ValueError:
            raise ConfigError("redis_url has a database number that is not a number.") from None
        return RedisAddress("", 0, db, username, password, tls=False, path=unquote(parts.path))
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(_URL_SHAPE)
    path = parts.path.strip("/")
    try:
        db = int(path) if path else 0
        port = parts.port or 6379
    except ValueError:
        raise ConfigError("redis_url has a port or database number that is not a number.") from None
    return RedisAddress(
        host=parts.hostname,
        port=port,
        db=db,
        username=username,
        password=password,
        tls=parts.scheme == "rediss",
    )


class _Protocol(asyncio.Protocol):
    def __init__(self, reader: Any, on_lost: Any) -> None:
        self.reader = reader
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self._on_lost = on_lost
        #: Commands packed since the last write: every caller of one loop turn shares it.
        self.outgoing: list[bytes] = []

    def flush(self) -> None:
        outgoing = self.outgoing
        self.outgoing = []
        if self.transport is not None and outgoing:
            self.transport.write(b"".join(outgoing) if len(outgoing) > 1 else outgoing[0])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        while True:
            reply = reader.gets()
            if reply is False:
                return
            future = waiting.popleft()[0]
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        error = Unavailable("the connection to Redis was lost")
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_exception(error)
        self._on_lost(self)


class RedisConnection:
    """One pipelined connection to ``address``, opened on first use."""

    def __init__(self, address: RedisAddress, *, timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout
        self._hiredis = _hiredis()
        self._pack = self._hiredis.pack_command
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._failed_at = 0.0
        self._watchdog: asyncio.TimerHandle | None = None

    async def call(self, *args: Any) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            protocol = await self._connect()
        return await self._send(protocol, args)

    def _send(self, protocol: _Protocol, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        protocol.waiting.append((future, loop.time()))
        # One write a loop turn, not one a command: a system call costs more than a command.
        if not protocol.outgoing:
            loop.call_soon(protocol.flush)
        protocol.outgoing.append(self._pack(args))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout, self._watch, protocol)
        return _checked(future)

    def _watch(self, protocol: _Protocol) -> None:
        """Close a connection whose oldest call has waited past the timeout."""
        self._watchdog = None
        if not protocol.waiting or protocol.transport is None:
            return
        loop = asyncio.get_running_loop()
        waited = loop.time() - protocol.waiting[0][1]
        if waited >= self.timeout:
            protocol.transport.abort()
            return
        self._watchdog = loop.call_later(self.timeout - waited, self._watch, protocol)

    async def _connect(self) -> _Protocol:
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        if time.monotonic() - self._failed_at < 1.0:
            raise Unavailable(f"Redis at {self.address.fingerprint} did not answer a moment ago")
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            protocol = await asyncio.wait_for(self._open(), self.timeout)
        except (OSError, TimeoutError, ReplyError, Unavailable) as exc:
            self._failed_at = time.monotonic()
            error = Unavailable(f"cannot connect to Redis at {self.address.fingerprint}: {exc}")
            self._connecting.set_exception(error)
            self._connecting.exception()  # retrieved: nobody else may be waiting
            self._connecting = None
            raise error from None
        self._protocol = protocol
        self._connecting.set_result(protocol)
        self._connecting = None
        return protocol

    async def _open(self) -> _Protocol:
        address = self.address
        loop = asyncio.get_running_loop()
        reader = self._hiredis.Reader()
        context = ssl.create_default_context() if address.tls else None
        if address.path is not None:
            _transport, protocol = await loop.create_unix_connection(
                lambda: _Protocol(reader, self._lost), address.path
            )
        else:
            _transport, protocol = await loop.create_connection(
                lambda: _Protocol(reader, self._lost),
                address.host,
                address.port,
                ssl=context,
            )
        if address.password:
            auth = (address.username, address.password) if address.username else (address.password,)
            await self._send(protocol, ("AUTH", *auth))
        if address.db:
            await self._send(protocol, ("SELECT", address.db))
        return protocol

    def _lost(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    async def aclose(self) -> None:
        protocol = self._protocol
        self._protocol = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


async def _checked(future: asyncio.Future[Any]) -> Any:
    reply = await future
    if isinstance(reply, Exception):
        raise ReplyError(str(reply))
    return reply


class Script:
    """A Lua script run by its SHA-1 (``EVALSHA``), sent whole once if Redis lacks it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(
        self, redis: RedisConnection, keys: Sequence[str | bytes], args: Sequence[Any]
    ) -> Any:
        try:
            return await redis.call("EVALSHA", self.sha, len(keys), *keys, *args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await redis.call("EVAL", self.source, len(keys), *keys, *args)


class BackgroundCommands:
    """Commands sent without awaiting their replies (a call's last event must not wait
    for Redis): each runs as a task, kept until it ends, and one that fails is handed
    to ``on_error``, which says Redis is unreachable as its owner sees fit."""

    __slots__ = ("_on_error", "_tasks")

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._on_error = on_error
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self._on_error(exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait for the commands still on their way (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
