"""What a router keeps between calls: its providers and the routes that lead to them.

A connection's provider is one of three kinds:

- *registered* at run time (:meth:`Router.register_provider
  <modelport.routing.Router.register_provider>`): a ready provider, used as is
  and closed by its owner, or a factory called with the connection's settings;
- *kept*: built from the connection's ``compat`` once per (connection,
  settings) and reused, so HTTP connections pool;
- *ephemeral*: built for one call with its own ``api_key`` or ``headers``, and
  closed after it, so per-call credentials never pin a provider for the
  router's lifetime. A built-in adapter built this way shares the
  connection's one pooled :class:`~modelport.providers._http_client.HttpClient`.

A connection that logs in with OAuth (settings ``auth="oauth"``) gets its
provider behind an :class:`~modelport.auth.provider.OAuthProvider`: the
adapter is built per access token over the connection's shared HTTP client,
and the token comes from the router's :class:`~modelport.auth.session.TokenBroker`.

Routes resolved without overrides are remembered per address, together with
a stamp of what they were resolved from; a route holds while the config
object, its stamp and the registered providers stay the same. Only addresses
that resolved are remembered, and at most :data:`MAX_REMEMBERED_ROUTES` of
them (the oldest go first): the address is the client's ``model`` string, and
``oai/<anything>`` resolves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from modelport.config import PRESETS, Config
from modelport.errors import ConfigError, PluginError
from modelport.providers import (
    BUILTIN_PROVIDERS,
    ConnectionSettings,
    Provider,
    ProviderFactory,
    load_factory,
    offers_embeddings,
)
from modelport.routing._provider_source import PLUGIN_PREFIX
from modelport.types import ModelInfo

if TYPE_CHECKING:
    from modelport.auth.session import TokenBroker
    from modelport.routing._route import Route

__all__ = ["MAX_REMEMBERED_ROUTES", "Registered", "RouteCache"]

#: How many resolved addresses a router remembers. Real traffic uses a handful of
#: models; a client inventing a model name per request must not grow the router.
MAX_REMEMBERED_ROUTES = 1_024

logger = logging.getLogger("modelport.routing")


@dataclass(slots=True)
class Registered:
    """A provider registered at run time: ready (``provider``) or built (``factory``)."""

    name: str
    provider: Provider | None
    factory: ProviderFactory | None
    models: list[ModelInfo] | None


class RouteCache:
    """A router's registered providers, kept providers, HTTP clients and remembered routes."""

    def __init__(self, tokens: TokenBroker | None = None) -> None:
        self.tokens = tokens
        self.registered: dict[str, Registered] = {}
        # (registered provider it came from, or "", connection, encoded settings) → provider.
        # Only settings without per-call credentials get here (see provider()).
        self.providers: dict[tuple[str, str, bytes], Provider] = {}
        # One pooled HTTP client per connection, shared by providers built per call.
        self.clients: dict[str, Any] = {}
        # address → (what it was resolved from, the route).
        self._routes: dict[str | None, tuple[tuple[object, ...], Route]] = {}
        self._routes_config: Config | None = None

    # --- registered providers ---------------------------------------------

    def register(
        self,
        name: str,
        provider: Provider | ProviderFactory,
        models: list[ModelInfo] | None,
        *,
        config: Config,
    ) -> None:
        """Register ``provider`` under ``name`` (see :meth:`Router.register_provider`)."""
        if not name or "/" in name:
            raise ConfigError(f"A provider name cannot be empty or contain '/': {name!r}")
        if name in self.registered:
            raise ConfigError(f"A provider named {name!r} is already registered.", connection=name)
        configured = config.connections.get(name)
        if name in PRESETS:
            raise ConfigError(
                f"Provider {name!r} would take over the ready-made connection {name!r} "
                "(and its stored key); choose another name.",
                connection=name,
            )
        if configured is not None and configured.compat != f"{PLUGIN_PREFIX}{name}":
            raise ConfigError(
                f"Provider {name!r} would shadow the configured connection of the same name. "
                f"Rename [connections.{name}] or set its compat to 'plugin:{name}'.",
                connection=name,
            )
        is_factory = isinstance(provider, type) or not isinstance(provider, Provider)
        self.registered[name] = Registered(
            name=name,
            provider=None if is_factory else provider,  # type: ignore[arg-type]
            factory=provider if is_factory else None,  # type: ignore[arg-type]
            models=list(models) if models is not None else None,
        )

    def unregister(self, name: str) -> None:
        """Forget a registered provider and the providers built from it (unknown: no-op)."""
        if self.registered.pop(name, None) is None:
            return
        for key in [key for key in self.providers if key[0] == name]:
            del self.providers[key]

    def registered_for(self, connection: str, compat: str) -> Registered | None:
        """The registered provider a ``compat = "plugin:<id>"`` connection uses, else ``None``."""
        if compat.startswith(PLUGIN_PREFIX):
            provider_id = compat.removeprefix(PLUGIN_PREFIX)
            found = self.registered.get(provider_id)
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

    # --- providers ----------------------------------------------------------

    def is_ephemeral(self, settings: ConnectionSettings) -> bool:
        """Whether a per-call provider for ``settings`` is built for the call alone."""
        registered = self.registered_for(settings.name, settings.compat)
        return registered is None or registered.provider is None

    def provider(self, settings: ConnectionSettings, *, per_call: bool = False) -> Provider:
        """The provider for ``settings``: registered, kept, or (``per_call``) built afresh."""
        registered = self.registered_for(settings.name, settings.compat)
        if registered is not None and registered.provider is not None:
            return registered.provider
        if per_call:
            # A per-call key or header must not pin a provider (and its HTTP pool) for the
            # router's lifetime: build one for this call, over the connection's shared client.
            return self._build(settings, registered, shared_client=True)
        source = registered.name if registered is not None else ""
        key = (source, settings.name, msgspec.msgpack.encode(settings))
        provider = self.providers.get(key)
        if provider is None:
            provider = self._build(settings, registered, shared_client=False)
            self.providers[key] = provider
        return provider

    def _build(
        self, settings: ConnectionSettings, registered: Registered | None, *, shared_client: bool
    ) -> Provider:
        if settings.auth == "oauth" and settings.oauth is not None and self.tokens is not None:
            from modelport.auth.provider import OAuthProvider

            session = self.tokens.session(settings.name, settings.oauth)
            factory = (
                registered.factory
                if registered is not None and registered.factory is not None
                else load_factory(settings.compat)
            )
            return OAuthProvider(  # type: ignore[return-value]
                session,
                lambda token: self._build_plain(
                    msgspec.structs.replace(settings, api_key=token), registered, shared_client=True
                ),
                embeds=offers_embeddings(factory),
            )
        return self._build_plain(settings, registered, shared_client=shared_client)

    def _build_plain(
        self, settings: ConnectionSettings, registered: Registered | None, *, shared_client: bool
    ) -> Provider:
        if registered is not None and registered.factory is not None:
            return registered.factory(settings)
        factory = load_factory(settings.compat)
        if shared_client and BUILTIN_PROVIDERS.get(settings.compat, "").startswith(
            "modelport.providers."
        ):
            client = self.clients.get(settings.name)
            if client is None:
                from modelport.providers._http_client import HttpClient

                client = self.clients[settings.name] = HttpClient(timeout=settings.timeout)
            return factory(settings, client=client)  # type: ignore[call-arg]
        return factory(settings)

    # --- remembered routes ----------------------------------------------------

    def remembered(
        self,
        address: str | None,
        config: Config,
        stamp: Callable[[str | None, str], tuple[object, ...]],
    ) -> Route | None:
        """The route held for ``address``, if ``stamp(address, connection)`` still matches."""
        if self._routes_config is not config:
            self._routes.clear()
            self._routes_config = config
        found = self._routes.get(address)
        if found is not None and found[0] == stamp(address, found[1].connection):
            return found[1]
        return None

    def remember(self, address: str | None, stamp: tuple[object, ...], route: Route) -> None:
        routes = self._routes
        if len(routes) >= MAX_REMEMBERED_ROUTES and address not in routes:
            # Forget the oldest (dicts keep insertion order): no bookkeeping on a hit.
            del routes[next(iter(routes))]
        routes[address] = (stamp, route)

    def forget_routes(self) -> None:
        self._routes.clear()

    async def aclose(self) -> None:
        """Close every provider built here and the shared HTTP clients.

        Registered providers belong to their owner. A failure is logged and the
        rest are still closed.
        """
        self._routes.clear()
        clients, self.clients = list(self.clients.values()), {}
        providers, self.providers = [*self.providers.values(), *clients], {}
        for provider in providers:
            close = getattr(provider, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # closing the rest matters more than this one
                    logger.warning("closing a provider failed: %s", exc)
