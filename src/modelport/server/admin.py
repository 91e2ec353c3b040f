"""Admin routes: reload the configuration; list, inspect, reload, start, stop and trust
plugins, and read a plugin's log as it grows.

The gateway mounts :func:`routes` behind its admin key. Every plugin handler
reads the host from ``request.app.state.plugin_host`` (a
:class:`~modelport.plugin_host.host.PluginHost`), so the routes hold no state of
their own and a test can hand any host to a bare Starlette app.
``POST /admin/reload`` reads the configuration and stored keys again
(:mod:`modelport.server._reload`); the plugin reload (``POST /plugins/load``)
does that first, where the app has a reloader.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from modelport.errors import ConfigError, ModelportError, PluginError
from modelport.server._reload import reload_endpoint

if TYPE_CHECKING:
    from modelport.plugin_host.host import PluginHost

__all__ = ["routes"]


def _error(status: int, message: str, kind: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, **extra}}, status_code=status)


def _host(request: Request) -> PluginHost | None:
    return getattr(request.app.state, "plugin_host", None)


def _no_host() -> JSONResponse:
    return _error(503, "This gateway runs without a plugin host.", "unavailable")


def _failure(exc: ModelportError) -> JSONResponse:
    # An untrusted folder or a bad manifest is the user's to fix (409); a plugin
    # that crashed or hung while starting is a bad gateway (502).
    status = 409 if isinstance(exc, ConfigError) else 502 if isinstance(exc, PluginError) else 500
    return _error(status, str(exc), "plugin_error", detail=exc.to_dict())


async def list_plugins(request: Request) -> JSONResponse:
    host = _host(request)
    if host is None:
        return _no_host()
    return JSONResponse({"plugins": host.describe_all(), "skipped": host.describe_skipped()})


def _named(request: Request) -> tuple[PluginHost, str] | JSONResponse:
    """The host and the plugin name the path gives, or the response saying why not."""
    host = _host(request)
    if host is None:
        return _no_host()
    name = request.path_params["name"]
    if name not in host:
        return _error(404, f"No plugin named {name!r}.", "not_found")
    return host, name


async def get_plugin(request: Request) -> JSONResponse:
    found = _named(request)
    if isinstance(found, JSONResponse):
        return found
    host, name = found
    return JSONResponse(host.describe(name, stderr=True))


async def load_plugins(request: Request) -> JSONResponse:
    """Reload the configuration, rescan the plugin folders, start the startup plugins.

    The configuration reload (as ``POST /admin/reload``) also reads stored keys
    again, so a key changed with ``modelport keys set`` (or ``keys delete``)
    takes effect in the running gateway — even one without a plugin host,
    which still answers 503.
    """
    state = request.app.state
    reloader = getattr(state, "reloader", None)
    if reloader is not None:
        await reloader.reload("POST /plugins/load")
    elif getattr(state, "router", None) is not None:
        state.router.forget_keys()
    host = _host(request)
    if host is None:
        return _no_host()
    await host.load()
    await host.start_startup_plugins()
    return JSONResponse({"plugins": host.describe_all(), "skipped": host.describe_skipped()})


async def start_plugin(request: Request) -> JSONResponse:
    found = _named(request)
    if isinstance(found, JSONResponse):
        return found
    host, name = found
    try:
        await host.start(name)
    except ModelportError as exc:
        return _failure(exc)
    return JSONResponse(host.describe(name, stderr=True))


async def stop_plugin(request: Request) -> JSONResponse:
    found = _named(request)
    if isinstance(found, JSONResponse):
        return found
    host, name = found
    await host.stop(name)
    return JSONResponse(host.describe(name, stderr=True))


async def trust_plugin(request: Request) -> JSONResponse:
    """Trust a project plugin's folder, as ``modelport plugins trust`` does.

    Every plugin in that folder is trusted as its manifest is now, and so is
    the project's ``config.toml``, which the gateway then reads again.
    """
    found = _named(request)
    if isinstance(found, JSONResponse):
        return found
    host, name = found
    try:
        await asyncio.to_thread(host.trust_folder, name)
    except ModelportError as exc:
        return _failure(exc)
    if getattr(request.app.state, "router", None) is not None:
        from modelport.server.admin_connections import reload_config

        try:
            await reload_config(request.app.state)
        except ModelportError as exc:
            return _failure(exc)
    return JSONResponse(host.describe(name, stderr=True))


async def plugin_log(request: Request) -> JSONResponse:
    """``GET /plugins/{name}/log?after=N``: the log lines after the first ``N`` ever written.

    ``next`` is the ``after`` to send next time, so polling reads each line once.
    """
    found = _named(request)
    if isinstance(found, JSONResponse):
        return found
    host, name = found
    raw = request.query_params.get("after", "0")
    if not raw.isdigit():
        return _error(
            400, "after must be a whole number (the `next` of the last answer)", "invalid"
        )
    lines, total = host.log_since(name, int(raw))
    return JSONResponse({"lines": lines, "next": total})


def routes() -> list[BaseRoute]:
    """The admin routes, to be mounted behind the admin key."""
    return [
        Route("/admin/reload", reload_endpoint, methods=["POST"]),
        Route("/plugins", list_plugins, methods=["GET"]),
        Route("/plugins/load", load_plugins, methods=["POST"]),
        Route("/plugins/{name}", get_plugin, methods=["GET"]),
        Route("/plugins/{name}/start", start_plugin, methods=["POST"]),
        Route("/plugins/{name}/stop", stop_plugin, methods=["POST"]),
        Route("/plugins/{name}/trust", trust_plugin, methods=["POST"]),
        Route("/plugins/{name}/log", plugin_log, methods=["GET"]),
    ]
