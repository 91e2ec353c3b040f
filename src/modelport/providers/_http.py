"""The base of the built-in providers, and the one error boundary around upstream calls.

:class:`HttpProvider` speaks one wire format over an
:class:`~modelport.providers._http_client.HttpClient` (one per connection,
pooled keep-alive connections; see that module for why it is aiohttp) and
wraps each upstream call in :func:`upstream_errors`, which turns every
transport failure into a :class:`~modelport.errors.NetworkError` that says
what to check, and fills ``connection``, ``url`` and ``model`` into any error
that lacks them. ``HttpClient``, ``HttpResponse`` and ``StreamingResponse``
are importable from here too.
"""

from __future__ import annotations

import difflib
import errno
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, ClassVar, Protocol

import msgspec

from modelport._bursts import more_ready
from modelport._redact import mask_secrets, public_url
from modelport.aggregate import aggregate
from modelport.config import check_base_url
from modelport.errors import ConfigError, ModelportError, NetworkError, ParseError, UpstreamError
from modelport.events import StreamEvent
from modelport.providers import BaseProvider, ConnectionSettings
from modelport.providers._http_client import HttpClient, HttpResponse, StreamingResponse
from modelport.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    Usage,
)
from modelport.wire._errors import excerpt

__all__ = [
    "DEFAULT_HINT",
    "HttpClient",
    "HttpProvider",
    "HttpResponse",
    "StreamingResponse",
    "WireModule",
    "check_options",
    "redact_url",
    "upstream_errors",
]

#: ``url`` without credentials, query or fragment (the one redaction, in ``modelport._redact``).
redact_url = public_url

#: What to check when a server cannot be reached.
DEFAULT_HINT = "is the server running? is the URL right?"


