"""``modelport serve``: run the gateway with uvicorn (uvloop and httptools).

The command reads the same configuration as every other command
(``MODELPORT_HOME/config.toml`` and the project's), refuses to listen beyond
loopback without a gateway key, prints the URL to point tools at, and on
SIGTERM (or Ctrl-C) stops accepting, lets in-flight calls finish for up to
``--drain-timeout`` seconds (``[gateway] drain_timeout``, 30 by default), ends
the rest with an error event, writes the usage ledger and stops the plugins
(:mod:`modelport.server._drain`). Run from the console script, it then
replaces its process with one that holds the gateway without the CLI
(:mod:`modelport.server._standalone`: the same PID, ~12 MB less resident).
It lifts the soft open-file limit to the hard one, and serves HTTP with
:class:`~modelport.server._protocol.GatewayProtocol`: capped request heads and
timeouts for half-sent requests.
Changes to config.toml, the trust file and stored keys reach the running
gateway without a restart: it polls those files every second and reloads on
SIGHUP and on ``POST /admin/reload`` (:mod:`modelport.server._reload`).
``--workers N`` runs N gateway processes on the one port
(:mod:`modelport.cli._serve_workers`).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

__all__ = ["OWN_PROCESS", "register", "serve"]

#: Set in the context object by the console script (``modelport.cli.main`` with the
#: process's own arguments): ``serve`` may then replace the process with a lean one
#: (:mod:`modelport.server._standalone`). Never when ``serve`` runs inside another program.
OWN_PROCESS = "own_process"


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command(name="serve")(serve)


def serve(
    ctx: typer.Context,
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

    from modelport.server._standalone import ServeOptions, configure_logging, exec_standalone

    configure_logging(log_level)
    options = ServeOptions(host, port, keepalive, access_log, log_level, drain_timeout)
    if workers == 1 and ctx.obj is not None and ctx.obj.get(OWN_PROCESS) and os.name == "posix":
        # The gateway without the CLI in memory (it lifts the open-file limit itself).
        exec_standalone(options)  # never returns

    from modelport.server._protocol import raise_open_file_limit

    # Each stream holds a client and an upstream connection: use the hard limit
    # (the workers of --workers inherit it).
    raise_open_file_limit()
    if workers > 1:
        from modelport.cli._serve_workers import WorkerOptions, run_workers
        from modelport.server._standalone import log_url

        log_url(host, port, bool(keys.gateway), workers)
        worker_options = WorkerOptions(host, port, keepalive, access_log, log_level, drain_timeout)
        if not run_workers(config, worker_options, workers=workers):
            sys.exit(1)
        return

    from modelport.server._standalone import run

    if not run(config, options, keys):
        sys.exit(1)
