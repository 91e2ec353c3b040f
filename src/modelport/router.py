"""The router: a model address → a connection, its provider and the bare model id.

::

    router = Router(load_config())
    async for event in router.stream(ChatRequest(model="local/llama3.1:8b", messages=...)):
        ...

Settings resolve per call, first match wins:

1. the call's own overrides (``api_key``, ``base_url``, ``timeout``,
   ``max_retries``, ``headers``);
2. the connection's table in ``config.toml``;
3. the connection's preset (:data:`modelport.config.PRESETS`);
4. the environment: ``MODELPORT_BASE_URL`` only for a connection with no URL
   of its own (neither configured nor preset), so it never redirects
   ``openai/…`` or ``anthropic/…`` elsewhere;
5. built-in defaults: timeout 60 s, 2 retries — 1 for a server on this machine,
   which fails the same way the second time.

A key goes only to a URL it was paired with. The ladder: the call's
``api_key``; the stored key (keyring or key file), then the variable
``api_key_env`` names, then the vendor's usual variable (``OPENAI_API_KEY``
only for the ``openai`` connection *and* OpenAI's URL); ``MODELPORT_API_KEY``
last. The stored key and ``api_key_env`` are used only when the call goes to
the connection's own URL — its configured ``base_url``, its preset's, or the
provider's default when it has neither — so a per-call ``base_url`` elsewhere
(or ``MODELPORT_BASE_URL``) gets none of them. ``MODELPORT_API_KEY`` pairs
with ``MODELPORT_BASE_URL``: it is used when the URL came from that variable,
when the call goes to a ``base_url`` configured explicitly in ``config.toml``,
or for a plugin's (or provider package's) connection with no URL at all —
never for a preset's URL (``openrouter/…`` does not receive it) nor for a
per-call ``base_url``.

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
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import msgspec

from modelport.addresses import resolve_address, split_address
from modelport.aggregate import response_events
from modelport.config import PRESETS, Config, ConnectionConfig, check_base_url, load_config
from modelport.errors import ConfigError, ModelNotFoundError, ModelportError, PluginError
from modelport.events import StreamEvent
from modelport.providers import (
    BUILTIN_PROVIDERS,
    ConnectionSettings,
    Provider,
    ProviderFactory,
    load_factory,
)
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
    #: The provider was built for this call's own ``api_key``/``headers`` and is not
    #: kept by the router: whoever resolved the route closes it after the call
    #: (:meth:`Router.stream` and :meth:`Router.complete` do).
    ephemeral: bool = False

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
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # a malformed URL is nobody's machine; check_base_url names it
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _same_url(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.rstrip("/") == b.rstrip("/")


#: Where a call's URL came from: the call, config.toml, the preset, MODELPORT_BASE_URL,
#: or nowhere (the provider's default).
_UrlSource = Literal["call", "config", "preset", "env", "default"]

_URL_WHERE: dict[str, str] = {
    "call": "the call's base_url",
    "config": "its base_url in config.toml",
    "preset": "its preset",
    "env": "MODELPORT_BASE_URL",
    "default": "",
}


def _generic_key_allowed(
    compat: str, url: str | None, url_source: _UrlSource, configured_url: str | None
) -> bool:
    """Whether ``MODELPORT_API_KEY`` may go with this call (see the module docstring)."""
    if url_source in ("env", "config"):
        return True
    if url_source == "call":
        # Only back to the connection's explicitly configured URL, never a preset's.
        return _same_url(url, configured_url)
    if url_source == "default":
        # No URL at all: a plugin or provider package decides where it goes. A built-in
        # adapter's default is a vendor's (api.anthropic.com), not the generic key's server.
        return compat not in BUILTIN_PROVIDERS
    return False


class Router:
    """Routes requests to providers; see the module docstring for the settings ladder.

    ``config`` defaults to :func:`modelport.config.load_config`. ``env``
    defaults to ``os.environ``, read at each call. ``sleep`` waits between
    retries (tests pass one that records the delays). ``provider_source``
    builds the source of run-time providers (:func:`plugin_host` for plugins),
    started on first need. Providers are built once per (connection, settings)
    and reused so HTTP connections are pooled — except for a call with its own
    ``api_key`` or ``headers``, whose provider lives for that call alone (over
    the connection's shared HTTP pool). A router belongs to one event loop, and
    :meth:`aclose` closes what it built and its provider source.
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
        # (registered provider it came from, or "", connection, encoded settings) → provider.
        # Only settings without per-call credentials get here (see _provider).
        self._providers: dict[tuple[str, str, bytes], Provider] = {}
        self._registered: dict[str, _Registered] = {}
        self._keys: dict[str, str | None] = {}
        self._seen_prices: dict[tuple[str, str], ModelPrices] = {}
        self._routes_config: Config | None = None
        # address → (what it was resolved from, the route): calls without overrides skip
        # the settings ladder; an entry holds while the config, environment and keys do.
        self._routes: dict[str | None, tuple[tuple[object, ...], Route]] = {}
        # One pooled HTTP client per connection, shared by providers built per call.
        self._clients: dict[str, Any] = {}

    @property
    def env(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    # --- connections ------------------------------------------------------

    def connection_names(self) -> list[str]:
        """Configured connections and registered providers, sorted (presets left out)."""
        return sorted({*self.config.connections, *self._registered})

    def _connection_config(self, name: str) -> ConnectionConfig:
        if name in self._registered and name not in self.config.connections:
            # register_provider refuses preset names, so this never hides a preset (whose
            # stored key would then go to whoever registered the name).
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
        configured_url = configured.base_url if configured is not None else None
        url_source: _UrlSource
        if base_url:
            url, url_source = base_url, "call"
        elif table.base_url:
            url = table.base_url
            url_source = "config" if configured_url else "preset"
        elif self.env.get("MODELPORT_BASE_URL"):
            url, url_source = self.env["MODELPORT_BASE_URL"], "env"
        else:
            url, url_source = None, "default"
        if url is not None:
            check_base_url(url, connection=connection, where=_URL_WHERE[url_source])
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
        if not api_key:
            api_key = self._key_for(connection, table, preset, url, url_source, configured_url)
        return ConnectionSettings(
            name=connection,
            compat=compat,
            base_url=url,
            api_key=api_key,
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
        url_source: _UrlSource,
        configured_url: str | None,
    ) -> str | None:
        """The key for a call to ``url``: only one that was paired with that URL.

        See the module docstring for the ladder and the pairing rules.
        """
        compat = table.compat or "openai"
        preset_url = preset.base_url if preset is not None and preset.compat == compat else None
        own_url = url_source in ("config", "preset", "default") or (
            url_source == "call" and (_same_url(url, configured_url) or _same_url(url, preset_url))
        )
        if own_url:
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
                and _same_url(url, preset.base_url)
            ):
                value = self.env.get(preset.api_key_env)
                if value:
                    return value
        if _generic_key_allowed(compat, url, url_source, configured_url):
            return self.env.get("MODELPORT_API_KEY") or None
        return None

    def _stored_key(self, connection: str) -> str | None:
        # Keyring lookups can be slow (D-Bus, a locked keychain); once per router is enough.
        # The async paths read it ahead, off the event loop (_load_key); this is the sync path.
        if connection not in self._keys:
            self._keys[connection] = _read_stored_key(connection)
        return self._keys[connection]

    async def _load_key(self, connection: str) -> None:
        """Read ``connection``'s stored key in a worker thread, once, before a call needs it."""
        if connection not in self._keys:
            value = await asyncio.to_thread(_read_stored_key, connection)
            self._keys.setdefault(connection, value)

    def forget_keys(self) -> None:
        """Drop cached stored keys, so the next call reads them again.

        Call it after a key changed while the router runs (``modelport keys set``
        or ``keys delete`` next to a running gateway, or an admin action that
        stores a key); routes resolved with the old key are dropped too.
        """
        self._keys.clear()
        self._routes.clear()

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
        ``compat = "plugin:<name>"``), a preset (:data:`~modelport.config.PRESETS`;
        its stored key must never reach another provider) or another registered
        provider raises ConfigError.
        """
        if not name or "/" in name:
            raise ConfigError(f"A provider name cannot be empty or contain '/': {name!r}")
        if name in self._registered:
            raise ConfigError(f"A provider named {name!r} is already registered.", connection=name)
        configured = self.config.connections.get(name)
        if name in PRESETS:
            raise ConfigError(
                f"Provider {name!r} would take over the ready-made connection {name!r} "
                "(and its stored key); choose another name.",
                connection=name,
            )
        if configured is not None and configured.compat != f"{_PLUGIN_PREFIX}{name}":
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
        # Only "plugin:<id>" reaches a registered provider: a compat such as "raw" names a
        # built-in adapter or an installed package, never whatever registered that name.
        return None

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
        """Where ``address`` (an address, an alias, or ``None`` for the default) leads.

        With an ``api_key`` or ``headers`` of its own, the route's provider is
        built for this call alone (``Route.ephemeral``): close it after use.
        Without any override the route is remembered until the config, the
        environment it read, the stored keys or the registered providers change.
        """
        overrides = (api_key, base_url, timeout, max_retries, headers)
        if all(value is None for value in overrides):
            return self._remembered_route(address)
        connection, model = split_address(resolve_address(address, self.config, env=self.env))
        settings = self.settings_for(
            connection,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )
        per_call = bool(api_key) or bool(headers)
        return Route(
            connection=connection,
            model=model,
            provider=self._provider(settings, per_call=per_call),
            settings=settings,
            ephemeral=per_call and self._is_ephemeral(settings),
        )

    def _remembered_route(self, address: str | None) -> Route:
        if self._routes_config is not self.config:
            self._routes.clear()
            self._routes_config = self.config
        found = self._routes.get(address)
        if found is not None and found[0] == self._route_stamp(address, found[1].connection):
            return found[1]
        connection, model = split_address(resolve_address(address, self.config, env=self.env))
        settings = self.settings_for(connection)
        route = Route(
            connection=connection,
            model=model,
            provider=self._provider(settings),
            settings=settings,
        )
        self._routes[address] = (self._route_stamp(address, connection), route)
        return route

    def _route_stamp(self, address: str | None, connection: str) -> tuple[object, ...]:
        """What a remembered route was resolved from, beyond the config (a few dict reads)."""
        env = self.env
        configured = self.config.connections.get(connection)
        preset = PRESETS.get(connection)
        key_env = configured.api_key_env if configured is not None else None
        vendor_env = preset.api_key_env if preset is not None else None
        compat = (configured.compat if configured is not None else None) or ""
        return (
            env.get("MODELPORT_MODEL") if not address else None,
            env.get("MODELPORT_BASE_URL"),
            env.get("MODELPORT_API_KEY"),
            env.get(key_env) if key_env else None,
            env.get(vendor_env) if vendor_env else None,
            self._keys.get(connection),
            self._registered.get(connection),
            self._registered.get(compat.removeprefix(_PLUGIN_PREFIX)) if compat else None,
        )

    def _is_ephemeral(self, settings: ConnectionSettings) -> bool:
        registered = self._registered_for(settings.name, settings.compat)
        return registered is None or registered.provider is None

    def _provider(self, settings: ConnectionSettings, *, per_call: bool = False) -> Provider:
        registered = self._registered_for(settings.name, settings.compat)
        if registered is not None and registered.provider is not None:
            return registered.provider
        if per_call:
            # A per-call key or header must not pin a provider (and its HTTP pool) for the
            # router's lifetime: build one for this call, over the connection's shared client.
            return self._build_provider(settings, registered, shared_client=True)
        source = registered.name if registered is not None else ""
        key = (source, settings.name, msgspec.msgpack.encode(settings))
        provider = self._providers.get(key)
        if provider is None:
            provider = self._build_provider(settings, registered, shared_client=False)
            self._providers[key] = provider
        return provider

    def _build_provider(
        self, settings: ConnectionSettings, registered: _Registered | None, *, shared_client: bool
    ) -> Provider:
        if registered is not None and registered.factory is not None:
            return registered.factory(settings)
        factory = load_factory(settings.compat)
        if shared_client and BUILTIN_PROVIDERS.get(settings.compat, "").startswith(
            "modelport.providers."
        ):
            client = self._clients.get(settings.name)
            if client is None:
                from modelport.providers._http import HttpClient

                client = self._clients[settings.name] = HttpClient(timeout=settings.timeout)
            return factory(settings, client=client)  # type: ignore[call-arg]
        return factory(settings)

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
        return self._stream(request, overrides, _Attribution(api, request_id))

    async def _routes_for(
        self, request: ChatRequest, overrides: dict[str, Any]
    ) -> AsyncIterator[tuple[Route, str | None]]:
        """Each route of the request's chain (the address, then configured fallbacks).

        The second item is the address that comes next (``None`` for the last).
        Stored keys are read off the event loop; a provider built for this call
        alone is closed after it.
        """
        first = resolve_address(request.model, self.config, env=self.env)
        chain = [first, *self._fallbacks(request.model, first)]
        shared = {k: overrides[k] for k in ("timeout", "max_retries")}
        for position, address in enumerate(chain):
            connection = address.partition("/")[0]
            await self.load_providers(connection)
            await self._load_key(connection)
            route = self.resolve(address, **(overrides if position == 0 else shared))
            try:
                yield route, chain[position + 1] if position + 1 < len(chain) else None
            finally:
                if route.ephemeral:
                    await _aclose(route.provider)

    async def _stream(
        self,
        request: ChatRequest,
        overrides: dict[str, Any],
        attribution: _Attribution,
    ) -> AsyncIterator[StreamEvent]:
        routes = self._routes_for(request, overrides)
        try:
            async for route, next_address in routes:
                events = self._events(
                    route, msgspec.structs.replace(request, model=route.model), attribution
                )
                started = False
                try:
                    async for event in events:
                        started = True
                        yield event
                    return
                except ModelportError as error:
                    if started or not error.retryable or next_address is None:
                        raise
                    _log_fallback(route, error, next_address)
                finally:
                    await _aclose(events)
        finally:
            await routes.aclose()

    def _events(
        self, route: Route, request: ChatRequest, attribution: _Attribution
    ) -> AsyncIterator[StreamEvent]:
        provider = RetryingProvider(
            route.provider, max_retries=route.settings.max_retries, sleep=self._sleep
        )
        return self._tracked(route, provider.stream(request), attribution)

    def _tracked(
        self, route: Route, events: AsyncIterator[StreamEvent], attribution: _Attribution
    ) -> AsyncIterator[StreamEvent]:
        if self.ledger is None:
            return events
        return self.ledger.track(
            events,
            connection=route.connection,
            model=route.model,
            prices=self.prices_for(route.connection, route.model),
            api=attribution.api,
            request_id=attribution.request_id,
        )

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
        """The whole answer at once, from the provider's ``complete`` (one non-streaming
        upstream request where the provider has one); ``model`` is the address that
        answered, ``id`` the upstream's where it gave one.

        Retries, fallbacks and the ledger work as for :meth:`stream`; the ledger
        records the call from the events the response stands for
        (:func:`~modelport.aggregate.response_events`), so both paths record alike.
        """
        overrides: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": max_retries,
            "headers": headers,
        }
        attribution = _Attribution(api, request_id)
        routes = self._routes_for(request, overrides)
        try:
            async for route, next_address in routes:
                try:
                    response = await self._complete_one(
                        route, msgspec.structs.replace(request, model=route.model), attribution
                    )
                except ModelportError as error:
                    if not error.retryable or next_address is None:
                        raise
                    _log_fallback(route, error, next_address)
                    continue
                return msgspec.structs.replace(response, model=route.address)
        finally:
            await routes.aclose()
        raise AssertionError("unreachable: the last route raises or answers")  # pragma: no cover

    async def _complete_one(
        self, route: Route, request: ChatRequest, attribution: _Attribution
    ) -> ChatResponse:
        provider = RetryingProvider(
            route.provider, max_retries=route.settings.max_retries, sleep=self._sleep
        )
        if self.ledger is None:
            return await provider.complete(request)
        answer: list[ChatResponse] = []
        events = self._tracked(route, _answer_events(provider, request, answer), attribution)
        try:
            async for _event in events:
                pass
        finally:
            await _aclose(events)
        return answer[0]

    # --- models and prices ------------------------------------------------

    async def _models_of(self, connection: str) -> list[ModelInfo]:
        await self._load_key(connection)
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
        self._routes.clear()
        clients, self._clients = list(self._clients.values()), {}
        providers, self._providers = [*self._providers.values(), *clients], {}
        for provider in providers:
            close = getattr(provider, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # closing the rest matters more than this one
                    logger.warning("closing a provider failed: %s", exc)


def _read_stored_key(connection: str) -> str | None:
    from modelport.auth.keys import get_key

    try:
        return get_key(connection)
    except ConfigError as exc:
        logger.warning("cannot read stored keys: %s", exc)
        return None


def _log_fallback(route: Route, error: ModelportError, next_address: str) -> None:
    logger.warning(
        "%s failed before answering (%s); falling back to %s as configured",
        route.address,
        type(error).__name__,
        next_address,
    )


async def _answer_events(
    provider: Provider, request: ChatRequest, answer: list[ChatResponse]
) -> AsyncIterator[StreamEvent]:
    """The events ``provider.complete(request)``'s response stands for (for the ledger)."""
    response = await provider.complete(request)
    answer.append(response)
    for event in response_events(response):
        yield event


async def _aclose(closeable: object) -> None:
    close = getattr(closeable, "aclose", None)
    if close is not None:
        await close()
