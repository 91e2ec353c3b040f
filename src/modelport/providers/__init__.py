"""The Provider protocol, connection settings and the registry of adapters.

A provider knows how to *reach* a service (base URL, auth, HTTP client); the
modules in :mod:`modelport.wire` know how to *speak* its format. Built-in
adapters come in through the same door as third-party ones: a name mapped to
``"module:attr"`` and imported only when a connection uses it.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, runtime_checkable

import msgspec

from modelport._redact import remember_secret
from modelport.aggregate import aaggregate
from modelport.config import OAuthConfig
from modelport.errors import ConfigError
from modelport.events import StreamEvent
from modelport.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
)

__all__ = [
    "BUILTIN_PROVIDERS",
    "DEFAULT_RETRY_BASE_DELAY",
    "DEFAULT_RETRY_MAX_DELAY",
    "BaseProvider",
    "ConnectionSettings",
    "Embedder",
    "Provider",
    "ProviderFactory",
    "load_factory",
    "offers_embeddings",
]

#: Backoff before the first retry, and the most any retry waits (seconds; before jitter).
DEFAULT_RETRY_BASE_DELAY = 0.5
DEFAULT_RETRY_MAX_DELAY = 8.0

#: Entry-point group through which Python packages add provider factories.
ENTRY_POINT_GROUP = "modelport.providers"

#: compat name → "module:attr" of a :data:`ProviderFactory`.
BUILTIN_PROVIDERS: dict[str, str] = {
    "openai": "modelport.providers.openai_compat:OpenAICompatProvider",
    "anthropic": "modelport.providers.anthropic:AnthropicProvider",
    "ollama": "modelport.providers.ollama:OllamaProvider",
    "gemini": "modelport.providers.gemini:GeminiProvider",
    "azure": "modelport.providers.azure:AzureProvider",
    "openai-responses": "modelport.providers.openai_responses:OpenAIResponsesProvider",
}


#: Header names whose values are credentials (``Authorization``, ``api-key``, ``X-Auth-Token`` …).
_SECRET_HEADER = re.compile(r"(?i)auth|key|token|secret|cookie")


class ConnectionSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The resolved settings of one connection (after the precedence ladder).

    ``api_key`` is the secret itself; it never appears in ``repr()``.
    ``api_key_env`` is the environment variable the settings ladder reads the
    key from (a name, not a secret, so ``repr()`` shows it): the connection's
    ``api_key_env``, else the vendor's usual variable where that applies, else
    ``None``; providers name it in their "no key" message. ``temperature``
    and ``max_tokens`` are the connection's defaults, which the router puts on
    a request that sets neither. ``retry_base_delay`` and ``retry_max_delay``
    (seconds) bound the backoff between retries. ``options`` holds every other
    key of the connection's config table (provider-specific settings, a
    plugin's ``configFields`` values). ``auth`` is how the call
    authenticates: ``"key"``, or ``"oauth"``, where ``api_key`` holds the
    current OAuth access token (sent as ``Authorization: Bearer``, whatever the
    adapter's own key header) and ``oauth`` says where the login lives.
    """

    name: str
    compat: str
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    timeout: float = 60.0
    max_retries: int = 2
    retry_base_delay: float = DEFAULT_RETRY_BASE_DELAY
    retry_max_delay: float = DEFAULT_RETRY_MAX_DELAY
    temperature: float | None = None
    max_tokens: int | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    auth: str = "key"
    oauth: OAuthConfig | None = None

    def __post_init__(self) -> None:
        # Every key the process holds is masked wherever an error is written, whatever
        # its shape (an upstream may echo it in a 401 or an in-band error).
        if self.api_key:
            remember_secret(self.api_key)
        for name, value in self.headers.items():
            if _SECRET_HEADER.search(name):
                remember_secret(value)
                remember_secret(value.partition(" ")[2])  # "Bearer <token>"

    def __repr__(self) -> str:
        key = "'***'" if self.api_key else "None"
        return (
            f"ConnectionSettings(name={self.name!r}, compat={self.compat!r}, "
            f"base_url={self.base_url!r}, api_key={key}, api_key_env={self.api_key_env!r}, "
            f"timeout={self.timeout!r}, max_retries={self.max_retries!r}, auth={self.auth!r})"
        )

    __str__ = __repr__


@runtime_checkable
class Provider(Protocol):
    """What every adapter implements. ``request.model`` is the bare model id.

    A provider that can embed also has ``async def embed(request:
    EmbeddingRequest) -> EmbeddingResponse`` (:class:`Embedder`); it is
    optional, so a provider without it is still a provider, and a call for
    embeddings to it fails with a clear error (:func:`offers_embeddings`).
    """

    async def list_models(self) -> list[ModelInfo]: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]: ...

    async def complete(self, request: ChatRequest) -> ChatResponse: ...


@runtime_checkable
class Embedder(Protocol):
    """The optional part of :class:`Provider`: turning texts into vectors."""

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse: ...


def offers_embeddings(provider: object) -> bool:
    """Whether ``provider`` has an ``embed`` method (see :class:`Provider`)."""
    return callable(getattr(provider, "embed", None))


ProviderFactory = Callable[[ConnectionSettings], Provider]


class BaseProvider:
    """Convenience base: ``complete`` aggregates ``stream``; ``aclose`` does nothing."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings

    async def list_models(self) -> list[ModelInfo]:
        return []

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError

    async def complete(self, request: ChatRequest) -> ChatResponse:
        return await aaggregate(self.stream(request), model=request.model)

    async def aclose(self) -> None:
        return None


def _import_string(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def load_factory(compat: str) -> ProviderFactory:
    """The factory for a compat name: built-ins first, then installed entry points."""
    if compat in BUILTIN_PROVIDERS:
        return _import_string(BUILTIN_PROVIDERS[compat])
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == compat:
            try:
                return entry_point.load()
            except Exception as exc:  # a broken plugin must name itself, not crash us
                raise ConfigError(
                    f"The provider package for {compat!r} failed to load "
                    f"({entry_point.value}): {exc}"
                ) from exc
    known = ", ".join(sorted(BUILTIN_PROVIDERS))
    close = difflib.get_close_matches(compat, sorted(BUILTIN_PROVIDERS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"Unknown compat {compat!r}.{hint} Use one of {known}, 'plugin:<provider id>', "
        "or install a package that provides it."
    )
