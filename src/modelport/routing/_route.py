"""The router's shared values: where an address leads, and what a provider source sees.

The router's pieces (:mod:`._settings`, :mod:`._route_cache`, :mod:`._fallbacks`,
:mod:`._usage`, :mod:`._provider_source`) take these from here, never from
:mod:`._router`, so the facade depends on its pieces and not the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from modelport.errors import ModelportError
from modelport.providers import ConnectionSettings, Provider, ProviderFactory
from modelport.types import ModelInfo

if TYPE_CHECKING:
    from modelport.auth.session import TokenBroker
    from modelport.config import Config

__all__ = ["ConnectionModels", "ProviderRegistry", "Route"]


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
    #: The model group this route is a deployment of (``None``: the address was named
    #: directly, or reached as a fallback); the balancer learns from the call.
    group: str | None = None

    @property
    def address(self) -> str:
        return f"{self.connection}/{self.model}"

    def of_group(self, group: str) -> Route:
        """This route, as a deployment of ``group`` (cheaper than ``dataclasses.replace``)."""
        return Route(
            connection=self.connection,
            model=self.model,
            provider=self.provider,
            settings=self.settings,
            ephemeral=self.ephemeral,
            group=group,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionModels:
    """One connection's answer to "which models?": its models, or the error it gave."""

    connection: str
    models: list[ModelInfo]
    error: ModelportError | None = None


class ProviderRegistry(Protocol):
    """What a provider source sees of its router: the config, its OAuth sessions, and
    where providers go."""

    @property
    def config(self) -> Config: ...

    #: The OAuth sessions a plugin provider that logs in with OAuth shares with the router.
    tokens: TokenBroker

    def register_provider(
        self, name: str, provider: Provider | ProviderFactory, models: list[ModelInfo] | None = None
    ) -> None: ...

    def unregister_provider(self, name: str) -> None: ...
