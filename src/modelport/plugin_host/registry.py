"""The providers that running plugins registered, and what each request needs from config.

:class:`ProviderTable` owns the host's side of ``provider.register`` /
``provider.unregister``: it refuses ids that would shadow a built-in adapter,
a preset connection, an installed provider package, another plugin's provider,
a configured connection or a connection's ``compat`` (reporting the clash,
never resolving it silently), hands accepted providers to the router, and
builds each request's ``providerConfig`` from ``[connections.<providerId>]``,
the environment and the keyring.

A provider that asks for OAuth (an ``oauth`` block or an ``oauth`` config
field in its registration) goes to the router behind an
:class:`~modelport.auth.provider.OAuthProvider`: each request's
``providerConfig`` carries a fresh access token from the same
:class:`~modelport.auth.session.TokenBroker` the router uses, and a 401 the
plugin reports is answered with one refresh and one retry. Its mode is the
connection's ``auth``, else ``auto`` when it also declares a password field
(the key when one is set, else OAuth), else ``oauth``. Every secret handed to
a plugin is remembered, so :meth:`ProviderTable.scrub` can take it out of the
plugin's stderr before anyone is shown it.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from modelport.config import PRESETS, OAuthConfig
from modelport.errors import ConfigError, InvalidRequestError, ModelportError
from modelport.plugin_host.process import PluginProcess
from modelport.plugin_host.provider import (
    DEFAULT_OAUTH_FIELD,
    PluginProvider,
    Registration,
    normalise_provider_id,
    parse_registration,
    resolve_provider_config,
)
from modelport.providers import BUILTIN_PROVIDERS, ENTRY_POINT_GROUP
from modelport.types import ModelInfo

if TYPE_CHECKING:
    from modelport.auth.session import TokenBroker
    from modelport.config import Config
    from modelport.providers import Provider

#: How many secrets handed to plugins are remembered for scrubbing (tokens rotate).
_REMEMBERED_SECRETS = 256

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
        tokens: TokenBroker | None = None,
    ) -> None:
        self.router = router
        self.config = config
        self.request_timeout = request_timeout
        self._get_key = get_key
        self._environ = environ
        self._tokens = tokens
        self._own_tokens = False
        self._secrets: OrderedDict[str, None] = OrderedDict()
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
                self.router.register_provider(
                    pid, self._with_login(provider), list(registration.models)
                )
            except ModelportError:
                raise
            except Exception as exc:  # the router's own refusal, whatever its type
                raise InvalidRequestError(f"Cannot register {pid!r}: {exc}") from exc
        self.providers[pid] = provider
        return provider

    def attach(self, router: ProviderRegistry) -> list[tuple[PluginProvider, Exception]]:
        """Register every provider into ``router`` (as :meth:`register` does, login
        included) and send later ones there; returns the ones it refused."""
        self.router = router
        refused = []
        for pid, provider in list(self.providers.items()):
            try:
                router.register_provider(
                    pid, self._with_login(provider), list(provider.registration.models)
                )
            except Exception as exc:  # the router's own refusal, whatever its type
                refused.append((provider, exc))
        return refused

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

    def _options(self, registration: Registration) -> dict[str, Any]:
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
        return options

    def provider_config(
        self, registration: Registration, *, access_token: str | None = None
    ) -> dict[str, Any]:
        """``providerConfig`` for one request (raises AuthError when a required key is missing).

        ``access_token`` is the OAuth token of a call that logs in with OAuth.
        """
        if access_token is None and self.auth_mode(registration) == "oauth":
            # Only reached when no login endpoints are known (else OAuthProvider brings a token).
            pid = registration.provider_id
            raise ConfigError(
                f"The provider {pid!r} logs in with OAuth, but neither its registration nor "
                f"[connections.{pid}.oauth] in config.toml says where: add that table with "
                "authorize_url, token_url and client_id",
                connection=pid,
            )
        config = resolve_provider_config(
            registration,
            self._options(registration),
            get_key=self._get_key or _keyring_get,
            environ=self._environ if self._environ is not None else os.environ,
            access_token=access_token,
        )
        self._remember(registration, config)
        return config

    # --- OAuth ----------------------------------------------------------------

    def auth_mode(self, registration: Registration) -> str:
        """``key``, ``oauth`` or ``auto`` for this provider (see the module docstring)."""
        pid = registration.provider_id
        configured = self.config.connections.get(pid) if self.config is not None else None
        if configured is not None and configured.auth is not None:
            return configured.auth
        if configured is not None and configured.oauth is not None:
            return "auto" if registration.has_password else "oauth"
        if not registration.wants_oauth:
            return "key"
        return "auto" if registration.has_password else "oauth"

    def oauth_config(self, registration: Registration) -> OAuthConfig | None:
        """Where this provider's users log in: ``[connections.<id>.oauth]``, else the
        registration's ``oauth`` block."""
        pid = registration.provider_id
        configured = self.config.connections.get(pid) if self.config is not None else None
        if configured is not None and configured.oauth is not None:
            return configured.oauth
        return registration.oauth

    def _has_key(self, registration: Registration) -> bool:
        try:
            config = resolve_provider_config(
                registration,
                self._options(registration),
                get_key=self._get_key or _keyring_get,
                environ=self._environ if self._environ is not None else os.environ,
            )
        except ModelportError:
            return False
        return any(
            config.get(spec["key"])
            for spec in registration.config_fields
            if spec.get("type") == "password"
        )

    def _with_login(self, provider: PluginProvider) -> Provider | PluginProvider:
        """``provider``, behind an OAuthProvider when it logs in with OAuth."""
        registration = provider.registration
        mode = self.auth_mode(registration)
        config = self.oauth_config(registration)
        if mode == "key" or config is None:
            return provider
        from modelport.auth.provider import OAuthProvider

        session = self._broker().session(registration.provider_id, config)
        key_provider = None
        if mode == "auto":

            def key_provider() -> PluginProvider | None:
                return provider if self._has_key(registration) else None

        return OAuthProvider(
            session, provider.with_access_token, key_provider=key_provider, embeds=True
        )

    def _broker(self) -> TokenBroker:
        if self._tokens is None:
            from modelport.auth.session import TokenBroker

            self._tokens = TokenBroker()
            self._own_tokens = True
        return self._tokens

    async def aclose(self) -> None:
        if self._own_tokens and self._tokens is not None:
            await self._tokens.aclose()

    # --- keeping secrets out of what plugins write ---------------------------------

    def _remember(self, registration: Registration, config: Mapping[str, Any]) -> None:
        secret_keys = {
            spec["key"]
            for spec in registration.config_fields
            if spec.get("type") in ("password", "oauth")
        }
        secret_keys.add(registration.oauth_field or DEFAULT_OAUTH_FIELD)
        for key in secret_keys:
            value = config.get(key)
            if isinstance(value, str) and len(value) >= 4:
                self._secrets[value] = None
                self._secrets.move_to_end(value)
        while len(self._secrets) > _REMEMBERED_SECRETS:
            self._secrets.popitem(last=False)

    def scrub(self, text: str) -> str:
        """``text`` with every secret this host handed to a plugin replaced by ``***``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


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
