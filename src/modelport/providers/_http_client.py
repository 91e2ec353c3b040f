"""The one HTTP client every built-in provider uses: pooled keep-alive over aiohttp.

Providers never touch the HTTP library: they get an :class:`HttpClient` (one
per connection) and call it inside
:func:`~modelport.providers._http.upstream_errors`, which translates the
library's exceptions. The client never follows redirects (a key must never
reach another URL), ignores ``~/.netrc``, and honours ``HTTP(S)_PROXY`` /
``NO_PROXY`` except for servers on this machine.

Why aiohttp and not httpx (DESIGN.md: "choose by measurement"). Loopback, a
raw-asyncio uvloop responder in another process, 2 shared cores, concurrency
64, uvloop on the client:

===========================================  ==========  ==========
                                             httpx 0.28  aiohttp 3.14
===========================================  ==========  ==========
small JSON POST, requests/s                  ~930        ~17,400
200-chunk SSE stream, responses/s            ~395        ~1,130
same two on the default asyncio loop         650 / 360   12,400 / 1,080
``import`` time                              ~90 ms      ~140 ms
===========================================  ==========  ==========

The gateway needs 3,000 plain and 1,000 streamed responses per second; httpx's
connection pool cannot get there at concurrency 64, aiohttp does with room to
spare. aiohttp's larger import cost is paid lazily, on the first request.
Through a whole :class:`~modelport.providers._http.HttpProvider` (request
building, decoding, aggregation) the same set-up gives 3,000–6,000
``complete()`` calls/s and 300–380 streams/s of 200 SSE events each; there the
SSE decoding, not the transport, dominates.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from modelport.errors import ConfigError, InvalidRequestError
from modelport.providers._http_direct import DirectPost, DirectResponse, supports, take_buffered
from modelport.wire._json import NESTED_TOO_DEEPLY

if TYPE_CHECKING:
    import aiohttp
    import yarl

__all__ = ["HttpClient", "HttpResponse", "StreamingResponse"]

_USER_AGENT = "modelport"
_LOOPBACK_HOSTS = frozenset({"localhost", "::1", "0.0.0.0"})
#: The schemes the short way serves (anything else goes to aiohttp, which refuses it).
_DIRECT_SCHEMES = frozenset({"http", "https"})
#: How many URLs one client keeps parsed (a provider uses a handful; this only bounds memory).
_MAX_TARGETS = 256


class HttpResponse(msgspec.Struct, frozen=True):
    """A whole response: ``status``, case-insensitive ``headers`` and the ``content``."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.content)


class StreamingResponse:
    """A response whose body is read as it arrives (see :meth:`HttpClient.stream`)."""

    def __init__(self, response: aiohttp.ClientResponse | DirectResponse) -> None:
        self._response = response
        self.status: int = response.status
        #: Case-insensitive.
        self.headers: Mapping[str, str] = response.headers
        self.consumed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's bytes, yielded as soon as each piece arrives (no buffering)."""
        # readany() directly, not iter_any(): one coroutine layer less per chunk (~0.2 µs).
        content = self._response.content
        if type(self._response) is DirectResponse and type(content) is _stream_reader():
            # What is buffered already is taken in one piece (take_buffered); readany()
            # only to wait for more.
            while True:
                if content._buffer:
                    yield take_buffered(content)
                    continue
                chunk = await content.readany()
                if not chunk:
                    break
                yield chunk
        else:
            while chunk := await content.readany():
                yield chunk
        self.consumed = True

    async def aread(self) -> bytes:
        """The rest of the body at once."""
        body = await self._response.read()
        self.consumed = True
        return body


