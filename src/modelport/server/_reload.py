"""Configuration changes reach a running gateway without a restart.

A reload reads the configuration again, builds a new
:class:`~modelport.routing.Router` from it (with fresh stored keys), moves the
running plugins' providers to it and swaps it in. A request reads the router
once, so requests already running finish on the router they started with,
which closes once the last of them ends
(:meth:`~modelport.routing.Router.aclose_when_idle`). A configuration that no
longer loads leaves the last good one in place; ``/health`` and the log say
why, and the next good write is picked up.

Three things start one:

* a change to a watched file, seen by a stat poll (``interval`` seconds; one
  ``os.stat`` per file, no thread and no dependency: a few microseconds a
  second, where a file-notification library would add a thread and still need
  polling for files that do not exist yet);
* ``SIGHUP``, where the gateway runs in the main thread (``modelport serve``);
* ``POST /admin/reload`` (admin key), which the CLI calls after it writes
  config.toml or a key (``modelport local``, ``connections``, ``keys``), and
  which ``POST /plugins/load`` includes.

``[gateway]`` (host, port, keys) and ``database_url`` apply only at start:
a reload that changes them says a restart is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from modelport._redact import public_message
from modelport.errors import ModelportError

if TYPE_CHECKING:
    from modelport.config import Config
    from modelport.routing import Router

__all__ = ["ConfigReloader", "reload_endpoint"]

logger = logging.getLogger("modelport.server")

#: Seconds between two looks at the watched files.
DEFAULT_INTERVAL = 1.0

_FileStamp = tuple[int, int, int] | None
#: A router a reload replaced, and the task that closes it once its calls end.
_Retired = tuple["Router", "asyncio.Task[None]"]


class ConfigReloader:
    """Reloads a gateway's configuration (see the module docstring).

    ``load`` reads the configuration (``None``: the configuration was handed in
    and cannot be read again; a reload then only re-reads stored keys).
    ``watch`` are the files whose change starts a reload (config files, the
    trust file, the key file), polled every ``interval`` seconds when
    ``interval`` is set; ``sighup`` reloads on that signal. :meth:`bind` ties
    the reloader to the app whose ``state.router`` it swaps.
    """

    def __init__(
        self,
        load: Callable[[], Config] | None = None,
        *,
        watch: Sequence[Path] = (),
        interval: float | None = None,
        sighup: bool = False,
    ) -> None:
        self.load = load
        self.watch = [Path(path) for path in watch]
        self.interval = interval
        self.sighup = sighup
        self._state: Any = None
        self._lock = asyncio.Lock()
        self._stamps: list[_FileStamp] = []
        self._poller: asyncio.Task[None] | None = None
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._retired: list[_Retired] = []
        self._pending: set[asyncio.Task[Any]] = set()
        self.reloads = 0
        self.loaded_at = time.time()
        self.error: str | None = None
        self.failed_at: float | None = None

    def bind(self, app: Any) -> None:
        """Reload into ``app.state`` (its ``router``, ``config`` and ``plugin_host``)."""
        self._state = app.state

    # --- what /health shows -------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``state``: ``ok``, ``stale`` (the last reload failed: the last good
        configuration runs) or ``static`` (handed in, not read from files)."""
        if self.load is None:
            state = "static"
        else:
            state = "stale" if self.error is not None else "ok"
        return {
            "state": state,
            "error": self.error,
            "failed_at": self.failed_at,
            "loaded_at": self.loaded_at,
            "reloads": self.reloads,
        }

    # --- the reload ---------------------------------------------------------------

    async def reload(self, reason: str) -> dict[str, Any]:
        """Read the configuration again and swap in a router built from it.

        Returns what happened (``reloaded``, ``restart_needed``, ``config``: the
        :meth:`status`); a configuration that does not load is kept out
        (``reloaded`` false, ``error`` set), and stored keys are read afresh
        either way.
        """
        async with self._lock:
            state = self._state
            self._stamps = self._file_stamps()
            if self.load is None:
                state.router.forget_keys()
                return {"reloaded": False, "restart_needed": [], "config": self.status()}
            try:
                config = await asyncio.to_thread(self.load)
            except ModelportError as exc:
                state.router.forget_keys()  # a `keys set` still counts
                self.error = public_message(exc)
                self.failed_at = time.time()
                logger.warning(
                    "configuration reload (%s) failed; keeping the last good one: %s",
                    reason,
                    self.error,
                )
                return {"reloaded": False, "restart_needed": [], "config": self.status()}
            restart = _restart_needed(state.config, config)
            self._swap(config)
            self.reloads += 1
            self.loaded_at = time.time()
            self.error = self.failed_at = None
            logger.info(
                "configuration reloaded (%s): %d connections%s",
                reason,
                len(config.connections),
                f"; restart to apply {', '.join(restart)}" if restart else "",
            )
            return {"reloaded": True, "restart_needed": restart, "config": self.status()}

    def _swap(self, config: Config) -> None:
        state = self._state
        old: Router = state.router
        new = old.with_config(config)
        host = getattr(state, "plugin_host", None)
        if host is not None:
            host.config = config
            host.attach(new)
        # One assignment: a request reads state.router once, before or after it.
        state.router = new
        state.config = config
        task = asyncio.get_running_loop().create_task(old.aclose_when_idle())
        entry = (old, task)
        self._retired.append(entry)
        task.add_done_callback(lambda done: self._retire_done(entry, done))

    def _retire_done(
        self, entry: tuple[Router, asyncio.Task[None]], task: asyncio.Task[None]
    ) -> None:
        with contextlib.suppress(ValueError):
            self._retired.remove(entry)
        if not task.cancelled() and task.exception() is not None:
            logger.error("closing a replaced router failed", exc_info=task.exception())

    # --- what starts one ----------------------------------------------------------

    def start(self) -> None:
        """Start watching (files, SIGHUP) on the running loop."""
        loop = asyncio.get_running_loop()
        self._stamps = self._file_stamps()
        if self.interval is not None and self.watch and self.load is not None:
            self._poller = loop.create_task(self._poll(self.interval))
        if self.sighup and hasattr(signal, "SIGHUP"):
            if threading.current_thread() is threading.main_thread():
                loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
                self._signal_loop = loop
            else:
                logger.info("SIGHUP reload is off: the gateway does not run in the main thread")

    def _on_sighup(self) -> None:
        self._spawn(self.reload("SIGHUP"))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _file_stamps(self) -> list[_FileStamp]:
        return [_stamp(path) for path in self.watch]

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if self._file_stamps() != self._stamps:
                    await self.reload("a watched file changed")
            except Exception:  # the watcher must outlive any one failure
                logger.exception("watching the configuration files failed")

    async def aclose(self) -> None:
        """Stop watching and close every replaced router, whatever still runs on it."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._signal_loop is not None:
            with contextlib.suppress(Exception):
                self._signal_loop.remove_signal_handler(signal.SIGHUP)
            self._signal_loop = None
        for task in list(self._pending):
            task.cancel()
        retired, self._retired = self._retired, []
        for router, task in retired:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                await router.aclose()
            except Exception:
                logger.exception("closing a replaced router failed")


def _stamp(path: Path) -> _FileStamp:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _restart_needed(old: Config | None, new: Config) -> list[str]:
    """What changed that only a restart applies."""
    if old is None:
        return []
    needed = []
    if old.gateway != new.gateway:
        needed.append("[gateway]")
    if old.database_url != new.database_url:
        needed.append("database_url")
    return needed


async def reload_endpoint(request: Request) -> JSONResponse:
    """``POST /admin/reload``: read the configuration and stored keys again.

    200 with what happened; 409 when the configuration does not load (the
    gateway keeps the last good one, and says why).
    """
    reloader: ConfigReloader = request.app.state.reloader
    outcome = await reloader.reload("POST /admin/reload")
    if outcome["config"]["state"] == "stale":
        message = f"The configuration does not load: {outcome['config']['error']}"
        return JSONResponse(
            {"error": {"message": message, "type": "config_error"}, **outcome}, status_code=409
        )
    return JSONResponse(outcome)
