"""Any provider of an OAuth connection: a fresh token per call, one refresh and retry on 401.

:class:`OAuthProvider` wraps the provider a connection would use with a key.
Before each call it asks the connection's
:class:`~modelport.auth.session.OAuthSession` for a token valid now and
hands it to ``build(token)`` — a built-in adapter made with that token as its
bearer credential, or a plugin provider whose ``providerConfig`` carries it —
so the adapters themselves know nothing of OAuth. When the upstream answers
401 before the first event has reached the caller, the session renews the
login (once, however many calls were refused together) and the call is sent
once more; after an event has gone out, a failure is the caller's to see, as
with every retry (DESIGN.md, "Retries and cancellation").

The router wraps built-in adapters and provider packages with it; the plugin
host wraps plugin providers that ask for OAuth. Both go through the same
sessions, so a token is refreshed in one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from modelport.auth.oauth import login_hint
from modelport.auth.session import OAuthSession
from modelport.errors import AuthError
from modelport.events import StreamEvent
from modelport.providers import Provider
from modelport.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
)

__all__ = ["OAuthProvider", "is_token_rejection"]

_T = TypeVar("_T")


def is_token_rejection(error: BaseException) -> bool:
    """Whether ``error`` is the upstream refusing the credentials (HTTP 401)."""
    return isinstance(error, AuthError) and error.status == 401


class OAuthProvider:
    """``build(token)`` behind a fresh access token per call (see the module docstring).

    ``key_provider``, when given, is asked at each call for the provider to use
    with a key instead (the dual mode of a plugin: its key when one is set,
    else OAuth); it returns ``None`` when there is no key. ``embeds`` says
    whether the providers ``build`` makes offer embeddings: only then does this
    one have an ``embed`` method (:func:`~modelport.providers.offers_embeddings`).
    """

    def __init__(
        self,
        session: OAuthSession,
        build: Callable[[str], Provider],
        *,
        key_provider: Callable[[], Provider | None] | None = None,
        embeds: bool = False,
    ) -> None:
        self.session = session
        self._build = build
        self._key_provider = key_provider
        self._inner: tuple[str, Provider] | None = None
        if embeds:
            self.embed = self._embed

    def _for(self, token: str) -> Provider:
        # One provider per token, rebuilt only when the token changes.
        inner = self._inner
        if inner is None or inner[0] != token:
            inner = self._inner = (token, self._build(token))
        return inner[1]

    def _keyed(self) -> Provider | None:
        return self._key_provider() if self._key_provider is not None else None

    async def _call(self, call: Callable[[Provider], Awaitable[_T]]) -> _T:
        keyed = self._keyed()
        if keyed is not None:
            return await call(keyed)
        token = await self.session.access_token()
        try:
            return await call(self._for(token))
        except AuthError as error:
            if not is_token_rejection(error):
                raise
        token = await self.session.after_rejection(token)
        try:
            return await call(self._for(token))
        except AuthError as error:
            raise self._refused_again(error) from None

    async def list_models(self) -> list[ModelInfo]:
        return await self._call(lambda provider: provider.list_models())

    async def complete(self, request: ChatRequest) -> ChatResponse:
        return await self._call(lambda provider: provider.complete(request))

    async def _embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return await self._call(lambda provider: provider.embed(request))  # type: ignore[attr-defined]

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        keyed = self._keyed()
        if keyed is not None:
            async for event in _closing(keyed.stream(request)):
                yield event
            return
        token = await self.session.access_token()
        events = self._for(token).stream(request)
        started = False
        try:
            async for event in events:
                started = True
                yield event
            return
        except AuthError as error:
            if started or not is_token_rejection(error):
                raise
        finally:
            await _aclose(events)
        token = await self.session.after_rejection(token)
        try:
            async for event in _closing(self._for(token).stream(request)):
                yield event
        except AuthError as error:
            raise self._refused_again(error) from None

    def _refused_again(self, error: AuthError) -> AuthError:
        if not is_token_rejection(error):
            return error
        name = self.session.name
        error.message = (
            f"{error.message} — the upstream refused the renewed login of {name!r} too; "
            f"{login_hint(name)}"
        )
        error.args = (error.message,)
        return error

    async def aclose(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            await _aclose(inner[1])


async def _closing(events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    try:
        async for event in events:
            yield event
    finally:
        await _aclose(events)


async def _aclose(closeable: Any) -> None:
    close = getattr(closeable, "aclose", None)
    if close is not None:
        await close()