class HttpClient:
    """Pooled keep-alive HTTP for one connection (use inside :func:`upstream_errors`).

    The underlying session is created on first use, on the running event loop,
    and belongs to that loop until :meth:`aclose`. Redirects are never followed
    (a key must never be sent to another URL); a 3xx comes back as a response.
    ``timeout`` bounds connecting and each wait for more bytes, not a whole
    stream, which may legitimately run for minutes.
    """

    def __init__(self, *, timeout: float = 60.0, max_connections: int = 0) -> None:
        # 0 = no cap: a gateway holding 1,000 streams to one upstream must not
        # queue 900 of them behind a pool limit (aiohttp defaults to 100).
        self.timeout = timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._direct: DirectPost | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._targets: dict[str, tuple[yarl.URL, str | None]] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise RuntimeError(
                    "This HttpClient is in use on another event loop; "
                    "give each loop its own client (or aclose() it first)"
                )
            # Its loop is gone, so there is nothing left to await; start afresh here.
            self._session.detach()
            self._session = None
            self._direct = None
        if self._session is None:
            try:
                import aiohttp
            except ImportError as exc:  # pragma: no cover - a broken install
                raise ConfigError(
                    "modelport needs aiohttp to reach providers: pip install 'aiohttp>=3.10'"
                ) from exc
            self._session = aiohttp.ClientSession(
                # Idle connections go after 4 s, before the 5 s that Node and uvicorn servers
                # allow: reusing one the server just closed would fail a request for nothing.
                connector=aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=4.0),
                timeout=self._timeout(None),
                headers={"User-Agent": _USER_AGENT},
                # trust_env would cost two thread hops per request (netrc, proxy lookup) and
                # would refuse our Authorization header for any host listed in ~/.netrc;
                # proxies from the environment are honoured by _target instead.
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )
            if supports(aiohttp.__version__):
                self._direct = DirectPost(self._session)
            self._loop = loop
        return self._session

    def _timeout(self, timeout: float | None) -> aiohttp.ClientTimeout:
        # Passing None to aiohttp would switch timeouts off, never "use the default".
        seconds = self.timeout if timeout is None else timeout
        cached = self._timeouts.get(seconds)
        if cached is None:
            import aiohttp

            cached = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
            self._timeouts[seconds] = cached
        return cached

    def _target(self, url: str) -> tuple[yarl.URL | str, str | None]:
        """``url`` parsed, with its proxy from ``HTTP(S)_PROXY`` / ``NO_PROXY``, both
        worked out once per URL (saves ~3 µs a request)."""
        cached = self._targets.get(url)
        if cached is None:
            from yarl import URL

            try:
                parsed = URL(url)
            except ValueError:  # aiohttp refuses the string next, as InvalidURL (a ConfigError)
                return url, None
            if len(self._targets) >= _MAX_TARGETS:
                self._targets.clear()
            proxy = _environment_proxy(parsed.scheme, parsed.host or "")
            cached = self._targets[url] = (parsed, proxy)
        return cached

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        json: Any,
        timeout: float | None,
        content: bytes | None = None,
    ) -> aiohttp.ClientResponse | DirectResponse:
        """Send a request; return the response once its headers arrived.

        The body is ``json`` encoded, or ``content`` as given (with the caller's
        Content-Type header: a form for an OAuth token endpoint, say). A JSON
        POST without a proxy (every chat call) takes the short way
        (:mod:`._http_direct`); the rest go through ``session.request``.
        """
        session = self._get_session()  # first, so that a missing aiohttp is a ConfigError
        import aiohttp

        target, proxy = self._target(url)
        if json is not None and proxy is None and method == "POST" and not isinstance(target, str):
            direct = self._direct
            if direct is not None and target.scheme in _DIRECT_SCHEMES and target.host:
                return await direct.send(
                    url, target, headers, _encode_body(json), self._timeout(timeout)
                )
        # The body as a ready payload that carries its own Content-Type: aiohttp adds that
        # header unless the caller's headers have one, so theirs go in uncopied.
        if json is not None:
            data: Any = aiohttp.BytesPayload(_encode_body(json), content_type="application/json")
        else:
            data = content
        return await session.request(
            method,
            target,
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=self._timeout(timeout),
            proxy=proxy,
        )

    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> _StreamContext:
        """Send a request; ``async with`` it to get the response once its headers arrived.

        Transport failures surface as the HTTP library's own exceptions: call
        this inside :func:`~modelport.providers._http.upstream_errors`, which translates them.

        Leaving the block before the body was read to its end closes the
        connection at once (cancellation must reach the upstream); a body read
        to its end returns the connection to the pool.
        """
        return _StreamContext(self, method, url, headers, json, timeout)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
        content: bytes | None = None,
    ) -> HttpResponse:
        """Send a request and read the whole response (``content``: a body already encoded)."""
        self._get_session()  # first, so that a missing aiohttp is a ConfigError
        direct = self._direct
        if direct is not None and json is not None and method == "POST":
            # A chat call: the short way, head to whole body in one call (no response object).
            target, proxy = self._target(url)
            if (
                proxy is None
                and not isinstance(target, str)
                and target.scheme in _DIRECT_SCHEMES
                and target.host
            ):
                status, answer_headers, body = await direct.post(
                    url, target, headers, _encode_body(json), self._timeout(timeout)
                )
                return HttpResponse(status=status, headers=answer_headers, content=body)
        # Straight through, not via stream(): its context manager cost ~5 µs a request.
        response = await self._send(method, url, headers, json, timeout, content)
        try:
            content = await response.read()
        except BaseException:
            response.close()
            raise
        _release(response)
        return HttpResponse(status=response.status, headers=response.headers, content=content)

    async def aclose(self) -> None:
        """Close every pooled connection. The client may be used again afterwards."""
        session, loop = self._session, self._loop
        self._session = None
        self._direct = None
        self._loop = None
        if session is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is running:
            await session.close()
        else:
            session.detach()


