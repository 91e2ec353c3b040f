"""Admin routes for connections: list, add or change, delete, and test them.

What the web UI's Settings page does, any script can do here:

* ``GET /admin/connections``: every configured connection and every provider
  a plugin registered, with where its key comes from, never the key;
* ``PUT /admin/connections/{name}``: create the connection or change the
  fields the body names, in ``config.toml`` (through
  :func:`modelport.config.set_connection`, which keeps the file's comments),
  and store a key where ``modelport keys set`` does;
* ``DELETE /admin/connections/{name}``;
* ``POST /admin/connections/{name}/test``: the checks ``modelport doctor``
  runs (:mod:`modelport.checks`), through the running router.

After a change the gateway reads ``config.toml`` again and its router, plugin
host and key cache take the new settings (:func:`apply_config`), so the next
request uses them; requests already running keep what they started with.
A key is write-only: answers say ``set`` or ``not set`` and where it comes from.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from modelport.errors import ConfigError, ModelportError

if TYPE_CHECKING:
    from modelport.config import Config, ConnectionConfig

__all__ = ["COMPATS", "ConnectionUpdate", "apply_config", "routes"]

#: The built-in wire formats; ``plugin:<provider id>`` reaches a plugin's provider.
COMPATS = ("openai", "anthropic", "ollama", "gemini", "azure")
#: Option names whose values are never sent to a browser (a key put inline in the table).
_SECRET_NAME = re.compile(r"(?i)(key|token|secret|password|credential)")


class ConnectionUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of ``PUT /admin/connections/{name}``: only the fields given change.

    ``null`` removes a setting. ``options`` sets provider options (a plugin's
    ``configFields`` text values); ``key`` stores the connection's key (the
    keyring, else the owner-only key file) and ``clear_key`` forgets it.
    """

    compat: str | None | msgspec.UnsetType = msgspec.UNSET
    base_url: str | None | msgspec.UnsetType = msgspec.UNSET
    api_key_env: str | None | msgspec.UnsetType = msgspec.UNSET
    timeout: float | None | msgspec.UnsetType = msgspec.UNSET
    max_retries: int | None | msgspec.UnsetType = msgspec.UNSET
    options: dict[str, str | int | float | bool | None] = msgspec.field(default_factory=dict)
    key: str | None = None
    clear_key: bool = False


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def _state(request: Request) -> Any:
    return request.app.state


def _password_fields(state: Any, name: str) -> list[str]:
    host = getattr(state, "plugin_host", None)
    provider = host.providers.get(name) if host is not None else None
    if provider is None:
        return []
    return [f["key"] for f in provider.registration.config_fields if f.get("type") == "password"]


def _key_status(state: Any, name: str, connection: ConnectionConfig | None) -> dict[str, Any]:
    """Whether connection ``name`` has a key and where from: never the key itself."""
    from modelport.auth.keys import get_key

    try:
        stored = get_key(name) is not None
    except ModelportError:
        stored = False
    if stored:
        return {"set": True, "source": "stored"}
    try:
        available = state.router.settings_for(name).api_key is not None
    except ModelportError:
        available = False
    variable = connection.api_key_env if connection is not None else None
    if available:
        return {"set": True, "source": f"${variable}" if variable else "environment"}
    return {"set": False, "source": None}


def _row(state: Any, name: str) -> dict[str, Any]:
    config: Config = state.router.config
    configured = config.connections.get(name)
    host = getattr(state, "plugin_host", None)
    provider = host.providers.get(name) if host is not None else None
    connection = configured or config.connection(name)
    secret = set(_password_fields(state, name))
    options = {}
    if connection is not None:
        options = {
            key: value
            for key, value in connection.options.items()
            if key not in secret and not _SECRET_NAME.search(key)
        }
    return {
        "name": name,
        "configured": configured is not None,
        "compat": (connection.compat if connection else None) or f"plugin:{name}",
        "base_url": connection.base_url if connection else None,
        "api_key_env": connection.api_key_env if connection else None,
        "timeout": connection.timeout if connection else None,
        "max_retries": connection.max_retries if connection else None,
        # Header values may be credentials: their names only.
        "headers": sorted(connection.headers) if connection else [],
        "options": options,
        "key": _key_status(state, name, connection),
        "plugin": provider.registration.plugin if provider is not None else None,
        "config_fields": list(provider.registration.config_fields) if provider else [],
    }


def _names(state: Any) -> list[str]:
    host = getattr(state, "plugin_host", None)
    registered = set(host.providers) if host is not None else set()
    return sorted({*state.router.config.connections, *registered})


async def list_connections(request: Request) -> JSONResponse:
    """``GET /admin/connections``."""
    state = _state(request)
    rows = await asyncio.to_thread(lambda: [_row(state, name) for name in _names(state)])
    host = getattr(state, "plugin_host", None)
    plugins = sorted(host.providers) if host is not None else []
    return JSONResponse(
        {"connections": rows, "compats": [*COMPATS, *(f"plugin:{pid}" for pid in plugins)]}
    )


