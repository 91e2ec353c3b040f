"""The :class:`Router` facade: resolve an address, then stream or complete through its pieces."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import msgspec

from modelport.auth.session import TokenBroker
from modelport.config import (
    PRESETS,
    Config,
    ConnectionConfig,
    load_config,
    resolve_address,
    split_address,
)
from modelport.errors import InvalidRequestError, ModelNotFoundError, ModelportError
from modelport.events import StreamEvent
from modelport.providers import ConnectionSettings, Provider, ProviderFactory, offers_embeddings
from modelport.providers._retry import OnRetry, RetryingProvider
from modelport.routing._balancer import Balancer
from modelport.routing._calls import CallCount, CallHold
from modelport.routing._fallbacks import (
    RouteChain,
    complete_along,
    fallback_chain,
    log_fallback,
    overrides_at,
    stream_along,
)
from modelport.routing._listing import models_in, report_of
from modelport.routing._provider_source import (
    PLUGIN_PREFIX,
    LazySource,
    ProviderSource,
    ProviderSourceFactory,
)
from modelport.routing._relay import Relay, relay_compat
from modelport.routing._route import ConnectionModels, Route
from modelport.routing._route_cache import RouteCache
from modelport.routing._settings import (
    StoredKeys,
    default_base_url,
    env_stamp,
    ladder_stamp,
    resolve_settings,
)
from modelport.routing._usage import (
    Attribution,
    UsageTracker,
    track_answer,
    track_embedding,
    track_events,
)
from modelport.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    ModelPrices,
)

__all__ = ["Router"]

logger = logging.getLogger("modelport.routing")


class Router:
    """Routes requests to providers; see :mod:`modelport.routing._settings` for the settings ladder.

    ``config`` defaults to :func:`modelport.config.load_config`. ``env``
    defaults to ``os.environ``, read at each call. ``sleep`` waits between
    retries (tests pass one that records the delays). ``provider_source``
    builds the source of run-time providers (:func:`plugin_host` for plugins),
    started on first need. Providers are built once per (connection, settings)
    and reused so HTTP connections are pooled — except for a call with its own
    ``api_key`` or ``headers``, whose provider lives for that call alone (over
    the connection's shared HTTP pool). ``tokens`` holds the OAuth sessions of
    connections that log in with OAuth (a :class:`~modelport.auth.session.TokenBroker`
    of its own by default). A router belongs to one event loop, and
    :meth:`aclose` closes what it built and its provider source;
    :meth:`aclose_when_idle` waits for the calls in flight first.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        ledger: UsageTracker | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        provider_source: ProviderSourceFactory | None = None,
        tokens: TokenBroker | None = None,
    ) -> None:
        self.config = config if config is not None else load_config()
        self.ledger = ledger
        self._env = env
        self._sleep = sleep
        self._source = LazySource(provider_source)
        self._keys = StoredKeys()
        #: The OAuth sessions of this router's connections (and its plugins').
        self.tokens = tokens if tokens is not None else TokenBroker(env=lambda: self.env)
        self._cache = RouteCache(self.tokens)
        self._seen_prices: dict[tuple[str, str], ModelPrices] = {}
        self._relay_compats: dict[str | None, str | None] = {}
        self._relay_stamp: tuple[object, ...] = ()
        #: Chooses among the deployments of model groups (``[aliases.<name>]`` tables).
        self.balancer = Balancer(self.config.redis_url)
        self._calls = CallCount()
        #: False once with_config handed the broker on to the router that replaces this one.
        self._owns_tokens = True

    def with_config(self, config: Config) -> Router:
        """A new router like this one (ledger, environment, sleep, provider source) over ``config``.

        The new router builds its own providers and reads stored keys afresh.
        It shares the ledger, and takes over the OAuth broker (which the plugin
        host's OAuth providers use too), after making its sessions read stored
        tokens again (a login since); this router no longer closes it.
        Registered providers stay with this one (their owner registers them
        again where it wants them).
        """
        self.tokens.forget()
        router = Router(
            config,
            ledger=self.ledger,
            env=self._env,
            sleep=self._sleep,
            provider_source=self._source.factory,
            tokens=self.tokens,
        )
        router._owns_tokens, self._owns_tokens = self._owns_tokens, False
        return router

    @property
    def env(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    # --- connections and settings -------------------------------------------

    def connection_names(self) -> list[str]:
        """Configured connections and registered providers, sorted (presets left out)."""
        return sorted({*self.config.connections, *self._cache.registered})

    def _connection_config(self, name: str) -> ConnectionConfig:
        if name in self._cache.registered and name not in self.config.connections:
            # register_provider refuses preset names, so this never hides a preset (whose
            # stored key would then go to whoever registered the name).
            return ConnectionConfig(compat=f"{PLUGIN_PREFIX}{name}")
        found = self.config.connection(name)
        if found is not None:
            return found
        configured = ", ".join(self.connection_names()) or "none"
        presets = ", ".join(sorted(PRESETS))
        plugins = (
            " No running plugin registered it either (see `modelport plugins list`)."
            if self._source.factory is not None
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
        return resolve_settings(
            connection,
            self._connection_config(connection),
            configured=self.config.connections.get(connection),
            env=self.env,
            stored_key=self._keys.get,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )

    def upstream(self, connection: str) -> str | None:
        """Where calls to ``connection`` go: its URL as the settings ladder picks it (no
        key is read), ``plugin:<id>`` for a plugin's provider, or ``None`` (an unknown
        name, or a provider package that decides for itself). The URL may carry
        credentials: redact it before showing it."""
        try:
            table = self._connection_config(connection)
        except ModelportError:
            return None
        compat = table.compat or "openai"
        if compat.startswith(PLUGIN_PREFIX):
            return compat
        return table.base_url or self.env.get("MODELPORT_BASE_URL") or default_base_url(compat)

    def forget_keys(self) -> None:
        """Drop cached stored keys, so the next call reads them again.

        Call it after a key changed while the router runs (``modelport keys set``
        or ``keys delete`` next to a running gateway, or an admin action that
        stores a key); routes resolved with the old key are dropped too, and
        OAuth tokens held in memory are read from storage again.
        """
        self._keys.forget()
        self.tokens.forget()
        self._cache.forget_routes()

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
        self._cache.register(name, provider, models, config=self.config)

    def unregister_provider(self, name: str) -> None:
        """Forget a registered provider and the providers built from it (unknown names: no-op)."""
        self._cache.unregister(name)

    # --- the provider source -----------------------------------------------

    @property
    def provider_source(self) -> ProviderSource | None:
        """The run-time provider source, once a call needed it (``None`` before)."""
        return self._source.source

    def needs_provider_source(self, connection: str) -> bool:
        """Whether ``connection`` can only come from the provider source (not started yet)."""
        return self._source.needed_for(connection, self.config, self._cache.registered)

    async def load_providers(self, connection: str | None = None) -> None:
        """Start the provider source if ``connection`` needs it (``None``: in any case).

        The source is built and started once per router; concurrent callers
        wait for the same start. Without a ``provider_source`` this does nothing.
        """
        if connection is not None and not self.needs_provider_source(connection):
            return
        await self._source.start(self)

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
        if (
            api_key is None
            and base_url is None
            and timeout is None
            and max_retries is None
            and headers is None
        ):
            # (Not all() over a generator: six Python calls on every routed call.)
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
            provider=self._cache.provider(settings, per_call=per_call),
            settings=settings,
            ephemeral=per_call and self._cache.is_ephemeral(settings),
        )

    async def aresolve(self, address: str | None) -> Route:
        """:meth:`resolve` for a caller on the event loop.

        Starts the provider source if the address needs it and reads the
        connection's stored key in a worker thread first, so the keyring is
        never read on the loop (a locked keychain or D-Bus can take seconds).
        """
        connection = split_address(resolve_address(address, self.config, env=self.env))[0]
        await self._prepare(connection)
        return self.resolve(address)

    async def _prepare(self, connection: str) -> None:
        """Whatever ``connection`` needs before it can resolve without blocking the loop.

        Only a connection that exists gets its stored key read: the name comes
        from the client's ``model``, and an invented one must cost no keyring
        lookup and leave nothing behind.
        """
        await self.load_providers(connection)
        if (
            connection in self.config.connections
            or connection in PRESETS
            or connection in self._cache.registered
        ):
            await self._keys.load(connection)

    def _remembered_route(self, address: str | None) -> Route:
        found = self._cache.remembered(address, self.config, self._route_stamp)
        if found is not None:
            return found
        connection, model = split_address(resolve_address(address, self.config, env=self.env))
        settings = self.settings_for(connection)
        route = Route(
            connection=connection,
            model=model,
            provider=self._cache.provider(settings),
            settings=settings,
        )
        self._cache.remember(address, self._route_stamp(address, connection), route)
        return route

    def _route_stamp(self, address: str | None, connection: str) -> tuple[object, ...]:
        """What a remembered route was resolved from, beyond the config (a few dict reads)."""
        configured = self.config.connections.get(connection)
        compat = (configured.compat if configured is not None else None) or ""
        registered = self._cache.registered
        return (
            env_stamp(self.env, "MODELPORT_MODEL") if not address else None,
            *ladder_stamp(connection, self.config, self.env, self._keys),
            registered.get(connection),
            registered.get(compat.removeprefix(PLUGIN_PREFIX)) if compat else None,
        )

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
        key_id: str | None = None,
        on_answer: Callable[[str], object] | None = None,
        on_retry: OnRetry | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream ``request`` (whose ``model`` is an address) through its provider.

        Overrides apply to the requested connection; a configured fallback gets
        only ``timeout`` and ``max_retries``, so a key never travels to another
        connection. The connection's ``temperature`` and ``max_tokens`` fill
        in what the request leaves unset. ``api`` (the front end: ``python``,
        ``cli``, ``openai``, ``anthropic``), ``request_id`` and ``key_id`` (the
        gateway's virtual key) are what the ledger records the call under.
        ``on_answer`` is told the address that answers (a model group's
        deployment, a fallback) before its first event. ``on_retry(attempt,
        error, delay)`` is called before each retry (see
        :class:`~modelport.providers._retry.RetryingProvider`).
        """
        attribution = Attribution(api, request_id, key_id)
        return self._along(
            request,
            _overrides(api_key, base_url, timeout, max_retries, headers),
            lambda route: self._events(route, _for_route(request, route), attribution, on_retry),
            on_answer,
        )

    def _along(
        self,
        request: ChatRequest,
        overrides: dict[str, Any],
        open_route: Callable[[Route], AsyncIterator[Any]],
        on_answer: Callable[[str], object] | None,
    ) -> AsyncIterator[Any]:
        """What ``open_route`` gives for the first route of the request's chain that
        answers (:func:`stream_along`), the call counted in flight until the chain ends."""
        hold = CallHold(self._calls)
        if not self.config.model_groups:
            return self._stream_chain(request, overrides, hold, open_route, on_answer)
        return stream_along(self._chain(request, overrides, hold), open_route, on_answer)

    async def _stream_chain(
        self,
        request: ChatRequest,
        overrides: dict[str, Any],
        hold: CallHold,
        open_route: Callable[[Route], AsyncIterator[Any]],
        on_answer: Callable[[str], object] | None,
    ) -> AsyncIterator[Any]:
        """:func:`stream_along` over the chain of a config without model groups, in one
        generator: the chain's own generator cost every stream another async generator
        (registered with the loop's hooks, resumed, closed). What each does is kept:
        the events of the first route that answers, a fallback only before the first
        event, the events closed before a per-call provider, ``hold`` released last."""
        try:
            chain = fallback_chain(request.model, self.config, self.env)
            last = len(chain) - 1
            for position, address in enumerate(chain):
                at = overrides_at(position, overrides)
                route = self._route_now(address, at) or await self._route_at(address, at)
                try:
                    events = open_route(route)
                    started = False
                    try:
                        async for event in events:
                            if not started:
                                started = True
                                if on_answer is not None:
                                    on_answer(route.address)
                            yield event
                        return
                    except ModelportError as error:
                        if started or not error.retryable or position == last:
                            raise
                        log_fallback(route, error, chain[position + 1])
                    finally:
                        await _aclose(events)
                finally:
                    if route.ephemeral:
                        await _aclose(route.provider)
        finally:
            hold.release()

    async def _chain(
        self, request: ChatRequest, overrides: dict[str, Any], hold: CallHold | None = None
    ) -> RouteChain:
        """Each route of the request's chain (the address, then configured fallbacks;
        a model group's deployments in the order its balancer chose).

        The second item is the address that comes next (``None`` for the last).
        Stored keys are read off the event loop; a provider built for this call
        alone is closed after it. ``hold``, a stream's place among the calls in
        flight, is released when the chain ends (see :mod:`._calls`): here, not in
        a generator around this one, which cost every stream another async
        generator (its hooks, ``asend`` and ``aclose``).
        """
        try:
            chain = fallback_chain(request.model, self.config, self.env)
            groups = self.config.model_groups
            if not groups:  # no model groups: no balancer in the way
                for position, address in enumerate(chain):
                    route = await self._route_at(address, overrides_at(position, overrides))
                    try:
                        yield route, chain[position + 1] if position + 1 < len(chain) else None
                    finally:
                        if route.ephemeral:
                            await _aclose(route.provider)
                return
            if chain[0] in groups and any(overrides[k] for k in ("api_key", "base_url", "headers")):
                raise InvalidRequestError(
                    f"{chain[0]!r} is a model group: a call's own key, URL or headers would "
                    "reach whichever deployment is chosen. Name one deployment's address instead."
                )
            async with contextlib.aclosing(self.balancer.walk(chain, groups)) as steps:
                async for step in steps:
                    position = 0 if step.first else 1
                    route = await self._route_at(step.address, overrides_at(position, overrides))
                    if step.group is not None:
                        route = route.of_group(step.group)
                    try:
                        yield route, step.next
                    finally:
                        if route.ephemeral:
                            await _aclose(route.provider)
        finally:
            if hold is not None:
                hold.release()

    async def _route_at(self, address: str, overrides: dict[str, Any]) -> Route:
        await self._prepare(address.partition("/")[0])
        return self.resolve(address, **overrides)

    def _route_now(self, address: str, overrides: dict[str, Any]) -> Route | None:
        """:meth:`_route_at` when it would await nothing (the provider source needs no
        start, the connection's stored key was read), without its three coroutines;
        ``None`` when something must be awaited first."""
        connection = address.partition("/")[0]
        if connection not in self._keys or self._source.needed_for(
            connection, self.config, self._cache.registered
        ):
            return None
        return self.resolve(address, **overrides)

    def _retrying(
        self, provider: Provider, settings: ConnectionSettings, on_retry: OnRetry | None = None
    ) -> RetryingProvider:
        return RetryingProvider(
            provider,
            max_retries=settings.max_retries,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
            sleep=self._sleep,
            on_retry=on_retry,
        )

    def _events(
        self,
        route: Route,
        request: ChatRequest,
        attribution: Attribution,
        on_retry: OnRetry | None,
    ) -> AsyncIterator[StreamEvent]:
        events = self._retrying(route.provider, route.settings, on_retry).stream(request)
        if route.group is not None:
            group = self.config.model_groups[route.group]
            events = self.balancer.observe(group, route.address, events)
        if self.ledger is None:
            return events
        prices = self.prices_for(route.connection, route.model)
        return track_events(self.ledger, route, events, prices=prices, attribution=attribution)

    def relay_compat(self, address: str | None) -> str | None:
        """The one compat every route of ``address``'s chain has, if it is a relayed one.

        ``openai`` or ``anthropic`` where the address and each configured fallback
        is a connection of that compat that sets no request defaults (see
        :mod:`modelport.routing._relay`); ``None`` otherwise, and for anything
        that does not resolve (the decode-encode path then says what is wrong).
        """
        # Remembered per config and set of registered providers: a new config (an admin
        # edit) or a provider registered starts afresh. A call that could not be decided
        # yet (a plugin not started) is remembered as not relayed, which is always safe.
        stamp = (
            self.config,
            len(self._cache.registered),
            env_stamp(self.env, "MODELPORT_MODEL"),
        )
        if self._relay_stamp != stamp:
            self._relay_compats.clear()
            self._relay_stamp = stamp
        found = self._relay_compats.get(address, False)
        if found is False:
            found = self._relay_compats[address] = relay_compat(self, address)
        return found

    def relay(
        self,
        request: ChatRequest,
        body: dict[str, Any],
        make_relay: Callable[[], Relay],
        *,
        stream: bool,
        headers: Mapping[str, str] | None = None,
        api: str = "python",
        request_id: str | None = None,
        key_id: str | None = None,
        on_answer: Callable[[str], object] | None = None,
        on_retry: OnRetry | None = None,
    ) -> AsyncIterator[Any]:
        """The same-format passthrough of ``body`` (a client's own request body).

        Routes, retries, fallbacks and the ledger as :meth:`stream` (``request`` is
        the body parsed, for its address); each attempt sends ``body`` with the route's
        bare model id and reads the answer through a fresh ``make_relay()``. Check
        :meth:`relay_compat` first.
        """
        attribution = Attribution(api, request_id, key_id)
        return self._along(
            request,
            _overrides(headers=headers),
            lambda route: self._relayed(route, body, make_relay, stream, attribution, on_retry),
            on_answer,
        )

    def _relayed(
        self,
        route: Route,
        body: dict[str, Any],
        make_relay: Callable[[], Relay],
        stream: bool,
        attribution: Attribution,
        on_retry: OnRetry | None,
    ) -> AsyncIterator[StreamEvent]:
        from modelport.providers._http import HttpProvider
        from modelport.providers._relay import relay_items

        provider = route.provider
        if not isinstance(provider, HttpProvider):  # relay_compat admits only built-in ones
            raise ModelportError(f"{route.address} cannot be relayed", connection=route.connection)
        sent = {**body, "model": route.model}
        items = self._retrying(route.provider, route.settings, on_retry).retry_items(
            lambda: relay_items(provider, sent, make_relay(), stream=stream)
        )
        if self.ledger is None:
            return items
        prices = self.prices_for(route.connection, route.model)
        return track_events(self.ledger, route, items, prices=prices, attribution=attribution)

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
        key_id: str | None = None,
        on_retry: OnRetry | None = None,
    ) -> ChatResponse:
        """The whole answer at once, from the provider's ``complete`` (one non-streaming
        upstream request where the provider has one); ``model`` is the address that
        answered, ``id`` the upstream's where it gave one.

        Retries, connection defaults, ``on_retry``, fallbacks and the ledger work
        as for :meth:`stream`; the ledger
        records the call from the events the response stands for
        (:func:`~modelport.aggregate.response_events`), so both paths record alike.
        """
        overrides = _overrides(api_key, base_url, timeout, max_retries, headers)
        attribution = Attribution(api, request_id, key_id)
        self._calls.enter()
        try:
            if not self.config.model_groups:
                return await self._complete_chain(request, overrides, attribution, on_retry)
            # The chain itself: complete_along closes it, and no hold needs releasing.
            return await complete_along(
                self._chain(request, overrides),
                lambda route: self._complete_one(
                    route, _for_route(request, route), attribution, on_retry
                ),
            )
        finally:
            self._calls.leave()

    async def _complete_chain(
        self,
        request: ChatRequest,
        overrides: dict[str, Any],
        attribution: Attribution,
        on_retry: OnRetry | None,
    ) -> ChatResponse:
        """:func:`complete_along` over the chain of a config without model groups, as
        one awaited loop: the chain's async generator (registered with the loop's
        hooks, resumed, closed) cost a plain call more than the walk itself."""
        chain = fallback_chain(request.model, self.config, self.env)
        last = len(chain) - 1
        for position, address in enumerate(chain):
            at = overrides_at(position, overrides)
            route = self._route_now(address, at) or await self._route_at(address, at)
            try:
                response = await self._complete_one(
                    route, _for_route(request, route), attribution, on_retry
                )
            except ModelportError as error:
                if not error.retryable or position == last:
                    raise
                log_fallback(route, error, chain[position + 1])
                continue
            finally:
                if route.ephemeral:
                    await _aclose(route.provider)
            return msgspec.structs.replace(response, model=route.address)
        raise AssertionError("unreachable: the last route raises or answers")  # pragma: no cover

    async def _complete_one(
        self,
        route: Route,
        request: ChatRequest,
        attribution: Attribution,
        on_retry: OnRetry | None,
    ) -> ChatResponse:
        provider = self._retrying(route.provider, route.settings, on_retry)
        if self.ledger is None:
            answer = provider.complete(request)
        else:
            prices = self.prices_for(route.connection, route.model)
            answer = track_answer(
                self.ledger, route, provider, request, prices=prices, attribution=attribution
            )
        if route.group is None:
            return await answer
        group = self.config.model_groups[route.group]
        return await self.balancer.observe_answer(group, route.address, answer)

    async def embed(
        self,
        request: EmbeddingRequest,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        headers: Mapping[str, str] | None = None,
        api: str = "python",
        request_id: str | None = None,
        key_id: str | None = None,
    ) -> EmbeddingResponse:
        """Embed ``request.input`` with the model its address leads to.

        Settings, keys, retries and the ledger work as for :meth:`complete`; the
        answer's ``model`` is the address. Configured fallbacks are not walked:
        another model's vectors live in another space, and mixing them into an
        index would corrupt it silently. A connection whose provider cannot
        embed fails with :class:`~modelport.errors.InvalidRequestError`.
        """
        if not request.input:
            raise InvalidRequestError("Embeddings need at least one input")
        self._calls.enter()
        try:
            return await self._embed(
                request, api_key, base_url, timeout, max_retries, headers, api, request_id, key_id
            )
        finally:
            self._calls.leave()

    async def _embed(
        self,
        request: EmbeddingRequest,
        api_key: str | None,
        base_url: str | None,
        timeout: float | None,
        max_retries: int | None,
        headers: Mapping[str, str] | None,
        api: str,
        request_id: str | None,
        key_id: str | None,
    ) -> EmbeddingResponse:
        address = resolve_address(request.model, self.config, env=self.env)
        connection = address.partition("/")[0]
        await self.load_providers(connection)
        await self._keys.load(connection)
        route = self.resolve(
            address,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )
        try:
            if not offers_embeddings(route.provider):
                raise InvalidRequestError(
                    f"Connection {route.connection!r} does not offer embeddings "
                    f"(compat {route.settings.compat!r}); use a model on an OpenAI-compatible, "
                    "Ollama, Gemini or Azure connection, or a plugin that embeds",
                    connection=route.connection,
                    model=route.model,
                )
            provider = self._retrying(route.provider, route.settings)
            bare = msgspec.structs.replace(request, model=route.model)
            if self.ledger is None:
                response = await provider.embed(bare)
            else:
                response = await track_embedding(
                    self.ledger,
                    route,
                    lambda: provider.embed(bare),
                    prices=self.prices_for(route.connection, route.model),
                    attribution=Attribution(api, request_id, key_id),
                )
        finally:
            if route.ephemeral:
                await _aclose(route.provider)
        return msgspec.structs.replace(response, model=route.address)

    # --- models and prices ------------------------------------------------

    async def _models_of(self, connection: str) -> list[ModelInfo]:
        await self._keys.load(connection)
        settings = self.settings_for(connection)
        registered = self._cache.registered_for(connection, settings.compat)
        if registered is not None and registered.models is not None:
            models = list(registered.models)
        else:
            provider = self._retrying(self._cache.provider(settings), settings)
            models = await provider.list_models()
        for model in models:
            self._seen_prices[(connection, model.id)] = model.prices
        return models

    async def list_models_report(self, connection: str | None = None) -> list[ConnectionModels]:
        """Each configured connection's (and registered provider's) models or error.

        Connections are asked concurrently; one failing does not hide the others.
        """
        self._calls.enter()
        try:
            await self.load_providers(connection)
            names = [connection] if connection is not None else self.connection_names()
            return list(await asyncio.gather(*(report_of(name, self._models_of) for name in names)))
        finally:
            self._calls.leave()

    async def list_models(self, connection: str | None = None) -> list[ModelInfo]:
        """Models of one connection (errors raise), or of all configured ones.

        Across all connections, one that fails is logged and left out; if every
        one fails, the first error is raised.
        """
        if connection is not None:
            self._calls.enter()
            try:
                await self.load_providers(connection)
                return await self._models_of(connection)
            finally:
                self._calls.leave()
        return models_in(await self.list_models_report())

    def prices_for(self, connection: str, model: str) -> ModelPrices | None:
        """Prices from config, else a registered provider's models, else models seen listed."""
        configured = self.config.connections.get(connection)
        if configured is not None and model in configured.prices:
            return configured.prices[model]
        registered = self._cache.registered.get(connection)
        if registered is not None and registered.models:
            for info in registered.models:
                if info.id == model:
                    return info.prices
        return self._seen_prices.get((connection, model))

    @property
    def active_calls(self) -> int:
        """Streams handed out and not closed yet, and calls still running."""
        return self._calls.active

    async def aclose(self) -> None:
        """Close the provider source and every provider this router built.

        Registered providers belong to their owner (the source closes its own).
        """
        await self._source.aclose()
        await self._cache.aclose()
        if self._owns_tokens:
            await self.tokens.aclose()
        await self.balancer.aclose()

    async def aclose_when_idle(self) -> None:
        """Wait until no call is in flight (:attr:`active_calls`), then :meth:`aclose`.

        What a gateway does with the router a reload replaced: the requests
        that started on it finish on it.
        """
        await self._calls.wait_idle()
        await self.aclose()


def _overrides(
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A call's own settings, by name, for the connection it names (see :meth:`Router.stream`)."""
    return {
        "api_key": api_key,
        "base_url": base_url,
        "timeout": timeout,
        "max_retries": max_retries,
        "headers": headers,
    }


def _for_route(request: ChatRequest, route: Route) -> ChatRequest:
    """``request`` for ``route``: its bare model id, and the connection's defaults where it
    sets nothing of its own."""
    settings = route.settings
    changes: dict[str, Any] = {"model": route.model}
    if request.temperature is None and settings.temperature is not None:
        changes["temperature"] = settings.temperature
    if request.max_tokens is None and settings.max_tokens is not None:
        changes["max_tokens"] = settings.max_tokens
    return msgspec.structs.replace(request, **changes)


async def _aclose(closeable: object) -> None:
    close = getattr(closeable, "aclose", None)
    if close is not None:
        await close()
