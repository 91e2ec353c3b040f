"""The settings ladder: the URL, key, timeout and retries one call to a connection uses.

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
only for the ``openai`` connection *and* OpenAI's URL; ``GEMINI_API_KEY``, then
``GOOGLE_API_KEY``, for ``gemini`` and Google's URL); ``MODELPORT_API_KEY``
last. The stored key and ``api_key_env`` are used only when the call goes to
the connection's own URL — its configured ``base_url``, its preset's, or the
provider's default when it has neither — so a per-call ``base_url`` elsewhere
(or ``MODELPORT_BASE_URL``) gets none of them. ``MODELPORT_API_KEY`` pairs
with ``MODELPORT_BASE_URL``: it is used when the URL came from that variable,
when the call goes to a ``base_url`` configured explicitly in ``config.toml``,
or for a plugin's (or provider package's) connection with no URL at all —
never for a preset's URL (``openrouter/…`` does not receive it) nor for a
per-call ``base_url``.

How the call authenticates (``auth`` in the connection's table): ``"key"``
(the default) uses the ladder above; ``"oauth"`` uses none of it and marks the
settings ``auth="oauth"``, so the router puts the connection's provider behind
an :class:`~modelport.auth.provider.OAuthProvider` that brings a fresh access
token to each call; ``"auto"`` is the dual mode: the key when the ladder finds
one, else OAuth. A call's own ``api_key`` always wins, and an OAuth token, like
a stored key, goes only to the connection's own URL.

:attr:`ConnectionSettings.api_key_env <modelport.providers.ConnectionSettings>`
names the variable the ladder reads for the connection's own key (its
``api_key_env``, else the vendor's where that one applies), so a provider's
"no key" message can say which variable to set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Literal
from urllib.parse import urlsplit

from modelport.config import PRESET_KEY_FALLBACKS, PRESETS, Config, ConnectionConfig, check_base_url
from modelport.errors import ConfigError
from modelport.providers import (
    BUILTIN_PROVIDERS,
    DEFAULT_RETRY_BASE_DELAY,
    DEFAULT_RETRY_MAX_DELAY,
    ConnectionSettings,
)
from modelport.providers._local_servers import on_this_machine

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "LOCAL_MAX_RETRIES",
    "StoredKeys",
    "default_base_url",
    "is_local_url",
    "env_stamp",
    "ladder_stamp",
    "resolve_settings",
]

# The router's logger: these are the router's settings, and its log lines keep their name.
logger = logging.getLogger("modelport.routing")

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
LOCAL_MAX_RETRIES = 1

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


def is_local_url(url: str | None) -> bool:
    """Whether ``url`` points at this machine (``localhost``, loopback addresses)."""
    if not url:
        return False
    try:
        host = urlsplit(url).hostname
    except ValueError:  # a malformed URL is nobody's machine; check_base_url names it
        return False
    return on_this_machine(host)


def _same_url(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.rstrip("/") == b.rstrip("/")


def resolve_settings(
    connection: str,
    table: ConnectionConfig,
    *,
    configured: ConnectionConfig | None,
    env: Mapping[str, str],
    stored_key: Callable[[str], str | None],
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> ConnectionSettings:
    """The settings one call to ``connection`` uses, after the ladder (module docstring).

    ``table`` is the connection's table with its preset filled in
    (:meth:`Config.connection <modelport.config.Config.connection>`, or a
    registered provider's stand-in); ``configured`` is what ``config.toml``
    itself says (``None`` when nothing). ``stored_key`` reads the stored key
    of a connection; it is asked only when the call goes to the connection's
    own URL.
    """
    preset = PRESETS.get(connection)
    compat = table.compat or "openai"
    configured_url = configured.base_url if configured is not None else None
    url_source: _UrlSource
    if base_url:
        url, url_source = base_url, "call"
    elif table.base_url:
        url = table.base_url
        url_source = "config" if configured_url else "preset"
    elif env.get("MODELPORT_BASE_URL"):
        url, url_source = env["MODELPORT_BASE_URL"], "env"
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
    preset_url = preset.base_url if preset is not None and preset.compat == compat else None
    own_url = url_source in ("config", "preset", "default") or (
        url_source == "call" and (_same_url(url, configured_url) or _same_url(url, preset_url))
    )
    variables = _key_variables(connection, table, preset, url) if own_url else []
    auth = "key"
    if not api_key:
        api_key = (stored_key(connection) or _first_set(variables, env)) if own_url else None
        if not api_key and _generic_key_allowed(compat, url, url_source, configured_url):
            api_key = env.get("MODELPORT_API_KEY") or None
        if own_url and (table.auth == "oauth" or (table.auth == "auto" and not api_key)):
            api_key, auth = None, "oauth"
    return ConnectionSettings(
        name=connection,
        compat=compat,
        base_url=url,
        api_key=api_key,
        api_key_env=variables[0] if variables else None,
        timeout=timeout if timeout is not None else (table.timeout or DEFAULT_TIMEOUT),
        max_retries=max_retries,
        retry_base_delay=table.retry_base_delay or DEFAULT_RETRY_BASE_DELAY,
        retry_max_delay=table.retry_max_delay or DEFAULT_RETRY_MAX_DELAY,
        temperature=table.temperature,
        max_tokens=table.max_tokens,
        headers={**table.headers, **(headers or {})},
        options=dict(table.options),
        auth=auth,
        oauth=table.oauth if auth == "oauth" else None,
    )


def _key_variables(
    connection: str, table: ConnectionConfig, preset: ConnectionConfig | None, url: str | None
) -> list[str]:
    """The variables that may hold the key for a call to the connection's own ``url``.

    The connection's ``api_key_env``, then the vendor's own variables — only where
    the call goes to that vendor (the preset's compat *and* URL).
    """
    variables: list[str] = []
    if table.api_key_env:
        variables.append(table.api_key_env)
    if (
        preset is not None
        and preset.api_key_env
        and table.compat == preset.compat
        and _same_url(url, preset.base_url)
    ):
        variables.append(preset.api_key_env)
        variables.extend(PRESET_KEY_FALLBACKS.get(connection, ()))
    return variables


def _first_set(variables: list[str], env: Mapping[str, str]) -> str | None:
    for name in variables:
        value = env.get(name)
        if value:
            return value
    return None


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


def default_base_url(compat: str) -> str | None:
    """The URL a built-in adapter uses when the connection names none (``None`` otherwise)."""
    target = BUILTIN_PROVIDERS.get(compat)
    if target is None or not target.startswith("modelport.providers."):
        return None
    import importlib

    module = importlib.import_module(target.partition(":")[0])
    return getattr(module, "DEFAULT_BASE_URL", None)


#: ``os.environ``'s own dict on POSIX (names and values encoded as the os module does).
#: A stamp reads the environment on every call, and ``os.environ.get`` of a name that
#: is not set costs ~3 µs (a ``KeyError`` raised and caught in the ``Mapping`` mixin);
#: the dict answers in under 0.1 µs.
_RAW_ENVIRON: dict[bytes, bytes] | None = (
    os.environ._data  # type: ignore[attr-defined]
    if os.name == "posix" and isinstance(getattr(os.environ, "_data", None), dict)
    else None
)
_FS_ENCODING = sys.getfilesystemencoding()


def env_stamp(env: Mapping[str, str], name: str) -> object:
    """What ``env`` holds for ``name``, for a stamp: equal exactly while the value is
    (``os.environ``'s raw bytes, not the string; ``None`` when unset)."""
    if env is os.environ and _RAW_ENVIRON is not None:
        return _RAW_ENVIRON.get(name.encode(_FS_ENCODING, "surrogateescape"))
    return env.get(name)


def ladder_stamp(
    connection: str, config: Config, env: Mapping[str, str], keys: StoredKeys
) -> tuple[object, ...]:
    """What the ladder reads for ``connection`` beyond the config (a few dict reads).

    Settings resolved earlier still hold while this stays the same and the
    config is the same object.
    """
    configured = config.connections.get(connection)
    preset = PRESETS.get(connection)
    key_env = configured.api_key_env if configured is not None else None
    vendor_env = preset.api_key_env if preset is not None else None
    return (
        env_stamp(env, "MODELPORT_BASE_URL"),
        env_stamp(env, "MODELPORT_API_KEY"),
        env_stamp(env, key_env) if key_env else None,
        env_stamp(env, vendor_env) if vendor_env else None,
        *(env_stamp(env, name) for name in PRESET_KEY_FALLBACKS.get(connection, ())),
        keys.cached(connection),
    )


class StoredKeys:
    """Stored keys (keyring or key file), read once per connection and kept.

    Keyring lookups can be slow (D-Bus, a locked keychain); once per router is
    enough. The async paths read a key ahead, off the event loop (:meth:`load`);
    :meth:`get` is the sync path. :meth:`forget` makes the next call read again.
    """

    def __init__(self) -> None:
        self._keys: dict[str, str | None] = {}

    def get(self, connection: str) -> str | None:
        if connection not in self._keys:
            self._keys[connection] = _read_stored_key(connection)
        return self._keys[connection]

    async def load(self, connection: str) -> None:
        """Read ``connection``'s key in a worker thread, once, before a call needs it."""
        if connection not in self._keys:
            value = await asyncio.to_thread(_read_stored_key, connection)
            self._keys.setdefault(connection, value)

    def cached(self, connection: str) -> str | None:
        """The key read for ``connection`` so far (``None`` when not read yet)."""
        return self._keys.get(connection)

    def __contains__(self, connection: object) -> bool:
        """Whether ``connection``'s stored key was read (found or not)."""
        return connection in self._keys

    def forget(self) -> None:
        self._keys.clear()


def _read_stored_key(connection: str) -> str | None:
    from modelport.auth.keys import get_key

    try:
        return get_key(connection)
    except ConfigError as exc:
        logger.warning("cannot read stored keys: %s", exc)
        return None
