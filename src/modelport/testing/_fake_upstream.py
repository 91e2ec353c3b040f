"""The fake upstream: a real HTTP/1.1 server on ``127.0.0.1`` replaying scripted replies.

Import it from :mod:`modelport.testing`, which re-exports :class:`FakeUpstream`,
:class:`Reply`, :class:`RecordedRequest` and :func:`fixtures_dir`.
"""

from __future__ import annotations

import asyncio
import http
import json as _json
import os
import random
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import unquote

__all__ = ["FakeUpstream", "RecordedRequest", "Reply", "Responder", "fixtures_dir"]

_CONTENT_TYPES = {
    ".sse": "text/event-stream",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/jsonl",
    ".json": "application/json",
}
# A request head larger than this is a broken client, not a test we want to serve.
_MAX_HEAD = 1024 * 1024
# Loop turns an accepted connection takes to reach connection_made (asyncio's accept
# task makes the transport, which schedules connection_made), with one to spare.
_SETUP_TURNS = 3


def fixtures_dir() -> Path:
    """The recorded-traffic folder: ``$MODELPORT_FIXTURES``, else ``tests/fixtures``
    of the source checkout this module runs from."""
    configured = os.environ.get("MODELPORT_FIXTURES")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "tests" / "fixtures"


# --- replies -----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP response.

    ``chunks`` is ``None`` to send the body in one write (with Content-Length),
    a list of write sizes (whatever remains goes in a final write), or
    ``"random"`` for random sizes seeded by ``split_seed``; either way the body
    is sent with chunked transfer encoding. ``delay`` waits before the status
    line, ``chunk_delay`` between writes. ``drop_after`` closes the socket after
    that many body bytes without finishing the body; ``hang`` accepts the
    request and never answers.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] | None = None
    content_type: str | None = None
    chunks: list[int] | Literal["random"] | None = None
    split_seed: int | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    drop_after: int | None = None
    hang: bool = False

    @classmethod
    def fixture(cls, relative: str, **kwargs: Any) -> Reply:
        """A reply whose body is ``fixtures_dir() / relative``, typed by its extension."""
        path = fixtures_dir() / relative
        kwargs.setdefault(
            "content_type", _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        )
        return cls(body=path.read_bytes(), **kwargs)

    @classmethod
    def json(
        cls,
        obj: Any,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        """A JSON reply (``application/json``)."""
        body = _json.dumps(obj).encode()
        return cls(
            status=status, body=body, headers=headers, content_type="application/json", **kwargs
        )

    def pieces(self) -> list[bytes]:
        """The body cut into the writes this reply makes."""
        body = self.body
        if self.chunks is None:
            return [body] if body else []
        if self.chunks == "random":
            rng = random.Random(self.split_seed)
            sizes: Iterable[int] = iter(lambda: rng.randint(1, 97), None)
        else:
            sizes = self.chunks
        pieces: list[bytes] = []
        position = 0
        for size in sizes:
            if position >= len(body):
                break
            pieces.append(body[position : position + max(1, size)])
            position += max(1, size)
        if position < len(body):
            pieces.append(body[position:])
        return pieces


@dataclass
class RecordedRequest:
    """A request the fake upstream received.

    ``headers`` has lower-cased names (repeated headers joined with ``", "``);
    ``query`` is the raw query string without ``?``. ``closed`` is set once
    the connection that carried this request has closed, from either side.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    closed: threading.Event = field(default_factory=threading.Event, repr=False)

    def json(self) -> Any:
        """The body decoded as JSON."""
        return _json.loads(self.body)

    async def wait_closed(self, timeout: float = 5.0) -> bool:
        """Wait (without blocking the loop) until the connection closed; False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.closed.is_set():
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True


# --- the server --------------------------------------------------------------


class _Closed(Exception):
    """The peer went away while we were reading a request."""


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, writes scripted replies."""

    def __init__(self, upstream: FakeUpstream) -> None:
        self._upstream = upstream
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._arrived = asyncio.Event()
        self._eof = False
        self._lost = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._requests: list[RecordedRequest] = []

    # protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Without this, Nagle would merge the scripted writes on the wire.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._upstream._connections.add(self)
        self._task = self._loop.create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._arrived.set()

    def eof_received(self) -> bool:
        self._eof = True
        self._arrived.set()
        return False  # close our side too: a client that stops sending has gone

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._eof = True
        self._arrived.set()
        self._can_write.set()
        self._upstream._connections.discard(self)
        for request in self._requests:
            request.closed.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # reading

    async def _wait_for_data(self) -> None:
        if self._eof:
            raise _Closed
        self._arrived.clear()
        await self._arrived.wait()

    async def _read_until(self, separator: bytes) -> bytes:
        while True:
            index = self._buffer.find(separator)
            if index >= 0:
                data = bytes(self._buffer[: index + len(separator)])
                del self._buffer[: index + len(separator)]
                return data
            if len(self._buffer) > _MAX_HEAD:
                raise _Closed
            await self._wait_for_data()

    async def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._wait_for_data()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def _read_request(self) -> RecordedRequest:
        head = await self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if headers.get("expect", "").lower() == "100-continue":
            await self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked_body()
        else:
            body = await self._read_exactly(int(headers.get("content-length", "0") or 0))
        path, _, query = target.partition("?")
        return RecordedRequest(
            method=method.upper(), path=unquote(path), query=query, headers=headers, body=body
        )

    async def _read_chunked_body(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await self._read_until(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # Skip trailers up to the blank line that ends the body.
                while await self._read_until(b"\r\n") != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await self._read_exactly(size))
            await self._read_exactly(2)

    # writing

    async def _write(self, data: bytes) -> None:
        if self._lost or self._transport is None:
            raise _Closed
        self._transport.write(data)
        await self._can_write.wait()
        if self._lost:
            raise _Closed

    async def _serve(self) -> None:
        try:
            while True:
                try:
                    request = await self._read_request()
                except (_Closed, ValueError):
                    return
                self._requests.append(request)
                self._upstream.requests.append(request)
                reply = self._upstream._next_reply(request.method, request.path)
                if not isinstance(reply, Reply):
                    reply = reply(request)
                self._upstream._begin()
                try:
                    keep_open = await self._respond(request, reply)
                finally:
                    self._upstream._end()
                if not keep_open or request.headers.get("connection", "").lower() == "close":
                    return
        except _Closed:
            return
        finally:
            if self._transport is not None and not self._lost:
                self._transport.close()

    async def _respond(self, request: RecordedRequest, reply: Reply) -> bool:
        """Write one reply; False when the connection must close afterwards."""
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.hang:
            # Stay silent until the client gives up (connection_lost cancels us).
            await asyncio.Event().wait()
        streamed = reply.chunks is not None or reply.drop_after is not None
        head = [f"HTTP/1.1 {reply.status} {_reason(reply.status)}"]
        extra = {k.lower(): v for k, v in (reply.headers or {}).items()}
        content_type = extra.pop("content-type", None) or reply.content_type
        if content_type:
            head.append(f"content-type: {content_type}")
        for name, value in extra.items():
            if name not in ("content-length", "transfer-encoding", "connection"):
                head.append(f"{name}: {value}")
        if streamed:
            head.append("transfer-encoding: chunked")
        else:
            head.append(f"content-length: {len(reply.body)}")
        await self._write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if request.method == "HEAD":
            return True
        if not streamed:
            if reply.body:
                await self._write(reply.body)
            return True
        sent = 0
        for index, piece in enumerate(reply.pieces()):
            if reply.drop_after is not None and sent + len(piece) >= reply.drop_after:
                piece = piece[: reply.drop_after - sent]
                if piece:
                    await self._write(b"%x\r\n%s\r\n" % (len(piece), piece))
                return False
            if index and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            await self._write(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
            # Let the loop push this piece out before the next one is queued.
            await asyncio.sleep(0)
        if reply.drop_after is not None:
            return False
        await self._write(b"0\r\n\r\n")
        return True


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


#: A reply chosen by looking at the request: the upstream's own checks (a real API's
#: 400 for a malformed turn, say), run on the server thread for each request.
Responder = Callable[["RecordedRequest"], Reply]


class FakeUpstream:
    """A real HTTP/1.1 server on ``127.0.0.1`` serving scripted replies from a thread.

    Routes are ``(method, path)`` pairs (the query string is ignored); the
    replies of a route are served in order and the last one repeats. A reply
    may be a :data:`Responder`, called with the request to choose the reply.
    Any other path answers 404 with an OpenAI-style error body.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: dict[tuple[str, str], list[Reply | Responder]] = {}
        self._served: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._port: int | None = None
        self._in_flight = 0
        self._peak = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (available once started)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (available once started)."""
        if self._port is None:
            raise RuntimeError("FakeUpstream is not started; call start() or use `with`")
        return self._port

    @property
    def in_flight(self) -> int:
        """Requests being answered right now (read, reply not yet complete)."""
        return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most requests it was answering at once (:meth:`reset_peak` starts over)."""
        return self._peak

    def reset_peak(self) -> None:
        with self._lock:
            self._peak = self._in_flight

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)

    def _end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        return len(self._connections)

    def route(self, method: str, path: str, *replies: Reply | Responder) -> FakeUpstream:
        """Serve ``replies`` in order for ``method path`` (replacing earlier ones)."""
        if not replies:
            raise ValueError("route() needs at least one Reply")
        key = (method.upper(), path)
        with self._lock:
            self._routes[key] = list(replies)
            self._served[key] = 0
        return self

    def _next_reply(self, method: str, path: str) -> Reply | Responder:
        key = (method, path)
        with self._lock:
            replies = self._routes.get(key)
            if replies is None:
                return Reply.json(
                    {"error": {"message": f"no route for {method} {path}"}}, status=404
                )
            index = min(self._served[key], len(replies) - 1)
            self._served[key] += 1
            return replies[index]

    def start(self) -> FakeUpstream:
        """Start serving; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream is already started")
        self._ready.clear()
        self._failure = None
        self._thread = threading.Thread(target=self._run, name="FakeUpstream", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("FakeUpstream failed to start") from self._failure
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket, and end the thread."""
        if self._thread is None:
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(_resolve, stopping)
            except RuntimeError:  # the loop closed in between
                pass
        self._thread.join()
        self._thread = None
        self._port = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeUpstream:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Joining the thread takes a few milliseconds; don't block the caller's loop.
        await asyncio.to_thread(self.stop)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start() below
            self._failure = exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = loop.create_future()
        server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping
        finally:
            # Stop accepting, but close the server only once the connections accepted as
            # the stop came are set up (their transport next turn, connection_made the turn
            # after): asyncio drops one whose setup finds the server closed, its socket
            # left open for the garbage collector, a ResourceWarning that fails whichever
            # test runs then.
            for listening in server.sockets:
                loop.remove_reader(listening.fileno())
            for _ in range(_SETUP_TURNS):
                await asyncio.sleep(0)
            server.close()
            tasks = []
            for connection in list(self._connections):
                if connection._transport is not None:
                    connection._transport.abort()
                if connection._task is not None:
                    tasks.append(connection._task)
            await asyncio.gather(*tasks, return_exceptions=True)
            while self._connections:  # each leaves in connection_lost, once its socket closed
                await asyncio.sleep(0)
            await server.wait_closed()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
