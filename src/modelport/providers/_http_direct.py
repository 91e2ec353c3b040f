""":class:`HttpClient`'s short way for a JSON POST: pre-built bytes on aiohttp's own pool.

``ClientSession.request`` does the same work for every call a provider makes:
it merges the headers into a ``CIMultiDict``, builds a ``ClientRequest``
(cookies, auth, proxy, default headers), serialises the head, starts a task
per request to write the body (Python 3.11 has no eager tasks, so one more
turn of the event loop), and wraps the answer in a ``ClientResponse`` with its
own timer. Here the head is built once per URL and headers (by a real
``ClientRequest``, so the headers sent are exactly aiohttp's, then serialised
with the control-character check of aiohttp's Python header writer, a little
stricter than its C one, which refuses CR and LF), each request goes out
in one ``write`` with its body on a connection from the session's own
``TCPConnector`` (its pool, keep-alive expiry, TLS verification and connect
timeout), and the answer is read by that connection's ``ResponseHandler``
with aiohttp's C parser, its per-read timeout and its decompression.

What ``session.request`` would add and these calls never use: redirects (never
followed), cookies (the session's jar is a ``DummyCookieJar``), a proxy (a
proxied URL takes ``session.request``), a retry of a POST on a reused
connection (aiohttp does not retry a POST either), tracing, middlewares.
Transport errors are raised as aiohttp raises them there, so
:func:`~modelport.providers._http.upstream_errors` words them the same.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import aiohttp
    import yarl
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest, ConnectionKey
    from aiohttp.connector import Connection
    from aiohttp.streams import StreamReader
    from multidict import CIMultiDictProxy

__all__ = ["DirectPost", "DirectResponse", "supports", "take_buffered"]

#: The aiohttp releases whose internals this module was tested against (``ResponseHandler``'s
#: timeout and reading hooks, the connector's protocol factory): 3.11 to 3.14.
_TESTED = ((3, 11), (3, 14))
#: How many heads one client keeps (a provider uses a handful; this only bounds memory).
_MAX_HEADS = 256
#: What aiohttp's Python header writer refuses (header injection); its C one refuses CR, LF.
_FORBIDDEN_HEADER_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _Head(NamedTuple):
    """One URL and set of headers, prepared: what the connector needs, and the bytes."""

    request: ClientRequest
    prefix: bytes
    request_info: aiohttp.RequestInfo
    #: The pool's key for this host (``request.connection_key``, worked out once).
    key: ConnectionKey


class DirectResponse:
    """An answer read straight off the connection: the part of ``ClientResponse`` we use."""

    __slots__ = ("_connection", "closed", "content", "headers", "status")

    def __init__(
        self,
        connection: Connection,
        status: int,
        headers: CIMultiDictProxy[str],
        content: StreamReader,
    ) -> None:
        self._connection: Connection | None = connection
        self.status = status
        self.headers = headers
        self.content = content
        self.closed = False

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool once it is read."""
        try:
            body = await self.content.read()
        except BaseException:
            self.close()
            raise
        self.release()
        return body

    def release(self) -> None:
        """Give the connection back: to the pool if the body was read to its end, else closed
        (aiohttp's connector checks that itself)."""
        connection, self._connection = self._connection, None
        self.closed = True
        if connection is not None:
            connection.release()

    def close(self) -> None:
        """Close the connection now (a stream left early: the upstream must see it go)."""
        connection, self._connection = self._connection, None
        self.closed = True
        if connection is not None:
            connection.close()


