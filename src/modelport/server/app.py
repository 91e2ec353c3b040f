"""The gateway's application factory.

:func:`create_app` builds a Starlette app from a :class:`~modelport.config.Config`
once: the router, the usage ledger and the plugin host are made here and
shared by every request (nothing is loaded per request), and the lifespan
closes them. The middleware stack is two pure ASGI layers, metrics and access
log outside, the key check inside; the routes live in small modules
(``openai_routes``, ``anthropic_routes``, ``admin``, ``health``, ``metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Literal

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.errors import InvalidRequestError, ModelportError
from modelport.server import anthropic_routes, openai_routes
from modelport.server._auth import (
    AuthMiddleware,
    GatewayKeys,
    check_binding,
    error_response_for_path,
    is_loopback,
    resolve_keys,
)
from modelport.server.health import HealthTracker, health_endpoint
from modelport.server.metrics import GatewayMetrics, ObserveMiddleware, metrics_endpoint
from modelport.server.openapi import openapi_endpoint

if TYPE_CHECKING:
    from modelport.config import Config
    from modelport.ledger import Ledger
    from modelport.plugins.host import PluginHost
    from modelport.router import Router

__all__ = ["create_app"]

logger = logging.getLogger("modelport.server")


def _admin_routes() -> list[BaseRoute]:
    from modelport.server.admin import routes

    return routes()


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's 404/405 in the error shape of the API the path belongs to."""
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if exc.status_code == 404:
        message = f"There is no route {request.method} {path} on this gateway."
    else:
        message = f"{request.method} {path}: {exc.detail}"
    error = InvalidRequestError(message)
    response = error_response_for_path(path, error)
    response.status_code = exc.status_code
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def create_app(
    config: Config | None = None,
    *,
    router: Router | None = None,
    plugin_host: PluginHost | None | Literal[False] = None,
    ledger: Ledger | None | Literal[False] = None,
    keepalive_interval: float = 15.0,
    host: str = "127.0.0.1",
    keys: GatewayKeys | None = None,
    access_log: bool = True,
    allowed_hosts: Iterable[str] = (),
) -> Starlette:
    """Build the gateway.

    ``config`` defaults to :func:`modelport.config.load_config`. Without a
    ``router`` one is built from ``config``, together with the usage ledger
    (``ledger=None`` opens the configured one; ``False`` runs without) and the
    plugin host (``plugin_host=None`` discovers the usual plugin folders and
    starts the startup plugins in the background; ``False`` runs without).
    Whatever the app holds, its lifespan closes.

    ``host`` is the address the server will bind: beyond loopback a gateway
    key is required (``ConfigError`` otherwise) and admin routes need the
    admin key. ``keys`` overrides the keys from config and environment.
    Requests must name a loopback host or ``host`` in their ``Host`` header
    (against DNS rebinding); ``allowed_hosts`` adds names, such as the one a
    reverse proxy forwards or ``testserver`` for an in-process test client.
    ``keepalive_interval`` is the silence, in seconds, after which a stream
    gets a keep-alive frame.
    """
    if config is None:
        config = router.config if router is not None else _load_config()
    keys = keys if keys is not None else resolve_keys(config)
    loopback = is_loopback(host)
    check_binding(host, keys)

    if router is None:
        from modelport.router import Router

        if ledger is None:
            ledger = _open_ledger(config)
        router = Router(config, ledger=ledger or None)
        if plugin_host is None:
            from modelport.plugins.host import PluginHost

            plugin_host = PluginHost.from_config(router, config)

    routes: list[BaseRoute] = [
        *openai_routes.routes(),
        *anthropic_routes.routes(),
        Route("/health", health_endpoint, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        *_admin_routes(),
    ]
    metrics = GatewayMetrics()
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                ObserveMiddleware,
                metrics=metrics,
                access_log=access_log,
                known_paths=frozenset(r.path for r in routes if isinstance(r, Route)),
            ),
            Middleware(
                AuthMiddleware,
                keys=keys,
                loopback=loopback,
                host=host,
                allowed_hosts=tuple(allowed_hosts),
            ),
        ],
        exception_handlers={404: _http_error, 405: _http_error},
        lifespan=_lifespan,
    )
    state = app.state
    state.config = config
    state.router = router
    state.ledger = ledger or None
    _watch_ledger(metrics, state.ledger or router.ledger)
    state.plugin_host = plugin_host or None
    state.metrics = metrics
    state.health = HealthTracker(router.connection_names)
    state.keepalive_interval = keepalive_interval
    state.keys = keys
    state.ready = False
    return app


def _watch_ledger(metrics: GatewayMetrics, ledger: Any) -> None:
    from modelport.ledger import Ledger

    # A router handed in may record through its own ledger; /metrics counts its losses too.
    if isinstance(ledger, Ledger):
        metrics.watch_ledger(ledger)


def _load_config() -> Config:
    from modelport.config import load_config

    return load_config()


def _open_ledger(config: Config) -> Ledger | None:
    from modelport.ledger import open_ledger

    try:
        return open_ledger(config)
    except ModelportError as exc:
        # A gateway without usage records beats no gateway; say so loudly.
        logger.warning("usage ledger disabled: %s", exc)
        return None


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    state = app.state
    host = state.plugin_host
    starting: asyncio.Task[None] | None = None
    if host is not None:
        # Discovery is a quick folder scan; starting the plugins is not, and the
        # gateway must answer /health within a second, so that runs behind us.
        await host.load()
        starting = asyncio.create_task(_start_plugins(host))
    state.ready = True
    try:
        yield
    finally:
        state.ready = False
        await _close(state, starting)


async def _start_plugins(host: Any) -> None:
    try:
        await host.start_startup_plugins()
    except Exception:
        logger.exception("starting the startup plugins failed")


async def _close(state: Any, starting: asyncio.Task[None] | None) -> None:
    if starting is not None and not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
    for name in ("plugin_host", "router", "ledger"):
        resource = getattr(state, name, None)
        if resource is None:
            continue
        try:
            await resource.aclose()
        except Exception:  # closing the rest matters more than this one
            logger.exception("closing the %s failed", name.replace("_", " "))
