"""The gateway's application factory.

:func:`create_app` builds a Starlette app from a :class:`~modelport.config.Config`
once: the router, the usage ledger and the plugin host are made here and
shared by every request (nothing is loaded per request), and the lifespan
closes them. The middleware stack is two pure ASGI layers, metrics and access
log outside (``_observe``), the guard inside (``_guard``: host, origin, body,
key); the routes live in small modules (``openai_routes``, ``anthropic_routes``,
``admin``, ``admin_*``, ``health``, ``metrics``, ``openapi``) and the web UI
in ``ui``.
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
from starlette.types import ASGIApp, Receive, Scope, Send

from modelport.errors import InvalidRequestError, ModelportError
from modelport.server import (
    admin,
    admin_connections,
    admin_models,
    admin_usage,
    anthropic_routes,
    embedding_routes,
    governance_routes,
    openai_routes,
    responses_routes,
    ui,
)
from modelport.server._direct import DirectChat
from modelport.server._drain import Drain
from modelport.server._errors import MAX_BODY_BYTES_IN_FLIGHT, error_response_for_path
from modelport.server._guard import BodyBudget, GuardMiddleware
from modelport.server._keys import GatewayKeys, check_binding, is_loopback, resolve_keys
from modelport.server._observe import ObserveMiddleware
from modelport.server._reload import ConfigReloader
from modelport.server._response_cache import build_cache
from modelport.server._response_store import ResponseStore
from modelport.server._sessions import UiSessions
from modelport.server._state import GatewayState
from modelport.server.access_log import BufferedAccessLog
from modelport.server.health import HealthTracker, health_endpoint
from modelport.server.metrics import GatewayMetrics, metrics_endpoint
from modelport.server.openapi import openapi_endpoint

if TYPE_CHECKING:
    from modelport.config import Config
    from modelport.governance import Governance
    from modelport.ledger import Ledger
    from modelport.plugin_host.host import PluginHost
    from modelport.routing import Router

__all__ = ["create_app"]

logger = logging.getLogger("modelport.server")


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


class _Gateway(Starlette):
    """Starlette, with a direct path for the chat routes.

    ``POST /v1/chat/completions``, ``/v1/messages`` and ``/v1/responses`` go through the same
    two middlewares (metrics and access log, then the guard) to their
    handler, without Starlette's error middleware, router and per-route
    exception wrapper (~10 µs a request; the chat handlers answer their own
    errors, and :class:`~modelport.server._observe.ObserveMiddleware` answers a
    bug with a 500). The scope gets what Starlette's routing would give it (``app``,
    ``route``, ``endpoint``, ``path_params``). Everything else, lifespan
    included, is Starlette's.
    """

    _chat: dict[str, Route]
    _direct: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self._direct
        if (
            direct is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            route = self._chat.get(scope["path"])
            if route is not None:
                scope["app"] = self
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await direct(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _call_chat(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive, send)
    response = await scope["endpoint"](request)
    await response(scope, receive, send)


def create_app(
    config: Config | None = None,
    *,
    router: Router | None = None,
    plugin_host: PluginHost | None | Literal[False] = None,
    ledger: Ledger | None | Literal[False] = None,
    keepalive_interval: float = 15.0,
    host: str = "127.0.0.1",
    keys: GatewayKeys | None = None,
    access_log: bool | BufferedAccessLog = True,
    allowed_hosts: Iterable[str] = (),
    max_bodies_in_flight: int = MAX_BODY_BYTES_IN_FLIGHT,
    reloader: ConfigReloader | None = None,
    governance: Governance | None | Literal[False] = None,
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
    (against DNS rebinding); ``allowed_hosts`` and ``[gateway] allowed_hosts``
    add names, such as the one a reverse proxy forwards or ``testserver`` for
    an in-process test client. ``max_bodies_in_flight`` bounds the bytes of request
    bodies held at once (past it a large body gets 503 and ``Retry-After``).
    ``keepalive_interval`` is the silence, in seconds, after which a stream
    gets a keep-alive frame. ``access_log`` is True (a :mod:`logging` record
    per request on ``modelport.access``), False, or a
    :class:`~modelport.server.access_log.BufferedAccessLog` (what ``modelport
    serve`` uses; the lifespan flushes it).
    ``reloader`` picks configuration changes up without a restart
    (:mod:`modelport.server._reload`; ``modelport serve`` watches the files and
    SIGHUP). Without one, ``POST /admin/reload`` reads the configuration again
    when ``create_app`` loaded it, and only stored keys when it was handed in.
    ``governance`` is the team gateway's gate (virtual keys, budgets, rate
    limits: :func:`modelport.governance.open_governance`); ``None`` opens it on
    the ledger's database (and ``redis_url``), ``False`` runs without. A
    database that cannot be read raises ``ConfigError``: the gateway cannot know
    whether it has keys to enforce, so it does not start open.
    """
    if reloader is None:
        reloader = ConfigReloader(_load_config if config is None and router is None else None)
    if config is None:
        config = router.config if router is not None else _load_config()
    keys = keys if keys is not None else resolve_keys(config)
    loopback = is_loopback(host)
    check_binding(host, keys)

    if router is None:
        from modelport.routing import Router

        if ledger is None:
            ledger = _open_ledger(config)
        router = Router(config, ledger=ledger or None)
        if plugin_host is None:
            from modelport.plugin_host.host import PluginHost

            plugin_host = PluginHost.from_config(router, config, tokens=router.tokens)

    if governance is None:
        from modelport.governance import open_governance

        governance = open_governance(config)
    governance = governance or None

    routes: list[BaseRoute] = [
        *openai_routes.routes(),
        *anthropic_routes.routes(),
        *responses_routes.routes(),
        *embedding_routes.routes(),
        Route("/health", health_endpoint, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        *admin.routes(),
        *governance_routes.routes(),
        *admin_connections.routes(),
        *admin_models.routes(),
        *admin_usage.routes(),
        *ui.routes(),
    ]
    metrics = GatewayMetrics()
    sessions = UiSessions()
    bodies = BodyBudget(max_bodies_in_flight)
    metrics.watch_bodies(bodies)
    middleware = [
        Middleware(
            ObserveMiddleware,
            metrics=metrics,
            access_log=access_log,
            known_paths=frozenset(r.path for r in routes if isinstance(r, Route)),
        ),
        Middleware(
            GuardMiddleware,
            keys=keys,
            loopback=loopback,
            host=host,
            allowed_hosts=(*config.gateway.allowed_hosts, *allowed_hosts),
            governance=governance,
            sessions=sessions,
            bodies=bodies,
        ),
    ]
    app = _Gateway(
        routes=routes,
        middleware=middleware,
        exception_handlers={404: _http_error, 405: _http_error},
        lifespan=_lifespan,
    )
    app._chat = {
        r.path: r
        for r in routes
        if isinstance(r, Route)
        and r.path in _DIRECT_PATHS
        and r.methods is not None
        and "POST" in r.methods
    }
    # The same two layers' checks, run from one entry (server/_direct.py).
    observe_options, guard_options = (layer.kwargs for layer in middleware)
    app._direct = DirectChat(
        ObserveMiddleware(_call_chat, **observe_options),
        GuardMiddleware(_call_chat, **guard_options),
    )
    state = app.state = GatewayState()
    state.config = config
    state.router = router
    state.ledger = ledger or None
    _watch_ledger(metrics, state.ledger or router.ledger)
    state.responses = _response_store(state.ledger or router.ledger)
    state.plugin_host = plugin_host or None
    state.governance = governance
    state.metrics = metrics
    # The router a reload swapped in, whichever it is by then.
    state.health = HealthTracker(lambda: state.router.connection_names())
    state.reloader = reloader
    reloader.bind(app)
    state.keepalive_interval = keepalive_interval
    state.drain = Drain()
    state.keys = keys
    state.loopback = loopback
    state.sessions = sessions
    state.cache = build_cache(config.cache, config.redis_url)
    state.ready = False
    state.access_log = access_log if isinstance(access_log, BufferedAccessLog) else None
    return app


#: The routes :class:`_Gateway` dispatches itself.
_DIRECT_PATHS = frozenset({"/v1/chat/completions", "/v1/messages", "/v1/responses"})


def _watch_ledger(metrics: GatewayMetrics, ledger: Any) -> None:
    from modelport.ledger import Ledger

    # A router handed in may record through its own ledger; /metrics counts its losses too.
    if isinstance(ledger, Ledger):
        metrics.watch_ledger(ledger)


def _response_store(ledger: Any) -> ResponseStore:
    from modelport.ledger import Ledger

    # previous_response_id survives restarts where calls are recorded: in the same database.
    return ResponseStore(ledger.response_store if isinstance(ledger, Ledger) else None)


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
    if state.governance is not None:
        # Refuses (ConfigError) to run beside instances it cannot share counters with.
        await state.governance.start()
    if host is not None:
        # Discovery is a quick folder scan; starting the plugins is not, and the
        # gateway must answer /health within a second, so that runs behind us.
        await host.load()
        starting = asyncio.create_task(_start_plugins(host))
    start_ledger = getattr(getattr(state, "ledger", None), "start", None)
    if start_ledger is not None:
        start_ledger()  # writes what a previous run left in the outage spool
    state.reloader.start()
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


#: Seconds the lifespan waits for calls that are still tidying up (recording their usage).
_SETTLE = 2.0


async def _close(state: Any, starting: asyncio.Task[None] | None) -> None:
    # A call that uvicorn cancelled at its own shutdown timeout still has to run its
    # finally clauses (the ledger record among them) before the ledger closes.
    drain: Drain | None = getattr(state, "drain", None)
    if drain is not None and not await drain.wait_idle(_SETTLE):
        logger.warning("%d call(s) still running as the gateway closes", len(drain))
    if starting is not None and not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
    access_log = getattr(state, "access_log", None)
    if access_log is not None:
        access_log.flush()
    for name in ("reloader", "plugin_host", "router", "governance", "responses", "cache", "ledger"):
        resource = getattr(state, name, None)
        if resource is None:
            continue
        try:
            await resource.aclose()
        except Exception:  # closing the rest matters more than this one
            logger.exception("closing the %s failed", name.replace("_", " "))
