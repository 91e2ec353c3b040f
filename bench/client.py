"""A lean asyncio client for what wrk cannot measure: time to first byte, open streams.

Raw protocol on uvloop with httptools' response parser (the one uvicorn uses),
keep-alive, one request in flight per connection. It costs more CPU per request
than wrk, so it runs in its own short rounds and never sets the throughput
figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httptools

__all__ = ["TtfbResult", "hold_streams", "measure_ttfb", "post_request"]


def post_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """The raw bytes of one keep-alive ``POST`` with a JSON body."""
    return (
        b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer bench\r\nContent-Length: %d\r\n\r\n%s"
        % (path.encode(), host.encode(), port, len(body), body)
    )


class _Connection(asyncio.Protocol):
    """One keep-alive connection; :meth:`send` resolves to (ttfb, total) seconds."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._sent = 0.0
        self._first = 0.0
        self._done: asyncio.Future[tuple[float, float]] | None = None
        self._first_byte: asyncio.Future[None] | None = None
        self.status = 0
        self.closed = asyncio.get_running_loop().create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._done is not None and not self._done.done():
            self._done.set_exception(ConnectionError("the server closed the connection"))
        # Nobody may ever await this one: cancelled, it logs nothing when collected.
        if self._first_byte is not None and not self._first_byte.done():
            self._first_byte.cancel()
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self._first:
            self._first = time.perf_counter()
            if self._first_byte is not None and not self._first_byte.done():
                self._first_byte.set_result(None)
        self._parser.feed_data(data)

    # httptools callbacks
    def on_message_complete(self) -> None:
        self.status = self._parser.get_status_code()
        done = time.perf_counter()
        if self._done is not None and not self._done.done():
            self._done.set_result((self._first - self._sent, done - self._sent))

    def send(self, request: bytes) -> asyncio.Future[tuple[float, float]]:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._first_byte = loop.create_future()
        self._first = 0.0
        assert self._transport is not None
        self._sent = time.perf_counter()
        self._transport.write(request)
        return self._done

    def first_byte(self) -> asyncio.Future[None]:
        assert self._first_byte is not None
        return self._first_byte

    def close(self) -> None:
        """Drop the connection and settle any pending futures (asyncio would log them)."""
        if self._transport is not None:
            self._transport.close()
        for waiter in (self._done, self._first_byte):
            if waiter is None:
                continue
            if not waiter.done():
                waiter.cancel()
            elif not waiter.cancelled():
                waiter.exception()


async def _connect(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, host, port)
    return protocol


@dataclass(frozen=True, slots=True)
class TtfbResult:
    """Per-request times from one round, in seconds, sorted."""

    ttfb: list[float]
    total: list[float]
    errors: int

    def ttfb_p50_ms(self) -> float:
        return _percentile(self.ttfb, 50) * 1e3

    def total_p50_ms(self) -> float:
        return _percentile(self.total, 50) * 1e3


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * p / 100))]


async def measure_ttfb(
    host: str, port: int, request: bytes, *, connections: int, seconds: float
) -> TtfbResult:
    """Closed loop on ``connections`` connections for ``seconds``: TTFB and total per request."""
    conns = [await _connect(host, port) for _ in range(connections)]
    ttfb: list[float] = []
    total: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: _Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            try:
                first, whole = await asyncio.wait_for(conn.send(request), 10)
            except (ConnectionError, TimeoutError):
                errors += 1
                return
            if conn.status != 200:
                errors += 1
                continue
            ttfb.append(first)
            total.append(whole)

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for conn in conns:
            conn.close()
    return TtfbResult(ttfb=sorted(ttfb), total=sorted(total), errors=errors)


async def hold_streams(
    host: str,
    port: int,
    request: bytes,
    *,
    count: int,
    wait: float,
    on_open: Callable[[], object] | None = None,
) -> tuple[int, int]:
    """Open ``count`` streams that the upstream holds; return (connected, got first byte).

    Waits up to ``wait`` seconds for every stream's first byte, then calls
    ``on_open()`` (the caller samples memory there) and drops every connection,
    which is also a test of cancellation: the gateway must let go of its
    upstream streams.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    # Open in batches: a thousand SYNs at once overflow a small listen backlog.
    conns: list[_Connection] = []
    for start in range(0, count, 100):
        batch = await asyncio.gather(
            *(_connect(host, port) for _ in range(min(100, count - start))),
            return_exceptions=True,
        )
        conns.extend(c for c in batch if isinstance(c, _Connection))
    for conn in conns:
        conn.send(request)
    waiters = [conn.first_byte() for conn in conns]
    remaining = max(0.1, deadline - loop.time())
    await asyncio.wait(waiters, timeout=remaining)
    first = sum(1 for w in waiters if w.done() and not w.cancelled() and w.exception() is None)
    if on_open is not None:
        on_open()
    for conn in conns:
        conn.close()
    await asyncio.wait([c.closed for c in conns], timeout=5)
    return len(conns), first
