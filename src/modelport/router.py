"""The router: a model address → a connection, its provider and the bare model id.

::

    router = Router(load_config())
    async for event in router.stream(ChatRequest(model="local/llama3.1:8b", messages=...)):
        ...

Settings resolve per call, first match wins:

1. the call's own overrides (``api_key``, ``base_url``, ``timeout``,
   ``max_retries``, ``headers``);
2. the connection's table in ``config.toml``;
3. the environment (``MODELPORT_BASE_URL``, ``MODELPORT_API_KEY``);
4. the connection's preset (:data:`modelport.config.PRESETS`);
5. built-in defaults: timeout 60 s, 2 retries — 1 for a server on this machine,
   which fails the same way the second time.

The key follows its own ladder: override, the keyring (or key file), the
variable ``api_key_env`` names, the vendor's usual variable (``OPENAI_API_KEY``
only for the ``openai`` connection *and* OpenAI's URL: a key is never sent to
another connection's URL), ``MODELPORT_API_KEY``.

Every stream is wrapped in retries (:mod:`modelport.providers._retry`) and,
with a ledger, in usage tracking. Fallbacks happen only where configured under
``[fallbacks]``, and each one is logged.

Providers that exist only while something runs — plugins — come from an
optional :class:`ProviderSource` (``Router(provider_source=plugin_host)``). It is
started once, on the first call that needs it: an address whose connection is
``compat = "plugin:…"`` or neither configured nor a preset, or a listing of
every model. Calls to configured connections never wait for it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import msgspec

from modelport.addresses import resolve_address, split_address
from modelport.aggregate import Aggregator
from modelport.config import PRESETS, Config, ConnectionConfig, load_config
from modelport.errors import ConfigError, ModelNotFoundError, ModelportError, PluginError
from modelport.events import StreamEvent
from modelport.providers import ConnectionSettings, Provider, ProviderFactory, load_factory
from modelport.providers._retry import RetryingProvider
from modelport.types import ChatRequest, ChatResponse, ModelInfo, ModelPrices

__all__ = [
    "ConnectionModels",
    "ProviderSource",
    "ProviderSourceFactory",
    "Route",
    "Router",
    "UsageTracker",
    "plugin_host",
]

logger = logging.getLogger("modelport.router")

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
LOCAL_MAX_RETRIES = 1
_PLUGIN_PREFIX = "plugin:"
# A plugin host stops each child within a few seconds; past this, stop waiting.
_SOURCE_CLOSE_TIMEOUT = 10.0


@runtime_checkable
class UsageTracker(Protocol):
    """What the router needs from the usage ledger: wrap a stream, pass events through."""

    def track(
        self,
        events: AsyncIterator[StreamEvent],
        *,
        connection: str,
        model: str,
        prices: ModelPrices | None,
        api: str = "python",
        request_id: str | None = None,
    ) -> AsyncIterator[StreamEvent]: ...


@runtime_checkable
class ProviderSource(Protocol):
    """Providers that appear at run time: started on first need, closed with the router.

    :meth:`ensure_started` registers providers into the router (through
    :meth:`Router.register_provider`); :class:`~modelport.plugins.host.PluginHost`
    is one.
    """

    async def ensure_started(self) -> None: ...

    async def aclose(self) -> None: ...


#: Builds a router's provider source; called once, with the router, on first need.
ProviderSourceFactory = Callable[["Router"], ProviderSource]


def plugin_host(router: Router) -> ProviderSource:
    """The usual provider source: a plugin host over the shipped, home and project folders."""
    from modelport.plugins.host import PluginHost

    return PluginHost.from_config(router, router.config)


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    """Where an address leads: the connection, the bare model id, the provider, its settings."""

    connection: str
    model: str
    provider: Provider
    settings: ConnectionSettings

    @property
    def address(self) -> str:
        return f"{self.connection}/{self.model}"


@dataclass(frozen=True, slots=True)
class _Attribution:
    """Who made a call, for the ledger: the front end and its request id."""

    api: str
    request_id: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionModels:
    """One connection's answer to "which models?": its models, or the error it gave."""

    connection: str
    models: list[ModelInfo]
    error: ModelportError | None = None


