"""One gateway process: what ``modelport serve`` runs, and the lean process it runs it in.

:func:`run` builds the app and serves it with uvicorn (uvloop, httptools with
:class:`~modelport.server._protocol.GatewayProtocol`, the drain on shutdown).

``modelport serve`` parses its options with the CLI (Typer, Click, Rich, and
through Typer pydantic: ~12 MB resident that a gateway never uses again), checks
the configuration and the binding, and then replaces its own process with
``python -m modelport.server._standalone`` (:func:`exec_standalone`): the same
PID, signals, descriptors and environment, without the CLI in memory. The
options travel as JSON on its command line (none of them is a secret: keys are
never options); the configuration is read again there, a few milliseconds after
the CLI read it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from modelport.config import Config
    from modelport.server._reload import ConfigReloader

__all__ = [
    "LOG_FORMAT",
    "ServeOptions",
    "configure_logging",
    "event_loop",
    "exec_standalone",
    "http_protocol",
    "log_url",
    "main",
    "reloader",
    "run",
    "tune_gc",
]

#: What :func:`exec_standalone` runs with ``python -m``.
_MODULE = "modelport.server._standalone"

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ServeOptions(msgspec.Struct, frozen=True):
    """``modelport serve``'s options, once the configuration filled in what the flags left."""

    host: str
    port: int
    keepalive: float = 15.0
    access_log: bool = True
    log_level: str = "info"
    drain_timeout: float = 30.0


def exec_standalone(options: ServeOptions) -> None:
    """Replace this process with a gateway process serving ``options`` (never returns).

    Only where ``os.execv`` keeps the process (POSIX); the caller checks.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    encoded = msgspec.json.encode(options).decode()
    # -P: the working directory is not put on sys.path (a file there must not shadow a module).
    os.execv(sys.executable, [sys.executable, "-P", "-m", _MODULE, encoded])


def main(argv: list[str]) -> None:
    """The process :func:`exec_standalone` starts: serve, exit 1 if the server did not start."""
    if len(argv) != 1:
        sys.exit("modelport.server._standalone is started by `modelport serve`; run that instead.")
    raw = argv[0]
    from modelport.config import load_config
    from modelport.errors import ModelportError
    from modelport.server._protocol import raise_open_file_limit

    options = msgspec.json.decode(raw, type=ServeOptions)
    configure_logging(options.log_level)
    # Each stream holds a client and an upstream connection: use the hard limit.
    raise_open_file_limit()
    try:
        config = load_config()
    except ModelportError as exc:  # changed since the CLI read it a moment ago
        sys.exit(f"Error: {exc}")
    if not run(config, options):
        sys.exit(1)


def run(config: Config, options: ServeOptions, keys: Any = None) -> bool:
    """Serve the gateway for ``config`` until SIGTERM or Ctrl-C; False if it never started."""
    import uvicorn

    from modelport.server._keys import resolve_keys
    from modelport.server._protocol import HttpLimits
    from modelport.server._serving import GatewayServer, uvicorn_timeout
    from modelport.server.access_log import BufferedAccessLog
    from modelport.server.app import create_app

    keys = keys if keys is not None else resolve_keys(config)
    # Our own access lines, formatted as the log format and written in batches:
    # a logging record per request cost the event loop ~75 µs.
    access = BufferedAccessLog(sys.stderr) if options.access_log else None
    app = create_app(
        config,
        host=options.host,
        keys=keys,
        keepalive_interval=options.keepalive,
        access_log=access or False,
        reloader=reloader(),
    )
    log_url(options.host, options.port, bool(keys.gateway), 1)
    server = GatewayServer(
        uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            loop=event_loop(),
            http=http_protocol(),
            # For h11 only (httptools is capped by our protocol): the same head limit.
            h11_max_incomplete_event_size=HttpLimits().max_head_bytes,
            lifespan="on",
            # No route takes a WebSocket: without this uvicorn imports the websockets
            # library at start (~1 MB of an idle gateway) to refuse upgrades it never gets.
            ws="none",
            access_log=False,  # ours is structured and leaves keys and queries out
            log_config=None,
            log_level=options.log_level,
            # The drain ends the calls it can; uvicorn's timeout is the backstop.
            timeout_graceful_shutdown=uvicorn_timeout(options.drain_timeout),
            server_header=False,
            # The gateway reads no X-Forwarded-* header (the Host check uses the
            # real Host), so uvicorn need not parse them on every request.
            proxy_headers=False,
        ),
        drain=app.state.drain,
        drain_timeout=options.drain_timeout,
    )
    tune_gc()
    try:
        server.run()
    finally:
        if access is not None:
            access.flush()
    return bool(server.started)


def log_url(host: str, port: int, keyed: bool, workers: int) -> None:
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


def reloader() -> ConfigReloader:
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


def tune_gc() -> None:
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


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)


def event_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def http_protocol() -> Any:
    """uvicorn's httptools protocol with the gateway's limits (header size and count,
    timeouts for half-sent requests, connections per descriptor), else h11."""
    try:
        from modelport.server._protocol import GatewayProtocol
    except ImportError:  # no httptools
        return "h11"
    return GatewayProtocol.with_limits()


if __name__ == "__main__":
    main(sys.argv[1:])