def _check_update(name: str, update: ConnectionUpdate, existing: Config, state: Any) -> None:
    from modelport.config import PRESETS, check_base_url

    if not name or "/" in name or name != name.strip():
        raise ConfigError(f"A connection name cannot be empty or contain '/': {name!r}")
    compat = update.compat
    if compat is msgspec.UNSET:
        current = existing.connections.get(name)
        compat = current.compat if current is not None else None
        if current is None and name not in _names(state):
            raise ConfigError(
                f"A new connection needs a compat: {', '.join(COMPATS)} or plugin:<id>"
            )
    if isinstance(compat, str) and not (
        compat in COMPATS or (compat.startswith("plugin:") and len(compat) > len("plugin:"))
    ):
        raise ConfigError(f"compat must be one of {', '.join(COMPATS)} or plugin:<provider id>")
    if isinstance(update.base_url, str):
        check_base_url(update.base_url, connection=name)
    base_url = update.base_url
    if base_url is msgspec.UNSET:
        current = existing.connections.get(name)
        base_url = current.base_url if current is not None else None
    if compat == "openai" and not base_url and name not in PRESETS:
        raise ConfigError(
            f"An OpenAI-compatible connection needs a base URL: {name!r} is not a "
            "ready-made connection that knows its own"
        )
    secret = set(_password_fields(state, name))
    for key in update.options:
        if key in secret:
            raise ConfigError(
                f"{key!r} is a password field: send it as `key`, which is stored safely"
            )
        if key in ConnectionUpdate.__struct_fields__ or key in ("headers", "prices"):
            raise ConfigError(f"{key!r} is a connection setting, not a provider option")


def _save(name: str, update: ConnectionUpdate, existing: Config, state: Any) -> None:
    """Write the change to ``config.toml`` and the key store (on a worker thread)."""
    from modelport.auth.keys import delete_key, set_key
    from modelport.config import set_connection

    _check_update(name, update, existing, state)
    values: dict[str, Any] = {
        field: getattr(update, field)
        for field in ("compat", "base_url", "api_key_env", "timeout", "max_retries")
        if getattr(update, field) is not msgspec.UNSET
    }
    if name not in existing.connections and "compat" not in values:
        values["compat"] = f"plugin:{name}"  # a plugin's provider, configured for the first time
    values.update(update.options)
    set_connection(name, values)
    if update.key:
        set_key(name, update.key)
    elif update.clear_key:
        delete_key(name)


def apply_config(state: Any, config: Config) -> None:
    """Make the running gateway use ``config``: the next request sees it, keys read afresh.

    A request already resolved keeps the provider and settings it started with.
    """
    state.config = config
    state.router.config = config
    state.router.forget_keys()
    host = getattr(state, "plugin_host", None)
    if host is not None:
        host.config = config


async def reload_config(state: Any) -> None:
    """Read ``config.toml`` again into the running gateway.

    Through the gateway's reloader where it reads files (``modelport serve``): a
    new router is swapped in, as for ``POST /admin/reload``, and a configuration
    that does not load raises :class:`ConfigError`. Otherwise in place
    (:func:`apply_config`).
    """
    reloader = getattr(state, "reloader", None)
    if reloader is not None and reloader.load is not None:
        outcome = await reloader.reload("a connection changed through the admin routes")
        if outcome["config"]["state"] == "stale":
            raise ConfigError(f"The configuration does not load: {outcome['config']['error']}")
        return
    from modelport.config import load_config

    apply_config(state, await asyncio.to_thread(load_config))


async def put_connection(request: Request) -> JSONResponse:
    """``PUT /admin/connections/{name}``."""
    state = _state(request)
    name = request.path_params["name"]
    try:
        update = msgspec.json.decode(await request.body(), type=ConnectionUpdate)
    except msgspec.DecodeError as exc:
        return _error(400, f"The body is not a connection update: {exc}")
    created = name not in state.router.config.connections
    try:
        await asyncio.to_thread(_save, name, update, state.router.config, state)
        await reload_config(state)
    except ConfigError as exc:
        return _error(400, exc.message)
    row = await asyncio.to_thread(_row, state, name)
    return JSONResponse(row, status_code=201 if created else 200)


async def delete_connection(request: Request) -> JSONResponse:
    """``DELETE /admin/connections/{name}``; ``?forget_key=true`` also forgets its stored key."""
    from modelport.auth.keys import delete_key
    from modelport.config import remove_connection

    state = _state(request)
    name = request.path_params["name"]
    if name not in state.router.config.connections:
        return _error(404, f"No connection named {name!r} in config.toml.", "not_found")
    try:
        await asyncio.to_thread(remove_connection, name)
        if request.query_params.get("forget_key") == "true":
            await asyncio.to_thread(delete_key, name)
        await reload_config(state)
    except ConfigError as exc:
        return _error(400, exc.message)
    return JSONResponse({"deleted": name})


async def check_connection_route(request: Request) -> JSONResponse:
    """``POST /admin/connections/{name}/test``: the doctor's checks for one connection."""
    from modelport.checks import check_connection

    state = _state(request)
    name = request.path_params["name"]
    if name not in _names(state):
        return _error(404, f"No connection or plugin provider named {name!r}.", "not_found")
    report = await check_connection(state.router, name)
    return JSONResponse(report.to_dict())


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/connections", list_connections, methods=["GET"]),
        Route("/admin/connections/{name}", put_connection, methods=["PUT"]),
        Route("/admin/connections/{name}", delete_connection, methods=["DELETE"]),
        Route("/admin/connections/{name}/test", check_connection_route, methods=["POST"]),
    ]
