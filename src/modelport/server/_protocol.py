"""The HTTP protocol ``modelport serve`` runs: uvicorn's httptools protocol, with limits.

uvicorn's httptools protocol accepts a request head of any size (and llhttp's
binding joins a long header value with ``bytes +=``, so parsing slows as the
square of its size: one 200 MB header stalled every other client for seconds),
and waits forever for a request that was half sent (``timeout_keep_alive``
only runs between requests). :class:`GatewayProtocol` adds what every
production server has, before a byte reaches the app and without a key:

* a request head (request line and headers) of at most
  :attr:`HttpLimits.max_head_bytes` and :attr:`HttpLimits.max_headers` headers,
  else ``431`` and the connection is closed;
* :attr:`HttpLimits.head_timeout` seconds from a request's first byte to the end
  of its head, and :attr:`HttpLimits.body_timeout` seconds of silence while its
  body is being sent, else ``408`` (when no answer has started) and the
  connection is closed;
* at most :attr:`HttpLimits.max_connections` client connections: half the
  process's file descriptors, so each client connection can have its upstream
  connection. Past it, a new connection takes the place of the oldest one that
  holds no request being answered (an idle keep-alive connection, or one still
  sending its head), else it is closed at once.

It also tells a handler that asked (:data:`DISCONNECT_EXTENSION`) when the
client's connection is lost, and writes a response's head together with its
first body bytes (one ``send`` instead of two: :class:`_HeadWithBody`).

The checks cost a length comparison per read: one watchdog timer per busy
connection is re-armed only when it fires, never per request. Before a timeout
is called, the socket is asked whether the client's bytes are waiting unread: a
busy loop runs every due timer before it reads (hundreds of refusals in one
pass), and its own slowness is not the client's silence.
:func:`raise_open_file_limit` lifts the soft ``RLIMIT_NOFILE`` to the hard limit.
"""

from __future__ import annotations

import fcntl
import logging
import resource
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from modelport.errors import InvalidRequestError, ModelportError
from modelport.server._chat import DISCONNECT_EXTENSION
from modelport.server._response_head import GatewayCycle
from modelport.server._streaming import START_WITH_BODY_EXTENSION
from modelport.wire import anthropic_messages_server, openai_chat_server

__all__ = ["GatewayProtocol", "HttpLimits", "connection_limit", "raise_open_file_limit"]

logger = logging.getLogger("modelport.server")

#: Descriptors a gateway keeps for itself (logs, the ledger, plugins, the listening socket).
_OWN_DESCRIPTORS = 64
#: The soft limit asked for when the hard one is unlimited.
_UNLIMITED = 1 << 20
#: Seconds to wait for the loop to read a timed-out client's waiting bytes (one turn).
_READ_WAITING = 0.001


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """What one client may send, and for how long, before the gateway hangs up."""

    #: Request line and headers together, in bytes (nginx: 8 KB a line; Node: 16 KB).
    max_head_bytes: int = 64 * 1024
    max_headers: int = 100
    #: Seconds from a request's first byte to the end of its head.
    head_timeout: float = 10.0
    #: Seconds of silence allowed while a request's body is arriving.
    body_timeout: float = 30.0
    #: Client connections at once (``None``: from the file-descriptor limit, at start).
    max_connections: int | None = None


