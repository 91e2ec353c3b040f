"""The router's hook for providers that exist only while something runs: plugins.

A :class:`ProviderSource` registers providers into a router when started
(:class:`~modelport.plugin_host.host.PluginHost` is one). A router holds a
:class:`LazySource`, which builds and starts its source once, on the first
call that needs it — an address whose connection is ``compat = "plugin:…"``
or neither configured nor a preset, or a listing of every model — so calls to
configured connections never wait for plugins to start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from modelport.config import PRESETS, Config

if TYPE_CHECKING:
    from modelport.routing._route import ProviderRegistry

__all__ = [
    "PLUGIN_PREFIX",
    "LazySource",
    "ProviderSource",
    "ProviderSourceFactory",
    "plugin_host",
]

logger = logging.getLogger("modelport.routing")

#: ``compat = "plugin:<provider id>"`` names a provider registered at run time.
PLUGIN_PREFIX = "plugin:"
# A plugin host stops each child within a few seconds; past this, stop waiting.
_CLOSE_TIMEOUT = 10.0


@runtime_checkable
class ProviderSource(Protocol):
    """Providers that appear at run time: started on first need, closed with the router.

    :meth:`ensure_started` registers providers into the router (through
    :meth:`Router.register_provider <modelport.routing.Router.register_provider>`);
    :class:`~modelport.plugin_host.host.PluginHost` is one.
    """

    async def ensure_started(self) -> None: ...

    async def aclose(self) -> None: ...


#: Builds a router's provider source; called once, with the router, on first need.
ProviderSourceFactory = Callable[["ProviderRegistry"], ProviderSource]


def plugin_host(router: ProviderRegistry) -> ProviderSource:
    """The usual provider source: a plugin host over the shipped, home and project folders."""
    from modelport.plugin_host.host import PluginHost

    # The router's token broker: plugins and built-in adapters renew a login in one place.
    return PluginHost.from_config(router, router.config, tokens=router.tokens)


class LazySource:
    """A router's provider source, built and started once, on first need.

    Without a factory it never starts and nothing needs it.
    """

    def __init__(self, factory: ProviderSourceFactory | None) -> None:
        self.factory = factory
        self.source: ProviderSource | None = None
        self.started = False
        self._lock: asyncio.Lock | None = None

    def needed_for(self, connection: str, config: Config, registered: Container[str]) -> bool:
        """Whether ``connection`` can only come from the source (not started yet).

        ``registered`` holds the names of the providers registered so far.
        """
        if self.factory is None or self.started:
            return False
        if connection in registered:
            return False
        configured = config.connections.get(connection)
        if configured is None:
            return connection not in PRESETS
        compat = configured.compat or ""
        return compat.startswith(PLUGIN_PREFIX) and (
            compat.removeprefix(PLUGIN_PREFIX) not in registered
        )

    async def start(self, router: ProviderRegistry) -> None:
        """Build and start the source; concurrent callers wait for the same start."""
        if self.factory is None or self.started:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.started:
                return
            if self.source is None:
                self.source = self.factory(router)
            await self.source.ensure_started()
            self.started = True

    async def aclose(self) -> None:
        """Close the source (if it was built); a failure is logged, never raised."""
        source, self.source = self.source, None
        self.started = False
        if source is None:
            return
        try:
            await asyncio.wait_for(source.aclose(), _CLOSE_TIMEOUT)
        except Exception as exc:  # what the router closes next still needs closing
            logger.warning("closing the provider source failed: %r", exc)