class _StreamContext:
    """What :meth:`HttpClient.stream` returns (a class: ~5 µs cheaper than asynccontextmanager)."""

    __slots__ = ("_client", "_args", "_streaming")

    def __init__(
        self,
        client: HttpClient,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        json: Any,
        timeout: float | None,
    ) -> None:
        self._client = client
        self._args = (method, url, headers, json, timeout)
        self._streaming: StreamingResponse | None = None

    async def __aenter__(self) -> StreamingResponse:
        self._streaming = StreamingResponse(await self._client._send(*self._args))
        return self._streaming

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        streaming = self._streaming
        if streaming is None:
            return
        if streaming.consumed:
            _release(streaming._response)
        else:
            streaming._response.close()


@functools.cache
def _stream_reader() -> type[aiohttp.StreamReader]:
    # (A body-less answer's reader, EMPTY_PAYLOAD, holds no buffer: readany() serves it.)
    import aiohttp

    return aiohttp.StreamReader


def _encode_body(body: Any) -> bytes:
    """``body`` as JSON; a body nested too deeply to encode is the caller's mistake, not a bug.

    A gateway client's JSON can be read when its nesting is just within Python's
    recursion limit and still fail here, deeper in the stack.
    """
    try:
        return msgspec.json.encode(body)
    except RecursionError:
        raise InvalidRequestError(NESTED_TOO_DEEPLY) from None


def _release(response: aiohttp.ClientResponse | DirectResponse) -> None:
    # A body read to its end has handed its connection back to the pool already
    # (response.closed); release() would only cost another ~2 µs.
    if not response.closed:
        response.release()


def _environment_proxy(scheme: str, host: str) -> str | None:
    import urllib.request  # aiohttp has imported it already

    # A local server stays local: prompts meant for it never detour through a proxy.
    if not host or host in _LOOPBACK_HOSTS or host.startswith("127."):
        return None
    if urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get(scheme)
    # aiohttp speaks only to HTTP proxies (CONNECT for https); ignore socks:// and the like.
    if proxy and proxy.startswith(("http://", "https://")):
        return proxy
    return None
