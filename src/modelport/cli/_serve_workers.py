"""``modelport serve --workers N``: N gateway processes on one listening socket.

One Python process uses one core (the event loop, one thread), so past one
core a gateway needs more processes. The parent binds the socket once and
uvicorn's supervisor (:class:`uvicorn.supervisors.Multiprocess`) spawns N
workers that accept on it; the kernel hands each new connection to one of
them. The parent only supervises: it restarts a worker that dies, restarts
them all on SIGHUP, and on SIGTERM or SIGINT stops every worker, each
draining its calls for ``--drain-timeout`` seconds as one ``modelport serve``
does (:class:`~modelport.server._serving.GatewayServer`).

Each worker is a whole gateway of its own (router, upstream connections,
ledger writer, plugin host, configuration reloader, HTTP limits), built by
:func:`worker_app` from the options the parent leaves in
``MODELPORT_WORKER_OPTIONS``. What they share:

* **the ledger**: each worker writes its own rows to the one database;
  SQLite in WAL mode with a busy timeout (``modelport.ledger``) takes
  writers from several processes, PostgreSQL anyway.
* **metrics**: each worker writes its exposition once a second into a folder
  the parent makes and removes, and any worker's ``/metrics`` sums them all
  (``server._metrics_shared``).
* **governance**: the workers are one instance group (``workers_group``): on
  Redis or PostgreSQL their counters are shared as between instances; on
  SQLite without Redis they go to the database file, one locked transaction
  a step (``governance._sqlite``), and the parent drops the counters an
  earlier run left there before the workers start.
* **plugins** are started by each worker, not once: a plugin is a child process
  that speaks JSON-RPC on the pipes of the process that started it, so one
  started once would serve every other worker's calls through the parent, a
  hop and a single core the workers exist to avoid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from uvicorn.supervisors import multiprocess

from modelport.server._serving import GatewayServer

if TYPE_CHECKING:
    from modelport.config import Config

__all__ = ["WorkerOptions", "run_workers", "worker_app"]

#: The environment variable the parent leaves the workers' options in.
OPTIONS_ENV = "MODELPORT_WORKER_OPTIONS"

logger = logging.getLogger("modelport.server")


class WorkerOptions(msgspec.Struct, frozen=True):
    """What every worker builds its gateway from (the config it reads itself)."""

    host: str
    port: int
    keepalive: float
    access_log: bool
    log_level: str
    drain_timeout: float = 30.0
    group: str = ""


#: What :func:`worker_app` built in this process: the drain its server runs on shutdown.
_built: dict[str, Any] = {}


def _options() -> WorkerOptions:
    return msgspec.json.decode(os.environ[OPTIONS_ENV], type=WorkerOptions)


def worker_app() -> Any:
    """The gateway of one worker (uvicorn calls this factory in each worker process)."""
    from modelport.config import load_config
    from modelport.governance import open_governance
    from modelport.server._keys import resolve_keys
    from modelport.server._standalone import configure_logging as _configure_logging
    from modelport.server._standalone import reloader as _reloader
    from modelport.server._standalone import tune_gc as _tune_gc
    from modelport.server.access_log import BufferedAccessLog
    from modelport.server.app import create_app

    options = _options()
    _configure_logging(options.log_level)
    config = load_config()
    access = BufferedAccessLog(sys.stderr) if options.access_log else None
    app = create_app(
        config,
        host=options.host,
        keys=resolve_keys(config),
        keepalive_interval=options.keepalive,
        access_log=access or False,
        governance=open_governance(config, workers_group=options.group),
        reloader=_reloader(),
    )
    _built["drain"] = app.state.drain
    _tune_gc()
    return app


class _ThisWorkersDrain:
    """The drain of the gateway :func:`worker_app` builds later, in this process."""

    async def run(self, timeout: float) -> None:
        drain = _built.get("drain")
        if drain is not None:
            await drain.run(timeout)


class _WorkerProcess(multiprocess.Process):
    """uvicorn's worker process, serving with :class:`GatewayServer` (the drain on shutdown)."""

    @property
    def server(self) -> Any:
        if self._server is None:
            self._server = GatewayServer(
                self.config,
                drain=_ThisWorkersDrain(),  # type: ignore[arg-type]
                drain_timeout=_options().drain_timeout,
            )
        return self._server


@contextlib.contextmanager
def _gateway_workers() -> Iterator[None]:
    # The supervisor makes (and remakes) its workers from this module attribute; three of
    # its methods would have to be copied to name another class.
    plain = multiprocess.Process
    multiprocess.Process = _WorkerProcess  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = plain  # type: ignore[misc]


def run_workers(config: Config, options: WorkerOptions, *, workers: int) -> bool:
    """Serve with ``workers`` processes until a signal stops them; False if one failed to start."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from modelport.server._metrics_shared import WORKER_METRICS_ENV
    from modelport.server._protocol import HttpLimits
    from modelport.server._serving import uvicorn_timeout
    from modelport.server._standalone import event_loop as _loop

    options = msgspec.structs.replace(options, group=secrets.token_hex(4))
    metrics_dir = tempfile.mkdtemp(prefix="modelport-metrics-")
    # Inherited by the spawned workers.
    os.environ[WORKER_METRICS_ENV] = metrics_dir
    os.environ[OPTIONS_ENV] = msgspec.json.encode(options).decode()
    _drop_stale_counters(config, options.group)
    server_config = uvicorn.Config(
        "modelport.cli._serve_workers:worker_app",
        factory=True,
        workers=workers,
        host=options.host,
        port=options.port,
        loop=_loop(),
        http=_http_protocol(),
        h11_max_incomplete_event_size=HttpLimits().max_head_bytes,
        lifespan="on",
        # No route takes a WebSocket: without this uvicorn imports the websockets
        # library at start (~1 MB of an idle gateway) to refuse upgrades it never gets.
        ws="none",
        access_log=False,
        log_config=None,
        log_level=options.log_level,
        timeout_graceful_shutdown=uvicorn_timeout(options.drain_timeout),
        server_header=False,
        proxy_headers=False,
    )
    sock = server_config.bind_socket()
    supervisor = multiprocess.Multiprocess(server_config, sockets=[sock])
    try:
        with _gateway_workers():
            supervisor.run()
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return not any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)


def _http_protocol() -> str:
    """The gateway's HTTP protocol, by name: the workers' config travels pickled."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    # Its default limits; the connection cap is worked out from each worker's descriptors.
    return "modelport.server._protocol:GatewayProtocol"


def _drop_stale_counters(config: Config, group: str) -> None:
    """Drop counters an earlier run left in the SQLite file (they may be behind the ledger)."""
    from modelport.errors import ModelportError
    from modelport.governance import open_governance
    from modelport.governance._sqlite import SqliteCounters

    if getattr(config, "redis_url", None):
        return  # the counters are in Redis, shared with whoever else counts there
    try:
        governance = open_governance(config, workers_group=group)
    except ModelportError:
        return  # each worker opens it again and says what is wrong
    counters = governance.counters
    try:
        registry = governance.registry
        # Another live gateway on this file may be counting in it; the workers will refuse.
        if isinstance(counters, SqliteCounters) and not (registry and registry.others()):
            asyncio.run(counters.rebuild())
    finally:
        asyncio.run(governance.aclose())
