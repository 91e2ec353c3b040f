"""The providers that running plugins registered, and what each request needs from config.

:class:`ProviderTable` owns the host's side of ``provider.register`` /
``provider.unregister``: it refuses ids that would shadow a built-in adapter,
a preset connection, an installed provider package, another plugin's provider,
a configured connection or a connection's ``compat`` (reporting the clash,
never resolving it silently), hands accepted providers to the router, and
builds each request's ``providerConfig`` from ``[connections.<providerId>]``,
the environment and the keyring.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from modelport.config import PRESETS
from modelport.errors import InvalidRequestError, ModelportError
from modelport.plugin_host.process import PluginProcess
from modelport.plugin_host.provider import (
    PluginProvider,
    Registration,
    normalise_provider_id,
    parse_registration,
    resolve_provider_config,
)
from modelport.providers import BUILTIN_PROVIDERS, ENTRY_POINT_GROUP
from modelport.types import ModelInfo

if TYPE_CHECKING:
    from modelport.config import Config

__all__ = ["ProviderRegistry", "ProviderTable"]


class ProviderRegistry(Protocol):
    """The part of :class:`modelport.routing.Router` the host needs."""

    def register_provider(
        self, name: str, provider: Any, models: list[ModelInfo] | None = None
    ) -> None: ...

    def unregister_provider(self, name: str) -> Any: ...


class ProviderTable:
    """Provider id → :class:`PluginProvider`, mirrored into the router (if any)."""

    def __init__(
        self,
        router: ProviderRegistry | None,
        *,
        config: Config | None,
        get_key: Callable[[str], str | None] | None,
        environ: Mapping[str, str] | None,
        request_timeout: float,
    ) -> None:
        self.router = router
        self.config = config
        self.request_timeout = request_timeout
        self._get_key = get_key
        self._environ = environ
        self.providers: dict[str, PluginProvider] = {}

    def models(self) -> list[ModelInfo]:
        return [m for p in self.providers.values() for m in p.registration.models]

    def register(
        self, plugin: str, params: Any, process: Callable[[], PluginProcess]
    ) -> PluginProvider:
        """Accept a ``provider.register``; raises the refusal to send back to the plugin."""
        registration = parse_registration(params, plugin=plugin)
        pid = registration.provider_id
        self._check_clash(plugin, pid)
        provider = PluginProvider(
            registration,
            process=process,
            provider_config=self.provider_config,
            timeout=self.request_timeout,
        )
        if self.router is not None:
            try:
                self.router.register_provider(pid, provider, list(registration.models))
            except ModelportError:
                raise
            except Exception as exc:  # the router's own refusal, whatever its type
                raise InvalidRequestError(f"Cannot register {pid!r}: {exc}") from exc
        self.providers[pid] = provider
        return provider

    def _check_clash(self, plugin: str, pid: str) -> None:
        if pid in BUILTIN_PROVIDERS:
            raise InvalidRequestError(
                f"Provider id {pid!r} would shadow the built-in {pid!r} adapter; choose another id"
            )
        if pid in PRESETS:
            raise InvalidRequestError(
                f"Provider id {pid!r} would take over the ready-made connection {pid!r} "
                "(and the key stored for it); choose another id"
            )
        if pid in _entry_point_names():
            raise InvalidRequestError(
                f"Provider id {pid!r} is the compat name of an installed provider package "
                f"(entry point {pid!r} in {ENTRY_POINT_GROUP!r}); choose another id"
            )
        connections = self.config.connections if self.config is not None else {}
        users = sorted(
            name
            for name, connection in connections.items()
            if connection.compat == pid and name != pid
        )
        if users:
            raise InvalidRequestError(
                f"Provider id {pid!r} is used as compat = {pid!r} by "
                + ", ".join(f"[connections.{name}]" for name in users)
                + '; choose another id (a connection reaches a plugin with compat = "plugin:<id>")'
            )
        owner = self.providers.get(pid)
        if owner is not None:
            who = (
                "this plugin already registered it; call provider.unregister first"
                if owner.registration.plugin == plugin
                else f"the plugin {owner.registration.plugin!r} registered it first"
            )
            raise InvalidRequestError(f"Provider id {pid!r} is taken: {who}")
        configured = self.config.connections.get(pid) if self.config is not None else None
        if configured is not None and configured.compat not in (None, f"plugin:{pid}"):
            raise InvalidRequestError(
                f"Provider id {pid!r} clashes with the connection [connections.{pid}] "
                f"(compat = {configured.compat!r}); rename one of them"
            )

    def owned_id(self, plugin: str, params: Any) -> str:
        """The provider id a ``provider.unregister`` names, if ``plugin`` owns it."""
        raw = params.get("providerId") if isinstance(params, dict) else None
        pid = normalise_provider_id(raw)
        owner = self.providers.get(pid)
        if owner is None or owner.registration.plugin != plugin:
            raise InvalidRequestError(f"This plugin has no provider {pid!r} to unregister")
        return pid

    def drop(self, pid: str) -> None:
        self.providers.pop(pid, None)
        if self.router is not None:
            with contextlib.suppress(Exception):
                self.router.unregister_provider(pid)

    def provider_config(self, registration: Registration) -> dict[str, Any]:
        """``providerConfig`` for one request (raises AuthError when a required key is missing)."""
        pid = registration.provider_id
        connection = self.config.connection(pid) if self.config is not None else None
        options = dict(connection.options) if connection is not None else {}
        if connection is not None and connection.base_url:
            # A plugin's own "base_url" field: the table's key of that name, which config
            # reads as the connection's URL, is the plugin's to use (the router has none).
            options.setdefault("base_url", connection.base_url)
        if connection is not None and connection.api_key_env:
            # The usual api_key_env names the variable for every password field.
            for spec in registration.config_fields:
                if spec.get("type") == "password":
                    options.setdefault(f"{spec['key']}_env", connection.api_key_env)
        return resolve_provider_config(
            registration,
            options,
            get_key=self._get_key or _keyring_get,
            environ=self._environ if self._environ is not None else os.environ,
        )


def _entry_point_names() -> set[str]:
    """Compat names that installed ``modelport.providers`` packages claim."""
    from importlib.metadata import entry_points

    try:
        return {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # broken package metadata must not stop a registration check
        return set()


def _keyring_get(name: str) -> str | None:
    try:
        from modelport.auth.keys import get_key
    except ImportError:  # keyring support not installed in this build
        return None
    try:
        return get_key(name)
    except Exception:  # a broken keyring backend means "no key", not a crash
        return None