def raise_open_file_limit() -> int:
    """Lift the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now in force.

    A shell's default soft limit (often 1,024) runs out at a few hundred
    streams, each a client and an upstream connection; the hard limit is
    there to be used.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. above the kernel's nr_open
            logger.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return soft


def connection_limit() -> int:
    """Client connections the file-descriptor limit allows, one upstream connection each."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = _UNLIMITED
    return max(16, (soft - _OWN_DESCRIPTORS) // 2)


# The phase of the request a connection is in, for the watchdog.
_IDLE = 0  # between requests (uvicorn's keep-alive timeout applies)
_HEAD = 1  # its head is arriving
_BODY = 2  # its body is arriving
_ANSWERING = 3  # all of it arrived


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that was refused."""


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`HttpLimits` (see the module docstring).

    Use :meth:`with_limits` to get the class to hand to ``uvicorn.Config(http=...)``.
    """

    limits: ClassVar[HttpLimits] = HttpLimits()
    max_connections: ClassVar[int] = 0  # 0: work it out from the descriptor limit

    @classmethod
    def with_limits(cls, limits: HttpLimits | None = None) -> type[GatewayProtocol]:
        """A subclass with ``limits`` (and the connection cap worked out now)."""
        limits = limits or HttpLimits()
        cap = limits.max_connections or connection_limit()
        return type(cls.__name__, (cls,), {"limits": limits, "max_connections": cap})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._since = 0.0  # when the head began, or the body's last read
        self._head_bytes = 0
        self._watchdog: Any = None
        self._head_grace = True  # one look at unread bytes per head (its limit is not silence)
        #: Called once if the connection is lost while set (:data:`DISCONNECT_EXTENSION`).
        self._on_lost: Callable[[], object] | None = None
        # Every request on the connection gets the same extensions (none is per request).
        self._extensions = {
            DISCONNECT_EXTENSION: self._watch_disconnect,
            START_WITH_BODY_EXTENSION: True,
        }

    # --- connections --------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self.max_connections or connection_limit()
        if len(self.connections) > cap:
            victim = self._oldest_evictable()
            if victim is None:
                logger.warning("%d client connections open: refusing a new one", cap)
                transport.close()
                return
            victim.transport.close()

    def _oldest_evictable(self) -> GatewayProtocol | None:
        oldest: GatewayProtocol | None = None
        for connection in self.connections:
            if connection is self or not isinstance(connection, GatewayProtocol):
                continue
            if connection._evictable() and (oldest is None or connection._since < oldest._since):
                oldest = connection
        return oldest

    def _evictable(self) -> bool:
        """Nothing is lost by closing it: no answer under way, and idle or its head arriving.

        (A pipelined request's head may arrive while the one before is answered.)
        """
        if self._phase != _IDLE and self._phase != _HEAD:
            return False
        return self.cycle is None or self.cycle.response_complete

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        super().connection_lost(exc)
        on_lost = self._on_lost
        if on_lost is not None:
            self._on_lost = None
            on_lost()

    def _watch_disconnect(self, on_lost: Callable[[], object] | None) -> None:
        """What a handler reaches through :data:`DISCONNECT_EXTENSION`; ``None`` unwatches."""
        self._on_lost = on_lost

    # --- reading ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._phase == _BODY:
            self._since = self.loop.time()
        elif self._phase != _ANSWERING:
            seen = self._head_bytes + len(data)
            if seen > self.limits.max_head_bytes and not self._head_ends_in(data):
                message = "The request's headers are larger than this gateway accepts"
                self._refuse(431, message, head=data if self._head_bytes == 0 else b"")
                return
            self._head_bytes = seen
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Refused):
                self._invalid()
        except httptools.HttpParserError:
            self._invalid()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _head_ends_in(self, data: bytes) -> bool:
        """Whether the head ends within the limit in ``data`` (a body may follow in one read)."""
        room = self.limits.max_head_bytes - self._head_bytes
        return room > 0 and data.find(b"\r\n\r\n", 0, room + 4) != -1

    def _invalid(self) -> None:
        # As uvicorn answers a request llhttp cannot parse.
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    # --- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD
        self._since = self.loop.time()
        self._head_grace = True
        if self._watchdog is None:  # usually still armed from an earlier request
            self._watchdog = self.loop.call_later(self.limits.head_timeout, self._check)

    def on_headers_complete(self) -> None:
        if len(self.headers) > self.limits.max_headers:
            self._refuse(431, f"A request may carry at most {self.limits.max_headers} headers")
            raise _Refused
        # The body's silence counts from its next read (data_received); until then from
        # the head's start, a moment ago: no clock read here.
        self._head_bytes = 0
        self._phase = _BODY
        before = self.cycle
        super().on_headers_complete()
        self.scope["extensions"] = self._extensions
        if self.cycle is not before:  # a new request's cycle (not an upgrade)
            self.cycle.transport = _HeadWithBody(self.transport, self.loop)
            # uvicorn builds the cycle itself; ours differs only in how it writes a head.
            self.cycle.__class__ = GatewayCycle

    def on_message_complete(self) -> None:
        # An answer may have gone out before the body ended (a refusal): then it is idle.
        answered = self.cycle is not None and self.cycle.response_complete
        self._phase = _IDLE if answered else _ANSWERING
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive timeout kept by the watchdog.

        uvicorn arms a timer for every answer and cancels it when the next request's
        bytes arrive (two timer operations a request); here the connection notes when
        it went idle and the watchdog, armed at most once per timeout, closes it when
        it has stayed idle that long.
        """
        if self._phase == _ANSWERING:
            self._phase = _IDLE
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # pipelined requests wait for this answer to start
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        idle_since = self._since = self.loop.time()
        watchdog = self._watchdog
        if watchdog is None:
            self._watchdog = self.loop.call_at(idle_since + self.timeout_keep_alive, self._check)
        elif watchdog.when() > idle_since + self.timeout_keep_alive:
            # Armed for a head's longer limit: the idle deadline comes first.
            watchdog.cancel()
            self._watchdog = self.loop.call_at(idle_since + self.timeout_keep_alive, self._check)

    # --- the watchdog -------------------------------------------------------------------

    def _arm(self, delay: float) -> None:
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(delay, self._check)

    def _check(self) -> None:
        """Fires at the earliest a deadline can pass; re-armed, not recreated, while busy."""
        self._watchdog = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._phase == _HEAD:
            limit, what = self.limits.head_timeout, "its headers"
        elif self._phase == _BODY:
            limit, what = self.limits.body_timeout, "its body"
            if self.flow.read_paused:
                # The app has not read what came (flow control): not the client's silence.
                self._since = self.loop.time()
        elif self._phase == _IDLE and (self.cycle is None or self.cycle.response_complete):
            # Between requests: uvicorn's keep-alive timeout, counted from the last answer.
            left = self._since + self.timeout_keep_alive - self.loop.time()
            if left > 0:
                self._arm(left)
            else:
                self.timeout_keep_alive_handler()
            return
        else:
            return  # an answer is under way; its end arms it again
        left = self._since + limit - self.loop.time()
        if left > 0:
            self._arm(left)
            return
        if (self._phase == _BODY or self._head_grace) and self._unread_bytes() > 0:
            # The client did send: its bytes wait for this loop, busy running due timers
            # before its next read. Judge after that read (a body's bytes reset its clock).
            self._head_grace = False
            self._arm(_READ_WAITING)
            return
        self._refuse(408, f"The client took longer than {limit:g} s to send {what}")

    def _unread_bytes(self) -> int:
        """Bytes the client sent that wait in the socket unread (0 when that is unknown)."""
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return 0
        try:
            waiting = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return int(struct.unpack("i", waiting)[0])

    # --- refusing -------------------------------------------------------------------------

    def _refuse(self, status: int, message: str, head: bytes = b"") -> None:
        """Answer ``status`` (unless this request's answer has begun) and close the connection.

        ``head`` is the start of a request refused before llhttp read its path.
        """
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        # Before its head is complete, self.cycle is the previous request's.
        ours = self.cycle if self._phase in (_BODY, _ANSWERING) else None
        self._phase = _ANSWERING
        if not self.transport.is_closing() and (ours is None or not ours.response_started):
            url = getattr(self, "url", b"") or _target(head)  # self.url: once llhttp read it
            self.transport.write(_error_response(status, message, url))
        if ours is not None:
            ours.keep_alive = False
        self.transport.close()


#: A body larger than this is not copied behind the head it would join.
_JOIN_AT_MOST = 64 * 1024


class _HeadWithBody:
    """A response cycle's transport: the response head goes out with the first body write.

    uvicorn writes the status line and headers on ``http.response.start`` and the
    body on the next message: two ``send`` system calls (and two TCP segments) for
    every answer. The first write is held instead and joined to the next one; if
    no next write comes in the same turn of the loop (an app that sends its head
    and then waits), it goes out alone at the end of that turn. Nothing is
    reordered and nothing waits past the current turn. Every later write goes
    straight through.
    """

    __slots__ = ("_armed", "_held", "_loop", "_transport")

    def __init__(self, transport: Any, loop: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._armed = True
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= _JOIN_AT_MOST:
                self._transport.write(held + data)
                return
            self._transport.write(held)
        elif self._armed:
            self._armed = False
            self._held = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def write_now(self, data: bytes) -> None:
        """Write ``data`` at once (a head with its body: nothing to join it to)."""
        held = self._held
        self._armed = False
        if held is not None:
            self._held = None
            data = held + data
        self._transport.write(data)

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _target(head: bytes) -> bytes:
    """The request target of a request line (``POST /v1/messages HTTP/1.1``), else ``b""``."""
    parts = head[:512].split(b" ", 2)
    return parts[1] if len(parts) > 2 else b""


def _error_response(status: int, message: str, url: bytes | None) -> bytes:
    """A whole HTTP response with the error in the shape of the API the path belongs to."""
    error: ModelportError = InvalidRequestError(message)
    wire: Any = openai_chat_server
    if url is not None and url.startswith(b"/v1/messages"):
        wire = anthropic_messages_server
    _, body, _ = wire.encode_error(error)
    head = STATUS_LINE[
        status
    ] + b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(
        body
    )
    return head + body