class DirectPost:
    """JSON POSTs over one ``ClientSession``'s connector (one per session, on its loop)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        from aiohttp.helpers import TimerNoop

        self._session = session
        connector = session.connector
        assert connector is not None
        self._connector = connector
        # Connections made from now on get the cheaper per-read timeout (see below).
        connector._factory = functools.partial(_response_handler(), loop=connector._loop)  # type: ignore[attr-defined]
        self._timer = TimerNoop()
        # Keyed by the URL's text as given: a yarl URL's hash, or its str(), is a Python call.
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], _Head] = {}

    def _head(self, text: str, url: yarl.URL, headers: Mapping[str, str] | None) -> _Head:
        key = (text, tuple(headers.items()) if headers else ())
        head = self._heads.get(key)
        if head is None:
            head = self._prepare(url, headers)
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()
            self._heads[key] = head
        return head

    def _prepare(self, url: yarl.URL, headers: Mapping[str, str] | None) -> _Head:
        import aiohttp
        from aiohttp.client_reqrep import ClientRequest
        from multidict import CIMultiDict, CIMultiDictProxy

        session = self._session
        # A real request, built as session.request builds one (the session's default headers
        # under the caller's, Host, aiohttp's Accept and Accept-Encoding, the Content-Type of a
        # JSON payload), so the head on the wire is the one aiohttp would send.
        request = ClientRequest(
            "POST",
            url,
            headers=session._prepare_headers(headers),
            data=aiohttp.BytesPayload(b"", content_type="application/json"),
            loop=asyncio.get_running_loop(),
            session=session,
            ssl=True,
            trust_env=False,
        )
        lines = [_safe(f"POST {url.raw_path_qs} HTTP/1.1")]
        for name, value in request.headers.items():
            if name.lower() in ("content-length", "transfer-encoding"):
                continue
            lines.append(f"{_safe(name)}: {_safe(value)}")
        text = "\r\n".join(lines) + "\r\n"
        info = aiohttp.RequestInfo(url, "POST", CIMultiDictProxy(CIMultiDict()), url)
        return _Head(request, text.encode("utf-8"), info, request.connection_key)

    async def send(
        self,
        text: str,
        url: yarl.URL,
        headers: Mapping[str, str] | None,
        body: bytes,
        timeout: aiohttp.ClientTimeout,
    ) -> DirectResponse:
        """POST ``body`` (JSON) to ``url`` (``text`` as the caller wrote it, the key of the
        prepared heads); the response once its head arrived."""
        head = self._head(text, url, headers)
        connection, code, message_headers, payload = await self._exchange(head, body, timeout)
        return DirectResponse(connection, code, message_headers, payload)

    async def post(
        self,
        text: str,
        url: yarl.URL,
        headers: Mapping[str, str] | None,
        body: bytes,
        timeout: aiohttp.ClientTimeout,
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """POST ``body`` (JSON) to ``url``; the whole answer (status, headers, body).

        :meth:`send` and :meth:`DirectResponse.read` in one: no response object,
        and a body that came with its head is taken at once.
        """
        head = self._heads.get((text, tuple(headers.items()) if headers else ()))
        if head is None:
            head = self._head(text, url, headers)
        connection, code, message_headers, payload = await self._exchange(head, body, timeout)
        try:
            # The whole body arrived with the head (a short answer): take it as it is.
            content = payload.read_nowait() if payload.is_eof() else await payload.read()
        except BaseException:
            connection.close()
            raise
        # Back to the pool (closed instead if the answer said so: the connector checks).
        connection.release()
        return code, message_headers, content

    async def _exchange(
        self, head: _Head, body: bytes, timeout: aiohttp.ClientTimeout
    ) -> tuple[Connection, int, CIMultiDictProxy[str], StreamReader]:
        import aiohttp
        from aiohttp.http_exceptions import HttpProcessingError

        try:
            connector = self._connector
            # An idle connection from the pool under the key worked out once for this host
            # (what connector.connect tries first, without the key built again); a new one,
            # with the connect timeout and the pool's limits, through connect itself.
            connection = await connector._get(head.key, [])  # type: ignore[attr-defined]
            if connection is None:
                try:
                    connection = await connector.connect(head.request, [], timeout)
                except TimeoutError as exc:
                    raise aiohttp.ConnectionTimeoutError(
                        f"Connection timeout to host {head.request.url}"
                    ) from exc
            try:
                protocol: ResponseHandler = connection.protocol  # type: ignore[assignment]
                protocol.set_response_params(
                    timer=self._timer,
                    # As session.request: a body with neither a length nor chunks ends at EOF.
                    read_until_eof=True,
                    auto_decompress=True,
                    read_timeout=timeout.sock_read,
                    timeout_ceil_threshold=connector._timeout_ceil_threshold,
                )
                transport = protocol.transport
                assert transport is not None
                transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (head.prefix, len(body), body))
                protocol.start_timeout()
                while True:
                    try:
                        message, payload = await protocol.read()
                    except HttpProcessingError as exc:
                        raise aiohttp.ClientResponseError(
                            head.request_info,
                            (),
                            status=exc.code,
                            message=exc.message,
                            headers=exc.headers,
                        ) from exc
                    code = message.code
                    # 1xx (100 Continue, 103 Early Hints) come before the answer; skip them.
                    if code < 100 or code > 199 or code == 101:
                        break
            except BaseException:
                connection.close()
                raise
            return connection, code, message.headers, payload
        except aiohttp.ClientError:
            raise
        except OSError as exc:
            # As session.request does: a plain OSError becomes a ClientOSError, a timeout stays.
            if exc.errno is None and isinstance(exc, TimeoutError):
                raise
            raise aiohttp.ClientOSError(*exc.args) from exc


def take_buffered(content: StreamReader) -> bytes:
    """All the bytes ``content`` holds now, at once: what ``readany()`` returns when data is
    buffered, without its per-HTTP-chunk calls.

    ``readany()`` takes buffered pieces off one by one (for each: bookkeeping, the
    chunk-split list trimmed, the protocol asked to resume); a stream whose events
    came in one read as 20 HTTP chunks paid that 20 times. Here the pieces are
    joined, the counts moved as those calls would have moved them (the split at
    the new position is kept, as aiohttp keeps it), and reading resumed once if
    it was paused. Call it only with something buffered (``content._buffer``).
    """
    if content._exception is not None:
        raise content._exception
    buffer = content._buffer
    offset = content._buffer_offset
    if offset:
        buffer[0] = buffer[0][offset:]
        content._buffer_offset = 0
    data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
    buffer.clear()
    size = len(data)
    content._size -= size
    cursor = content._cursor = content._cursor + size
    splits = content._http_chunk_splits
    if splits:
        last = splits[-1]
        splits.clear()
        if last >= cursor:
            splits.append(last)
    protocol = content._protocol
    if protocol._reading_paused:  # type: ignore[attr-defined]
        protocol.resume_reading()
    return data


def supports(version: str) -> bool:
    """Whether aiohttp ``version`` is one this short way was tested on.

    It reaches into aiohttp's internals, which a later release may change: on
    any other release every call goes through ``session.request``, slower but
    sure.
    """
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return _TESTED[0] <= major_minor <= _TESTED[1]


def _safe(text: str) -> str:
    """``text`` for a request head, refused as aiohttp refuses it if it could inject a header."""
    if _FORBIDDEN_HEADER_CHARS.search(text) is not None:
        raise ValueError(
            "Forbidden control character detected in headers. Potential header injection attack."
        )
    return text


@functools.cache
def _response_handler() -> type[ResponseHandler]:
    """aiohttp's ``ResponseHandler``, cheaper per read: a moving deadline, no idle resumes.

    aiohttp cancels its timer and makes a new one on every read (with uvloop, a
    libuv timer started and closed each time): per chunk of a stream, and twice
    per plain answer. Here a read moves a deadline forward (a float); the one
    timer, when it fires early, sets itself again for the rest. Same timeout:
    it fires once ``sock_read`` seconds pass without a read.

    Dropping the timeout (the answer is complete, reading paused) only clears
    the deadline: the pending timer stays and finds nothing to do when it fires,
    so a pooled connection's next call reuses it instead of making one (a timer
    made and cancelled per call, ~1.4 µs). A lost connection cancels it.
    """
    from aiohttp.client_proto import ResponseHandler

    class _Handler(ResponseHandler):
        #: When the read times out (``None``: no read is being waited for).
        _read_deadline: float | None = None
        #: When the pending timer fires (a deadline earlier than that needs a new timer).
        _read_timer_at = 0.0

        def _reschedule_timeout(self) -> None:
            timeout = self._read_timeout
            if not timeout:
                self._read_deadline = None
                return
            loop = self._loop
            self._read_deadline = deadline = loop.time() + timeout
            handle = self._read_timeout_handle
            if handle is None or deadline < self._read_timer_at:
                # None pending, or one set for a longer timeout than this call's.
                if handle is not None:
                    handle.cancel()
                self._read_timer_at = deadline
                self._read_timeout_handle = loop.call_at(deadline, self._read_deadline_passed)

        def _drop_timeout(self) -> None:
            self._read_deadline = None

        def connection_lost(self, exc: BaseException | None) -> None:
            super().connection_lost(exc)
            handle = self._read_timeout_handle
            if handle is not None:
                self._read_timeout_handle = None
                handle.cancel()

        def resume_reading(self, *args: Any, **kwargs: Any) -> None:
            if not self._reading_paused:
                # Nothing is held back: aiohttp calls this for every HTTP chunk a reader takes
                # off the buffer, and would feed the parser b"" and resume the transport each
                # time (a 20-event stream: 24 times). Parsing pauses only through
                # pause_reading(), which sets the flag, so there is nothing to resume.
                return
            # (aiohttp 3.14 passes resume_parser; 3.11 takes no argument.)
            super().resume_reading(*args, **kwargs)

        def _read_deadline_passed(self) -> None:
            self._read_timeout_handle = None
            deadline = self._read_deadline
            if deadline is None:
                return  # the answer came (or reading paused) since: the timer lapses
            loop = self._loop
            if loop.time() >= deadline:
                self._read_deadline = None
                self._on_read_timeout()
            else:
                self._read_timer_at = deadline
                self._read_timeout_handle = loop.call_at(deadline, self._read_deadline_passed)

    return _Handler
