"""``modelport serve``: run the gateway with uvicorn (uvloop and httptools).

The command reads the same configuration as every other command
(``MODELPORT_HOME/config.toml`` and the project's), refuses to listen beyond
loopback without a gateway key, prints the URL to point tools at, and on
SIGTERM (or Ctrl-C) stops accepting, lets in-flight calls finish for up to
``--drain-timeout`` seconds (``[gateway] drain_timeout``, 30 by default), ends
the rest with an error event, writes the usage ledger and stops the plugins
(:mod:`modelport.server._drain`). It lifts the soft open-file limit to the
hard one, and serves HTTP with
:class:`~modelport.server._protocol.GatewayProtocol`: capped request heads and
timeouts for half-sent requests.
Changes to config.toml, the trust file and stored keys reach the running
gateway without a restart: it polls those files every second and reloads on
SIGHUP and on ``POST /admin/reload`` (:mod:`modelport.server._reload`).
``--workers N`` runs N gateway processes on the one port
(:mod:`modelport.cli._serve_workers`).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from modelport.server._reload import ConfigReloader

__all__ = ["register", "serve"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command(name="serve")(serve)


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on ([gateway] host, else 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on ([gateway] port, else 4848).")
    ] = None,
    drain_timeout: Annotated[
        float | None,
        typer.Option(
            "--drain-timeout",
            "--grace",
            min=0,
            help="Seconds in-flight calls get to finish on shutdown before they end with an "
            "error ([gateway] drain_timeout, else 30).",
        ),
    ] = None,
    keepalive: Annotated[
        float, typer.Option(help="Seconds of upstream silence before a keep-alive frame.")
    ] = 15.0,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="One log line per request.")
    ] = True,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Gateway processes on the one port, one core each (sharing ledger and limits).",
        ),
    ] = 1,
) -> None:
    """Run the OpenAI- and Anthropic-compatible gateway (http://127.0.0.1:4848/v1)."""
    from modelport.cli._output import fail
    from modelport.config import load_config
    from modelport.errors import ConfigError
    from modelport.server._keys import check_binding, resolve_keys

    config = load_config()
    host = host or config.gateway.host
    port = port if port is not None else config.gateway.port
    if drain_timeout is None:
        drain_timeout = config.gateway.drain_timeout
    keys = resolve_keys(config)
    try:
        check_binding(host, keys)
    except ConfigError as exc:
        fail(str(exc), "Keys are read from the environment or config.toml, never from the flags.")

    from modelport.server._protocol import HttpLimits, raise_open_file_limit

    _configure_logging(log_level)
    # Each stream holds a client and an upstream connection: use the hard limit
    # (the workers of --workers inherit it).
    raise_open_file_limit()
    if workers > 1:
        from modelport.cli._serve_workers import WorkerOptions, run_workers

        _log_url(host, port, bool(keys.gateway), workers)
        options = WorkerOptions(host, port, keepalive, access_log, log_level, drain_timeout)
        if not run_workers(config, options, workers=workers):
            sys.exit(1)
        return

    import uvicorn

    from modelport.server._serving import GatewayServer, uvicorn_timeout
    from modelport.server.access_log import BufferedAccessLog
    from modelport.server.app import create_app

    # Our own access lines, formatted as the log format below and written in
    # batches: a logging record per request cost the event loop ~75 µs.
    access = BufferedAccessLog(sys.stderr) if access_log else None
    app = create_app(
        config,
        host=host,
        keys=keys,
        keepalive_interval=keepalive,
        access_log=access or False,
        reloader=_reloader(),
    )
    _log_url(host, port, bool(keys.gateway), 1)
    server = GatewayServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop=_loop(),
            http=_http(),
            # For h11 only (httptools is capped by our protocol): the same head limit.
            h11_max_incomplete_event_size=HttpLimits().max_head_bytes,
            lifespan="on",
            # No route takes a WebSocket: without this uvicorn imports the websockets
            # library at start (~1 MB of an idle gateway) to refuse upgrades it never gets.
            ws="none",
            access_log=False,  # ours is structured and leaves keys and queries out
            log_config=None,
            log_level=log_level,
            # The drain ends the calls it can; uvicorn's timeout is the backstop.
            timeout_graceful_shutdown=uvicorn_timeout(drain_timeout),
            server_header=False,
            # The gateway reads no X-Forwarded-* header (the Host check uses the
            # real Host), so uvicorn need not parse them on every request.
            proxy_headers=False,
        ),
        drain=app.state.drain,
        drain_timeout=drain_timeout,
    )
    _tune_gc()
    try:
        server.run()
    finally:
        if access is not None:
            access.flush()
    if not server.started:
        sys.exit(1)


def _log_url(host: str, port: int, keyed: bool, workers: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("modelport.server").info(
        "modelport gateway on http://%s:%d — OpenAI base URL http://%s:%d/v1, "
        "Anthropic base URL http://%s:%d%s%s",
        shown,
        port,
        shown,
        port,
        shown,
        port,
        " (gateway key required)" if keyed else "",
        f" ({workers} worker processes)" if workers > 1 else "",
    )


def _reloader() -> ConfigReloader:
    """Reload on a change to what the configuration is read from, and on SIGHUP."""
    from modelport.auth.keys import keys_path
    from modelport.config import (
        global_config_path,
        load_config,
        modelport_home,
        project_config_path,
    )
    from modelport.server._reload import DEFAULT_INTERVAL, ConfigReloader
    from modelport.trust import TRUST_FILE

    project = project_config_path()
    watched = [global_config_path(), modelport_home() / TRUST_FILE, keys_path()]
    if project is not None:
        watched.append(project)
    return ConfigReloader(load_config, watch=watched, interval=DEFAULT_INTERVAL, sighup=True)


#: Collect the youngest generation after 50,000 net new container objects instead of
#: CPython's 700, the middle one every 20 of those and the oldest every 100.
_GC_THRESHOLDS = (50_000, 20, 100)


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path of a long-running gateway.

    With CPython's defaults the collector ran every few requests and took
    13-22 % of the gateway's CPU under load (timed with ``gc.callbacks``,
    64 connections, non-streaming): each run walks every object the
    in-flight requests hold, although a request leaves next to no cyclic
    garbage (refcounting frees it). Freezing what start-up built (modules,
    classes, config) takes it out of every later full collection, and
    collecting a hundred times less often cut the collector to under 1 % of
    the CPU and the gateway's CPU per request by ~150 µs (paired runs, the
    same build either way). This is the process's policy, so ``modelport
    serve`` sets it, never ``create_app``: an application that mounts the
    gateway keeps its own.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=_LOG_FORMAT, stream=sys.stderr)


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _http() -> Any:
    """uvicorn's httptools protocol with the gateway's limits (header size and count,
    timeouts for half-sent requests, connections per descriptor), else h11."""
    try:
        from modelport.server._protocol import GatewayProtocol
    except ImportError:  # no httptools
        return "h11"
    return GatewayProtocol.with_limits()