@dataclass(slots=True)
class _Registered:
    name: str
    provider: Provider | None
    factory: ProviderFactory | None
    models: list[ModelInfo] | None


def is_local_url(url: str | None) -> bool:
    """Whether ``url`` points at this machine (``localhost``, loopback addresses)."""
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _same_url(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.rstrip("/") == b.rstrip("/")


class Router:
    """Routes requests to providers; see the module docstring for the settings ladder.

    ``config`` defaults to :func:`modelport.config.load_config`. ``env``
    defaults to ``os.environ``, read at each call. ``sleep`` waits between
    retries (tests pass one that records the delays). ``provider_source``
    builds the source of run-time providers (:func:`plugin_host` for plugins),
    started on first need. Providers are built once per (connection, settings)
    and reused so HTTP connections are pooled; a router belongs to one event
    loop, and :meth:`aclose` closes what it built and its provider source.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        ledger: UsageTracker | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        provider_source: ProviderSourceFactory | None = None,
    ) -> None:
        self.config = config if config is not None else load_config()
        self.ledger = ledger
        self._env = env
        self._sleep = sleep
        self._source_factory = provider_source
        self._source: ProviderSource | None = None
        self._source_started = False
        self._source_lock: asyncio.Lock | None = None
        # (registered provider it came from, or "", connection, encoded settings) → provider
        self._providers: dict[tuple[str, str, bytes], Provider] = {}
        self._registered: dict[str, _Registered] = {}
        self._keys: dict[str, str | None] = {}
        self._seen_prices: dict[tuple[str, str], ModelPrices] = {}

    @property
    def env(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    # --- connections ------------------------------------------------------

    def connection_names(self) -> list[str]:
        """Configured connections and registered providers, sorted (presets left out)."""
        return sorted({*self.config.connections, *self._registered})

    def _connection_config(self, name: str) -> ConnectionConfig:
        if name in self._registered and name not in self.config.connections:
            # A registered provider wins over a preset of the same name: presets are defaults.
            return ConnectionConfig(compat=f"{_PLUGIN_PREFIX}{name}")
        found = self.config.connection(name)
        if found is not None:
            return found
        configured = ", ".join(self.connection_names()) or "none"
        presets = ", ".join(sorted(PRESETS))
        plugins = (
            " No running plugin registered it either (see `modelport plugins list`)."
            if self._source_factory is not None
            else ""
        )
        raise ModelNotFoundError(
            f"There is no connection named {name!r}. Configured: {configured}. "
            f"Ready-made: {presets}. Add it under [connections.{name}] in config.toml.{plugins}",
            connection=name,
        )

    def settings_for(
        self,
        connection: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ConnectionSettings:
        """The settings one call to ``connection`` uses, after the precedence ladder."""
        table = self._connection_config(connection)
        configured = self.config.connections.get(connection)
        preset = PRESETS.get(connection)
        compat = table.compat or "openai"
        url = (
            base_url
            or (configured.base_url if configured else None)
            or self.env.get("MODELPORT_BASE_URL")
            or table.base_url
        )
        if compat == "openai" and not url:
            raise ConfigError(
                f"Connection {connection!r} has no base_url. Set base_url under "
                f"[connections.{connection}] (for example 'http://localhost:8000/v1').",
                connection=connection,
            )
        local = is_local_url(url) or (compat == "ollama" and url is None)
        if max_retries is None:
            max_retries = table.max_retries
        if max_retries is None:
            max_retries = LOCAL_MAX_RETRIES if local else DEFAULT_MAX_RETRIES
        return ConnectionSettings(
            name=connection,
            compat=compat,
            base_url=url,
            api_key=api_key or self._key_for(connection, table, preset, url),
            timeout=timeout if timeout is not None else (table.timeout or DEFAULT_TIMEOUT),
            max_retries=max_retries,
            headers={**table.headers, **(headers or {})},
            options=dict(table.options),
        )

    def _key_for(
        self,
        connection: str,
        table: ConnectionConfig,
        preset: ConnectionConfig | None,
        url: str | None,
    ) -> str | None:
        stored = self._stored_key(connection)
        if stored:
            return stored
        if table.api_key_env:
            value = self.env.get(table.api_key_env)
            if value:
                return value
        # The vendor's own variable only where the call goes to that vendor.
        if (
            preset is not None
            and preset.api_key_env
            and table.compat == preset.compat
            and (url is None or _same_url(url, preset.base_url))
        ):
            value = self.env.get(preset.api_key_env)
            if value:
                return value
        return self.env.get("MODELPORT_API_KEY") or None

    def _stored_key(self, connection: str) -> str | None:
        # Keyring lookups can be slow (D-Bus, a locked keychain); once per router is enough.
        if connection not in self._keys:
            from modelport.auth.keys import get_key

            try:
                self._keys[connection] = get_key(connection)
            except ConfigError as exc:
                logger.warning("cannot read stored keys: %s", exc)
                self._keys[connection] = None
        return self._keys[connection]

    def forget_keys(self) -> None:
        """Drop cached stored keys (after ``modelport keys set`` in a running gateway)."""
        self._keys.clear()

    # --- providers registered at run time ----------------------------------

    def register_provider(
        self,
        name: str,
        provider: Provider | ProviderFactory,
        models: list[ModelInfo] | None = None,
    ) -> None:
        """Make ``provider`` addressable as ``<name>/<model>`` with no config.

        ``provider`` is a ready provider, or a factory called with the settings
        of connection ``name`` (so ``[connections.<name>]`` values and keys reach
        it). ``models``, when given, is what :meth:`list_models` reports for it.
        A name that shadows a configured connection (other than one with
        ``compat = "plugin:<name>"``) or another registered provider raises
        ConfigError.
        """
        if not name or "/" in name:
            raise ConfigError(f"A provider name cannot be empty or contain '/': {name!r}")
        if name in self._registered:
            raise ConfigError(f"A provider named {name!r} is already registered.", connection=name)
        configured = self.config.connections.get(name)
        if configured is not None and configured.compat not in (f"{_PLUGIN_PREFIX}{name}", name):
            raise ConfigError(
                f"Provider {name!r} would shadow the configured connection of the same name. "
                f"Rename [connections.{name}] or set its compat to 'plugin:{name}'.",
                connection=name,
            )
        is_factory = isinstance(provider, type) or not isinstance(provider, Provider)
        self._registered[name] = _Registered(
            name=name,
            provider=None if is_factory else provider,  # type: ignore[arg-type]
            factory=provider if is_factory else None,  # type: ignore[arg-type]
            models=list(models) if models is not None else None,
        )

    def unregister_provider(self, name: str) -> None:
        """Forget a registered provider and the providers built from it (unknown names: no-op)."""
        if self._registered.pop(name, None) is None:
            return
        for key in [key for key in self._providers if key[0] == name]:
            del self._providers[key]

    def _registered_for(self, connection: str, compat: str) -> _Registered | None:
        if compat.startswith(_PLUGIN_PREFIX):
            provider_id = compat.removeprefix(_PLUGIN_PREFIX)
            found = self._registered.get(provider_id)
            if found is None:
                raise PluginError(
                    f"Connection {connection!r} uses provider {provider_id!r}, which no running "
                    "plugin has registered. Check `modelport plugins` for its state.",
                    plugin=provider_id,
                    connection=connection,
                )
            return found
        return self._registered.get(compat)

    # --- the provider source -----------------------------------------------

    @property
    def provider_source(self) -> ProviderSource | None:
        """The run-time provider source, once a call needed it (``None`` before)."""
        return self._source

    def needs_provider_source(self, connection: str) -> bool:
        """Whether ``connection`` can only come from the provider source (not started yet)."""
        if self._source_factory is None or self._source_started:
            return False
        if connection in self._registered:
            return False
        configured = self.config.connections.get(connection)
        if configured is None:
            return connection not in PRESETS
        compat = configured.compat or ""
        return compat.startswith(_PLUGIN_PREFIX) and (
            compat.removeprefix(_PLUGIN_PREFIX) not in self._registered
        )

    async def load_providers(self, connection: str | None = None) -> None:
        """Start the provider source if ``connection`` needs it (``None``: in any case).

        The source is built and started once per router; concurrent callers
        wait for the same start. Without a ``provider_source`` this does nothing.
        """
        if self._source_factory is None or self._source_started:
            return
        if connection is not None and not self.needs_provider_source(connection):
            return
        if self._source_lock is None:
            self._source_lock = asyncio.Lock()
        async with self._source_lock:
            if self._source_started:
                return
            if self._source is None:
                self._source = self._source_factory(self)
            await self._source.ensure_started()
            self._source_started = True

    # --- resolving --------------------------------------------------------

    def resolve(
        self,
        address: str | None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Route:
        """Where ``address`` (an address, an alias, or ``None`` for the default) leads."""
        connection, model = split_address(resolve_address(address, self.config, env=self.env))
        settings = self.settings_for(
            connection,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )
        return Route(
            connection=connection,
            model=model,
            provider=self._provider(settings),
            settings=settings,
        )

    def _provider(self, settings: ConnectionSettings) -> Provider:
        registered = self._registered_for(settings.name, settings.compat)
        if registered is not None and registered.provider is not None:
            return registered.provider
        source = registered.name if registered is not None else ""
        key = (source, settings.name, msgspec.msgpack.encode(settings))
        provider = self._providers.get(key)
        if provider is None:
            if registered is not None and registered.factory is not None:
                provider = registered.factory(settings)
            else:
                provider = load_factory(settings.compat)(settings)
            self._providers[key] = provider
        return provider

    def _fallbacks(self, address: str | None, resolved: str) -> list[str]:
        fallbacks = self.config.fallbacks
        return list(fallbacks.get(address or "", fallbacks.get(resolved, [])))

    # --- calls ------------------------------------------------------------

    def stream(
        self,
        request: ChatRequest,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        headers: Mapping[str, str] | None = None,
        api: str = "python",
        request_id: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream ``request`` (whose ``model`` is an address) through its provider.

        Overrides apply to the requested connection; a configured fallback gets
        only ``timeout`` and ``max_retries``, so a key never travels to another
        connection. ``api`` (the front end: ``python``, ``cli``, ``openai``,
        ``anthropic``) and ``request_id`` are what the ledger records the call under.
        """
        overrides: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": max_retries,
            "headers": headers,
        }
        return self._stream(request, overrides, [], _Attribution(api, request_id))

    async def _stream(
        self,
        request: ChatRequest,
        overrides: dict[str, Any],
        served: list[Route],
        attribution: _Attribution,
    ) -> AsyncIterator[StreamEvent]:
        first = resolve_address(request.model, self.config, env=self.env)
        chain = [first, *self._fallbacks(request.model, first)]
        shared = {k: overrides[k] for k in ("timeout", "max_retries")}
        for position, address in enumerate(chain):
            await self.load_providers(address.partition("/")[0])
            route = self.resolve(address, **(overrides if position == 0 else shared))
            events = self._events(
                route, msgspec.structs.replace(request, model=route.model), attribution
            )
            started = False
            try:
                async for event in events:
                    if not started:
                        started = True
                        served.append(route)
                    yield event
                return
            except ModelportError as error:
                if started or not error.retryable or position == len(chain) - 1:
                    raise
                logger.warning(
                    "%s failed before answering (%s); falling back to %s as configured",
                    route.address,
                    type(error).__name__,
                    chain[position + 1],
                )
            finally:
                close = getattr(events, "aclose", None)
                if close is not None:
                    await close()

    def _events(
        self, route: Route, request: ChatRequest, attribution: _Attribution
    ) -> AsyncIterator[StreamEvent]:
        provider = RetryingProvider(
            route.provider, max_retries=route.settings.max_retries, sleep=self._sleep
        )
        events = provider.stream(request)
        if self.ledger is not None:
            events = self.ledger.track(
                events,
                connection=route.connection,
                model=route.model,
                prices=self.prices_for(route.connection, route.model),
                api=attribution.api,
                request_id=attribution.request_id,
            )
        return events

    async def complete(
        self,
        request: ChatRequest,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        headers: Mapping[str, str] | None = None,
        api: str = "python",
        request_id: str | None = None,
    ) -> ChatResponse:
        """The aggregate of :meth:`stream`; ``model`` is the address that answered."""
        overrides: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": max_retries,
            "headers": headers,
        }
        served: list[Route] = []
        aggregator: Aggregator | None = None
        events = self._stream(request, overrides, served, _Attribution(api, request_id))
        try:
            async for event in events:
                if aggregator is None:
                    aggregator = Aggregator(model=served[0].address)
                aggregator.add(event)
        finally:
            await events.aclose()
        if aggregator is None:
            route = self.resolve(request.model)
            aggregator = Aggregator(model=route.address)
        return aggregator.response()

    # --- models and prices ------------------------------------------------

    async def _models_of(self, connection: str) -> list[ModelInfo]:
        settings = self.settings_for(connection)
        registered = self._registered_for(connection, settings.compat)
        if registered is not None and registered.models is not None:
            models = list(registered.models)
        else:
            provider = RetryingProvider(
                self._provider(settings), max_retries=settings.max_retries, sleep=self._sleep
            )
            models = await provider.list_models()
        for model in models:
            self._seen_prices[(connection, model.id)] = model.prices
        return models

    async def list_models_report(self, connection: str | None = None) -> list[ConnectionModels]:
        """Each configured connection's (and registered provider's) models or error.

        Connections are asked concurrently; one failing does not hide the others.
        """
        await self.load_providers(connection)
        names = [connection] if connection is not None else self.connection_names()
        results = await asyncio.gather(*(self._report_one(name) for name in names))
        return list(results)

    async def _report_one(self, connection: str) -> ConnectionModels:
        try:
            return ConnectionModels(connection=connection, models=await self._models_of(connection))
        except ModelportError as error:
            return ConnectionModels(connection=connection, models=[], error=error)
        except Exception as exc:  # a third-party provider's bug must not hide the others
            error = ModelportError(f"{type(exc).__name__}: {exc}", connection=connection)
            error.__cause__ = exc
            return ConnectionModels(connection=connection, models=[], error=error)

    async def list_models(self, connection: str | None = None) -> list[ModelInfo]:
        """Models of one connection (errors raise), or of all configured ones.

        Across all connections, one that fails is logged and left out; if every
        one fails, the first error is raised.
        """
        if connection is not None:
            await self.load_providers(connection)
            return await self._models_of(connection)
        report = await self.list_models_report()
        failures = [entry for entry in report if entry.error is not None]
        for entry in failures:
            logger.warning("listing models of %s failed: %s", entry.connection, entry.error)
        if report and len(failures) == len(report):
            assert failures[0].error is not None
            raise failures[0].error
        return [model for entry in report for model in entry.models]

    def prices_for(self, connection: str, model: str) -> ModelPrices | None:
        """Prices from config, else a registered provider's models, else models seen listed."""
        configured = self.config.connections.get(connection)
        if configured is not None and model in configured.prices:
            return configured.prices[model]
        registered = self._registered.get(connection)
        if registered is not None and registered.models:
            for info in registered.models:
                if info.id == model:
                    return info.prices
        return self._seen_prices.get((connection, model))

    async def aclose(self) -> None:
        """Close the provider source and every provider this router built.

        Registered providers belong to their owner (the source closes its own).
        """
        source, self._source = self._source, None
        self._source_started = False
        if source is not None:
            try:
                await asyncio.wait_for(source.aclose(), _SOURCE_CLOSE_TIMEOUT)
            except Exception as exc:  # the providers below still need closing
                logger.warning("closing the provider source failed: %r", exc)
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            close = getattr(provider, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # closing the rest matters more than this one
                    logger.warning("closing a provider failed: %s", exc)