def _describe(exc: BaseException, target: str, timeout: float | None, hint: str) -> str:
    """What went wrong, in words that say what to check."""
    import aiohttp

    seconds = f"{timeout:g} s" if timeout is not None else "the time limit"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return (
            f"Timed out connecting to {target} after {seconds} — {hint} "
            "(raise the connection's `timeout` setting if it is just slow)"
        )
    if isinstance(exc, TimeoutError):
        return (
            f"No response from {target} for {seconds} (the connection's `timeout` setting) — "
            "the server may be overloaded or still loading the model; raise `timeout` to wait "
            "longer"
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"Cannot reach {target} (the host name does not resolve) — is the URL right?"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return (
            f"Cannot reach {target} (TLS failed: {_reason(exc)}) — is the scheme right "
            "(http:// or https://)? does the server's certificate match its name?"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, ConnectionRefusedError):
            return f"Cannot reach {target} (connection refused) — {hint}"
        return f"Cannot reach {target} ({_reason(cause)}) — {hint}"
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return (
            f"The connection to {target} was reset before the answer was complete — the "
            "server (or a proxy in between) may have crashed or restarted; try again"
        )
    if isinstance(
        exc,
        aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | ConnectionResetError,
    ):
        return (
            f"The connection to {target} closed mid-response — the server may have crashed "
            "or restarted; try again"
        )
    if isinstance(exc, aiohttp.ClientResponseError):
        detail = " ".join(str(exc.message).split()[:8])
        return f"{target} did not answer with valid HTTP ({detail}) — is the URL right?"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"The URL {target} is not valid — check the connection's `base_url`"
    return f"Network error talking to {target} ({_reason(exc)}) — {hint}"


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _transport_errors() -> tuple[type[BaseException], ...]:
    import aiohttp

    return (aiohttp.ClientError, TimeoutError, OSError)


def upstream_errors(
    *,
    url: str,
    connection: str | None = None,
    model: str | None = None,
    target: str | Callable[[], str] | None = None,
    timeout: float | None = None,
    hint: str | Callable[[], str] = DEFAULT_HINT,
) -> AbstractContextManager[None]:
    """The boundary around an upstream call.

    Transport exceptions become :class:`NetworkError` (``target`` — usually
    the base URL — names what could not be reached; ``hint`` says what to
    check when it is refused); any :class:`ModelportError` passing through
    gets ``connection``, ``url`` and ``model`` where it has none.

    ``target`` and ``hint`` may be given as functions: the boundary is on
    every request's path and the words are needed only when something failed.
    """
    return _UpstreamErrors(url, connection, model, target, timeout, hint)


class _UpstreamErrors(AbstractContextManager[None]):
    # A class rather than @contextmanager: no generator per request, and nothing is
    # redacted or worded until an exception actually passes through.
    __slots__ = ("_connection", "_hint", "_model", "_target", "_timeout", "_url")

    def __init__(
        self,
        url: str,
        connection: str | None,
        model: str | None,
        target: str | Callable[[], str] | None,
        timeout: float | None,
        hint: str | Callable[[], str],
    ) -> None:
        self._url = url
        self._connection = connection
        self._model = model
        self._target = target
        self._timeout = timeout
        self._hint = hint

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        safe_url = redact_url(self._url)
        if isinstance(exc, ModelportError):
            _fill(exc, connection=self._connection, url=safe_url, model=self._model)
            return
        if not isinstance(exc, _transport_errors()):
            return
        # Some aiohttp errors hold the request's headers (and so the key) and its full URL;
        # they travel on as our error's cause and context, so scrub them first.
        _scrub(exc)
        target = self._target() if callable(self._target) else self._target
        hint = self._hint() if callable(self._hint) else self._hint
        message = _describe(exc, redact_url(target or self._url), self._timeout, hint)
        error_class = ConfigError if _is_invalid_url(exc) else NetworkError
        error = error_class(message, connection=self._connection, url=safe_url, model=self._model)
        raise error from exc


def _scrub(exc: BaseException) -> None:
    """Drop the request headers (and the URL's secrets) that aiohttp errors keep."""
    import aiohttp
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        info = getattr(current, "request_info", None)
        if isinstance(info, aiohttp.RequestInfo):
            safe = URL(redact_url(str(info.url)))
            current.request_info = aiohttp.RequestInfo(  # type: ignore[attr-defined]
                safe, info.method, CIMultiDictProxy(CIMultiDict()), safe
            )
        current = current.__cause__ or current.__context__


def _is_invalid_url(exc: BaseException) -> bool:
    import aiohttp

    return isinstance(exc, aiohttp.InvalidURL)


def _fill(exc: ModelportError, *, connection: str | None, url: str, model: str | None) -> None:
    # An upstream may echo the key it was sent, whole or cut ("sk-abc..."): mask every key
    # the process holds before the error reaches a log line, the ledger or a client.
    exc.message = mask_secrets(exc.message)
    if exc.body:
        exc.body = mask_secrets(exc.body)
    if exc.connection is None:
        exc.connection = connection
    if exc.url is None:
        exc.url = url
    if exc.model is None:
        exc.model = model


# --- the provider base --------------------------------------------------------


def check_options(settings: ConnectionSettings, known: Iterable[str]) -> None:
    """Refuse a connection option this provider would ignore, naming the closest known one.

    ``settings.options`` holds the connection's keys beyond the common ones; a
    key that is accepted must have an effect (a typo must not pass unnoticed).
    """
    allowed = sorted(known)
    for key in settings.options:
        if key in allowed:
            continue
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        choices = ", ".join(allowed) if allowed else "none"
        raise ConfigError(
            f"[connections.{settings.name}] sets {key!r}, which a {settings.compat!r} "
            f"connection does not use.{hint} Its own settings: {choices}",
            connection=settings.name,
        )


class WireModule(Protocol):
    """The client half of a :mod:`modelport.wire` module (see docs/architecture.md)."""

    StreamDecoder: Any

    def build_request(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]: ...

    def decode_response(self, body: bytes) -> list[StreamEvent]: ...

    def error_from_response(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> ModelportError: ...

    def decode_models(self, body: bytes, connection: str) -> list[ModelInfo]: ...


class _ResponseId(msgspec.Struct):
    id: str | None = None


class HttpProvider(BaseProvider):
    """A provider that speaks one wire format over HTTP; subclasses say where and how.

    Subclasses set :attr:`wire` and :attr:`hint` and implement :meth:`base_url`,
    :meth:`chat_url`, :meth:`models_url` and :meth:`auth_headers`.
    """

    #: The wire module this provider speaks.
    wire: ClassVar[WireModule]
    #: What to check when the server cannot be reached.
    hint: ClassVar[str] = DEFAULT_HINT
    #: What to check when the URL answers with something that is not this API (a web page).
    url_hint: ClassVar[str] = "is the connection's base_url right?"
    #: The header :meth:`auth_headers` puts the key in; an OAuth token replaces it.
    key_header: ClassVar[str] = "Authorization"

    def __init__(self, settings: ConnectionSettings, *, client: HttpClient | None = None) -> None:
        if settings.base_url:
            check_base_url(settings.base_url, connection=settings.name)
        super().__init__(settings)
        self._owns_client = client is None
        self.client = client if client is not None else HttpClient(timeout=settings.timeout)

    def base_url(self) -> str:
        raise NotImplementedError

    def chat_url(self) -> str:
        raise NotImplementedError

    def models_url(self) -> str:
        raise NotImplementedError

    def request_url(self, model: str, *, stream: bool) -> str:
        """Where a chat call to ``model`` goes; :meth:`chat_url` unless the URL names the
        model or the mode (Gemini's ``models/{model}:streamGenerateContent``, Azure's
        deployments)."""
        return self.chat_url()

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The upstream body for a chat call: the wire module's, unless a server needs less."""
        return self.wire.build_request(request, stream=stream)

    def auth_headers(self) -> dict[str, str]:
        """The headers for every request (raise :class:`AuthError` if a key is required)."""
        return dict(self.settings.headers)

    def request_headers(self) -> dict[str, str]:
        """:meth:`auth_headers`, with an OAuth access token as the bearer credential.

        The one place a credential is applied: an access token is an RFC 6750
        bearer token whatever the wire format's own key header (Anthropic's
        ``x-api-key``, say), so adapters need no OAuth code of their own.
        """
        headers = self.auth_headers()
        if self.settings.auth == "oauth" and self.settings.api_key:
            headers.pop(self.key_header, None)
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    def hint_for(self, model: str | None) -> str:
        """What to check when the server cannot be reached (for a call to ``model``)."""
        return self.hint

    def _errors(self, url: str, model: str | None) -> AbstractContextManager[None]:
        settings = self.settings
        # The boundary itself, not upstream_errors(): one call less on every request.
        return _UpstreamErrors(
            url, settings.name, model, self.base_url, settings.timeout, lambda: self.hint_for(model)
        )

    def refine_error(self, error: ModelportError, model: str | None) -> ModelportError:
        """A hook to make an upstream error more helpful; the default returns it as is."""
        return error

    def _check(
        self, status: int, body: bytes, headers: Mapping[str, str], model: str | None
    ) -> None:
        if status < 300:
            return
        if status < 400:
            # Following a redirect could hand the key to another host, so we never do.
            location = headers.get("location") or "another URL"
            raise UpstreamError(
                f"The server redirected to {redact_url(location)}, and modelport does not follow "
                "redirects (a key must never reach another URL) — set the connection's "
                "`base_url` to the final address",
                status=status,
            )
        raise self.refine_error(self.wire.error_from_response(status, body, headers), model)

    async def list_models(self) -> list[ModelInfo]:
        url = self.models_url()
        with self._errors(url, None):
            response = await self.client.request(
                "GET", url, headers=self.request_headers(), timeout=self.settings.timeout
            )
            self._check(response.status, response.content, response.headers, None)
            return self.wire.decode_models(response.content, self.settings.name)

    def _not_an_answer(self, media_type: str, body: bytes) -> ParseError:
        """The error for a 2xx answer that is a web page or another non-API type."""
        where = self.base_url()
        if media_type in _WEB_PAGES:
            what = "an HTML page"
        else:
            what = f"{media_type or 'a body with no Content-Type'}"
        return ParseError(
            f"{where} answered with {what}, not the API's answer — {self.url_hint} "
            f"(it began: {excerpt(body.strip(), 120)!r})"
        )

    def _json_events(self, content: bytes) -> list[StreamEvent]:
        events = self.wire.decode_response(content)
        if not events:
            raise ParseError(
                f"{self.base_url()} answered with JSON that holds no answer — {self.url_hint} "
                f"(it began: {excerpt(content.strip(), 120)!r})"
            )
        return events

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:  # type: ignore[override]
        url = self.request_url(request.model, stream=True)
        with self._errors(url, request.model):
            headers = self.request_headers()
            body = self.build_body(request, stream=True)
            async with self.client.stream(
                "POST", url, headers=headers, json=body, timeout=self.settings.timeout
            ) as response:
                if response.status >= 300:
                    content = await response.aread()
                    self._check(response.status, content, response.headers, request.model)
                media_type = _media_type(response.headers)
                if media_type in _JSON:
                    # A server that ignored `stream: true` sent the whole answer at once.
                    for event in self._json_events(await response.aread()):
                        yield event
                    return
                if media_type in _WEB_PAGES:
                    raise self._not_an_answer(media_type, await response.aread())
                decoder = self.wire.StreamDecoder()
                seen = False
                head = b""
                async for chunk in response.aiter_bytes():
                    if len(head) < _HEAD:
                        head += chunk[: _HEAD - len(head)]
                    events = decoder.feed(chunk)
                    if events:
                        seen = True
                        # The read's events but its last are followed by more at once.
                        last = events.pop()
                        if events:
                            more_ready.set(True)
                            for event in events:
                                yield event
                            more_ready.set(False)
                        yield last
                try:
                    tail = decoder.close()
                except NetworkError as exc:
                    if seen or _looks_like_a_stream(head):
                        raise
                    # The body ended cleanly with nothing a stream begins with: not a stream
                    # that broke off (whose retry would be billed again) but no stream at all.
                    raise ParseError(
                        f"{self.base_url()} answered without a single stream event "
                        f"(Content-Type {media_type or 'missing'}, body "
                        f"{excerpt(head.strip(), 60)!r}) — {self.url_hint}"
                    ) from exc
                for event in tail:
                    yield event

    async def complete(self, request: ChatRequest) -> ChatResponse:
        url = self.request_url(request.model, stream=False)
        with self._errors(url, request.model):
            headers = self.request_headers()
            body = self.build_body(request, stream=False)
            response = await self.client.request(
                "POST", url, headers=headers, json=body, timeout=self.settings.timeout
            )
            if response.status >= 300:
                self._check(response.status, response.content, response.headers, request.model)
            media_type = _media_type(response.headers)
            if media_type in _WEB_PAGES:
                raise self._not_an_answer(media_type, response.content)
            if media_type == "text/event-stream":
                # A server that streams whatever it was asked: decode the stream instead.
                decoder = self.wire.StreamDecoder()
                events = [*decoder.feed(response.content), *decoder.close()]
                return aggregate(events, model=request.model, id=getattr(decoder, "id", None))
            decode = getattr(self.wire, "decode_chat_response", None)
            if decode is not None:
                # One decode, straight into the response (no events to fold back).
                return decode(response.content, model=request.model)  # type: ignore[no-any-return]
            events = self._json_events(response.content)
            return aggregate(events, model=request.model, id=_response_id(response.content))

    async def post_json(self, url: str, body: dict[str, Any], model: str | None) -> bytes:
        """One plain JSON request (embeddings): the answer's body, or the mapped error."""
        with self._errors(url, model):
            response = await self.client.request(
                "POST",
                url,
                headers=self.request_headers(),
                json=body,
                timeout=self.settings.timeout,
            )
            self._check(response.status, response.content, response.headers, model)
            media_type = _media_type(response.headers)
            if media_type in _WEB_PAGES:
                raise self._not_an_answer(media_type, response.content)
            return response.content

    async def embed_batches(
        self,
        request: EmbeddingRequest,
        calls: list[tuple[str, dict[str, Any]]],
        decode: Callable[[bytes], Any],
    ) -> EmbeddingResponse:
        """Post each ``(url, body)`` in turn; the vectors of all, checked against the inputs."""
        vectors: list[list[float]] = []
        tokens = 0
        for url, body in calls:
            embedded = decode(await self.post_json(url, body, request.model))
            vectors.extend(embedded.vectors)
            tokens += embedded.usage.input_tokens
        if len(vectors) != len(request.input):
            raise ParseError(
                f"{self.base_url()} answered {len(vectors)} embeddings for "
                f"{len(request.input)} inputs",
                connection=self.settings.name,
                model=request.model,
            )
        return EmbeddingResponse(
            model=request.model, embeddings=vectors, usage=Usage(input_tokens=tokens)
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()


#: Content types that hold one whole JSON answer.
_JSON = frozenset({"application/json", "text/json"})
#: Content types no API answers with: a login page, a proxy's error page, a wrong URL.
_WEB_PAGES = frozenset({"text/html", "application/xhtml+xml"})


#: How much of a streamed body is kept to tell a stream that broke off from no stream.
_HEAD = 64
#: How an SSE or NDJSON body begins.
_STREAM_STARTS = (b"data:", b"event:", b":", b"id:", b"retry:", b"{")


def _looks_like_a_stream(head: bytes) -> bool:
    return head.lstrip().startswith(_STREAM_STARTS)


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").partition(";")[0].strip().lower()


def _response_id(body: bytes) -> str | None:
    try:
        return msgspec.json.decode(body, type=_ResponseId).id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
