"""The plugin host: discovers plugins, runs them, and registers their providers.

::

    host = PluginHost(router, dirs=default_dirs(home, project), home=home, config=config)
    await host.load()                    # discover (again): new, changed and removed plugins
    await host.start_startup_plugins()   # triggers = ["startup"], trusted ones only
    ...
    await host.aclose()                  # shutdown / exit / kill every child

Each plugin moves through ``loaded → starting → running → stopping →
stopped``, or ends ``crashed`` with its exit code and stderr tail kept. A crash
fails only that plugin's in-flight requests; a startup plugin is restarted with
exponential backoff until it has crashed ``max_restarts`` times in a row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelport import plugin_protocol
from modelport.errors import ConfigError, ModelportError, PluginError
from modelport.plugin_host.diagnose import launch_problem
from modelport.plugin_host.discovery import (
    DiscoveredPlugin,
    PluginDir,
    SkippedFolder,
    default_dirs,
    scan,
)
from modelport.plugin_host.manifest import Manifest, ManifestError, load_manifest
from modelport.plugin_host.process import MethodNotFound, PluginProcess, minimal_env
from modelport.plugin_host.provider import PluginProvider
from modelport.plugin_host.registry import ProviderRegistry, ProviderTable
from modelport.trust import TrustCheck, TrustStore, plugin_files
from modelport.types import ModelInfo

if TYPE_CHECKING:
    from modelport.auth.session import TokenBroker
    from modelport.config import Config, OAuthConfig

__all__ = ["LogLines", "PluginHost", "PluginState", "ProviderRegistry"]

logger = logging.getLogger("modelport.plugin_host")

PluginState = Literal["loaded", "starting", "running", "stopping", "stopped", "crashed", "invalid"]


class LogLines(deque[str]):
    """A plugin's last log lines, numbered: :attr:`total` counts every line ever appended.

    A reader that remembers ``total`` can ask for what came since
    (:meth:`since`), which is how the web UI tails a plugin's log.
    """

    def __init__(self, maxlen: int) -> None:
        super().__init__(maxlen=maxlen)
        self.total = 0

    def append(self, line: str) -> None:
        super().append(line)
        self.total += 1

    def since(self, seen: int) -> list[str]:
        """The lines appended after the first ``seen`` (those still kept)."""
        new = max(0, min(self.total - seen, len(self)))
        return list(self)[len(self) - new :] if new else []


class _Plugin:
    """The host's record of one plugin, kept across its runs."""

    def __init__(self, found: DiscoveredPlugin, stderr_lines: int) -> None:
        self.found = found
        self.state: PluginState = "invalid" if found.error else "loaded"
        self.error: str | None = found.error
        self.process: PluginProcess | None = None
        self.providers: dict[str, PluginProvider] = {}
        self.stderr = LogLines(stderr_lines)
        self.problems: deque[str] = deque(maxlen=20)
        if found.error:
            self.problems.append(found.error)
        self.restarts = 0
        self.crashes = 0
        self.runs = 0
        self.exit_code: int | None = None
        self.started_at = 0.0
        self.restart_task: asyncio.Task[None] | None = None
        self.refused_in_run = 0  # the run in which the host last refused a provider.register
        # A project plugin's files as last read (at load and at each start): what
        # trust is checked against, so that listing plugins does not hash folders.
        self.files: dict[str, str] | None = None
        self.lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.found.name


class PluginHost:
    """Runs out-of-process plugins and exposes their providers (see the module docstring)."""

    def __init__(
        self,
        router: ProviderRegistry | None = None,
        *,
        dirs: Sequence[PluginDir],
        home: Path,
        config: Config | None = None,
        get_key: Callable[[str], str | None] | None = None,
        environ: Mapping[str, str] | None = None,
        tokens: TokenBroker | None = None,
        initialize_timeout: float = 10.0,
        request_timeout: float = 120.0,
        shutdown_timeout: float = 2.0,
        kill_grace: float = 2.0,
        max_restarts: int = 5,
        restart_backoff: float = 0.5,
        max_backoff: float = 30.0,
        stable_after: float = 60.0,
        stderr_lines: int = 200,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.router = router
        self.dirs = list(dirs)
        self.home = home
        self.trust = TrustStore(home)
        self._environ = environ
        self._table = ProviderTable(
            router,
            config=config,
            get_key=get_key,
            environ=environ,
            request_timeout=request_timeout,
            tokens=tokens,
        )
        self.initialize_timeout = initialize_timeout
        self.shutdown_timeout = shutdown_timeout
        self.kill_grace = kill_grace
        self.max_restarts = max_restarts
        self.restart_backoff = restart_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.stderr_lines = stderr_lines
        self._sleep = sleep  # waits before a restart; tests pass one that records the delays
        self._plugins: dict[str, _Plugin] = {}
        self._skipped: list[SkippedFolder] = []
        self._loaded = False
        self._ids = itertools.count(1)  # JSON-RPC ids, unique across every plugin of this host

    @classmethod
    def from_config(
        cls,
        router: ProviderRegistry | None = None,
        config: Config | None = None,
        *,
        home: Path | None = None,
        cwd: Path | None = None,
        **options: Any,
    ) -> PluginHost:
        """The usual folders: shipped, ``MODELPORT_HOME/plugins``, the project's plugins."""
        from modelport.config import find_project_dir, modelport_home

        home = home if home is not None else modelport_home()
        dirs = default_dirs(home, find_project_dir(cwd))
        return cls(router, dirs=dirs, home=home, config=config, **options)

    # --- discovery ------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    @property
    def names(self) -> list[str]:
        return sorted(self._plugins)

    async def load(self) -> list[str]:
        """Discover plugins again: add new ones, replace changed ones, drop removed ones."""
        self._loaded = True
        scanned = scan(self.dirs)
        self._skipped = scanned.skipped
        found = {plugin.name: plugin for plugin in scanned.plugins}
        for name in [n for n in self._plugins if n not in found]:
            await self.stop(name)
            del self._plugins[name]
        for name, plugin in found.items():
            current = self._plugins.get(name)
            if current is not None and _same(current.found, plugin):
                current.found = plugin
                continue
            if current is not None:
                await self.stop(name)
            self._plugins[name] = _Plugin(plugin, self.stderr_lines)
        for record in self._plugins.values():
            if record.found.origin.needs_trust and record.found.manifest is not None:
                record.files = await asyncio.to_thread(plugin_files, record.found.dir)
        return self.names

    def is_trusted(self, name: str) -> bool:
        """Whether the plugin may run the manifest and files the host read (not whatever
        is on disk now: a start reads both again)."""
        return self._trust_check(self._plugins[name]).trusted

    def trust_folder(self, name: str) -> dict[str, str]:
        """Trust the project folder plugin ``name`` lives in, as ``modelport plugins trust`` does.

        Every plugin now in that folder is trusted with its manifest as it is
        now, and so is the project's ``config.toml`` beside it. Returns plugin
        folder name → manifest hash. A plugin that needs no trust raises
        :class:`ConfigError`.
        """
        found = self._plugins[name].found
        if not found.origin.needs_trust:
            raise ConfigError(
                f"The plugin {name!r} comes from {found.origin.source} plugins, "
                "which run without trust"
            )
        return self.trust.trust(found.dir.parent)

    def log_since(self, name: str, seen: int) -> tuple[list[str], int]:
        """Plugin ``name``'s log lines after the first ``seen``, and the count to pass next.

        Scrubbed as :meth:`describe` scrubs them: a plugin may print what it was given.
        """
        lines = self._plugins[name].stderr
        return [self._table.scrub(line) for line in lines.since(seen)], lines.total

    def _trust_check(self, plugin: _Plugin) -> TrustCheck:
        found = plugin.found
        if not found.origin.needs_trust:
            return TrustCheck(True)
        if found.manifest is None:
            return TrustCheck(False, "its manifest is invalid")
        return self.trust.check(found.dir, found.manifest.hash, plugin.files or {})

    def _reload_manifest(self, plugin: _Plugin) -> Manifest:
        """Read the manifest again, so that a start runs what is on disk now, and only
        once trust covers those exact bytes (a manifest changed since :meth:`load`
        is checked as it is now, never started with the command read before)."""
        found = plugin.found
        try:
            manifest = load_manifest(found.dir)
        except ManifestError as exc:
            plugin.error = str(exc)
            raise ConfigError(f"The plugin {plugin.name!r} cannot start: {exc}") from None
        if manifest.name != plugin.name:
            plugin.error = f"its manifest now names the plugin {manifest.name!r}"
            raise ConfigError(
                f"The plugin {plugin.name!r} cannot start: {plugin.error}; "
                "run 'modelport plugins load' to rescan"
            )
        plugin.found = dataclasses.replace(found, manifest=manifest, error=None)
        return manifest

    # --- lifecycle ------------------------------------------------------

    async def start_startup_plugins(self) -> None:
        """Start every valid, trusted plugin with ``triggers = ["startup"]`` that is not running."""
        starting = []
        for plugin in self._plugins.values():
            manifest = plugin.found.manifest
            if manifest is None or not manifest.starts_at_startup:
                continue
            if plugin.state in ("starting", "running") or not self.is_trusted(plugin.name):
                continue
            starting.append(self._start_supervised(plugin))
        await asyncio.gather(*starting)

    async def ensure_started(self) -> None:
        """Discover (the first time) and start startup plugins that never ran.

        For callers outside the gateway (the Python API, the CLI) that want a
        plugin's models before they resolve an address. Crashed plugins are left
        to their restart schedule.
        """
        if not self._loaded:
            await self.load()
        waiting = [
            self._start_supervised(plugin)
            for plugin in self._plugins.values()
            if plugin.state == "loaded"
            and plugin.found.manifest is not None
            and plugin.found.manifest.starts_at_startup
            and self.is_trusted(plugin.name)
        ]
        await asyncio.gather(*waiting)

    async def _start_supervised(self, plugin: _Plugin) -> None:
        try:
            await self._start(plugin)
        except PluginError:
            self._schedule_restart(plugin)  # it ran and failed: worth another try
        except ModelportError as exc:
            # Not trusted, an invalid manifest: trying again cannot help.
            plugin.error = exc.message
            logger.error("plugin %s: %s", plugin.name, exc.message)

    async def start(self, name: str) -> None:
        """Start one plugin now; raises :class:`ConfigError` (invalid, untrusted) or PluginError."""
        plugin = self._plugins[name]
        self._cancel_restart(plugin)
        plugin.crashes = 0
        await self._start(plugin)

    async def _start(self, plugin: _Plugin) -> None:
        async with plugin.lock:
            if plugin.state in ("starting", "running"):
                return
            manifest = self._reload_manifest(plugin)
            # A missing program, main file or script: starting (or restarting) cannot
            # help, and the one line says what to do, as `modelport doctor` does.
            problem = await asyncio.to_thread(launch_problem, manifest)
            if problem is not None:
                plugin.error = problem
                raise ConfigError(f"The plugin {plugin.name!r} cannot start: {problem}")
            if plugin.found.origin.needs_trust:
                plugin.files = await asyncio.to_thread(plugin_files, manifest.dir)
            verdict = self._trust_check(plugin)
            if not verdict.trusted:
                raise ConfigError(
                    f"The project plugin {plugin.name!r} ({plugin.found.dir}) is not trusted: "
                    f"{verdict.reason}; review it, then run "
                    f"'modelport plugins trust {plugin.found.origin.path}'"
                )
            plugin.state = "starting"
            plugin.error = None
            plugin.exit_code = None
            plugin.runs += 1
            # The log is kept across runs: mark where this one begins.
            plugin.stderr.append(f"[modelport] --- run {plugin.runs} ---")
            process = PluginProcess(
                name=plugin.name,
                command=manifest.command,
                cwd=manifest.dir,
                env=minimal_env(manifest.env, self._environ),
                ids=self._ids,
                stderr=plugin.stderr,
                handler=_Handler(self, plugin),
                kill_grace=self.kill_grace,
            )
            plugin.process = process
            try:
                await process.spawn()
                await process.request(
                    plugin_protocol.INITIALIZE,
                    self._initialize_params(plugin),
                    timeout=self.initialize_timeout,
                )
            except ModelportError as exc:
                await process.close(timeout=0.1, grace=0.5)
                self._drop_providers(plugin)
                plugin.state = "crashed"
                plugin.exit_code = process.returncode
                plugin.error = f"initialize failed: {exc}"
                if plugin.refused_in_run == plugin.runs:
                    # It failed because the host refused its registration: the same
                    # registration would be refused again, so this is not retried.
                    plugin.error += "; its provider.register was refused, so restarting cannot help"
                    raise ConfigError(
                        f"The plugin {plugin.name!r} failed to start: {plugin.error}"
                    ) from exc
                raise PluginError(
                    f"The plugin failed to start: {exc.message}", plugin=plugin.name
                ) from exc
            except BaseException:
                # Cancelled half-way (the gateway shutting down, a manual start
                # overtaking a restart): never leave a child that was not initialised.
                process.kill()
                self._drop_providers(plugin)
                plugin.state = "stopped"
                raise
            plugin.state = "running"
            plugin.started_at = time.monotonic()
            logger.info(
                "plugin %s running (pid %s; providers: %s)",
                plugin.name,
                process.pid,
                ", ".join(plugin.providers) or "none",
            )

    def _initialize_params(self, plugin: _Plugin) -> plugin_protocol.InitializeParams:
        from modelport import __version__

        return {
            "protocolVersion": plugin_protocol.PROTOCOL_VERSION,
            "host": {"name": "modelport", "version": __version__},
            "plugin": {"name": plugin.name, "dir": str(plugin.found.dir)},
        }

    async def stop(self, name: str) -> None:
        """Stop one plugin (``shutdown``, ``exit``, then a kill after the grace period)."""
        plugin = self._plugins[name]
        self._cancel_restart(plugin)
        async with plugin.lock:
            process = plugin.process
            if process is None or not process.alive:
                if plugin.state in ("crashed", "running"):
                    plugin.state = "stopped"
                return
            plugin.state = "stopping"
            self._drop_providers(plugin)
            await process.close(timeout=self.shutdown_timeout, grace=self.kill_grace)
            plugin.exit_code = process.returncode
            plugin.state = "stopped"

    def abandon(self) -> None:
        """Kill every plugin and close its pipes at once, for a loop about to close."""
        for plugin in self._plugins.values():
            self._cancel_restart(plugin)
            if plugin.process is not None:
                plugin.process.abandon()

    async def aclose(self) -> None:
        """Stop every plugin; the host can be loaded again afterwards."""
        await asyncio.gather(*(self.stop(name) for name in list(self._plugins)))
        await self._table.aclose()

    def _cancel_restart(self, plugin: _Plugin) -> None:
        if plugin.restart_task is not None and not plugin.restart_task.done():
            plugin.restart_task.cancel()
        plugin.restart_task = None

    def _schedule_restart(self, plugin: _Plugin) -> None:
        plugin.crashes += 1
        if plugin.crashes > self.max_restarts:
            plugin.error = f"gave up after {plugin.crashes} crashes in a row; last: {plugin.error}"
            logger.error("plugin %s: %s", plugin.name, plugin.error)
            return
        delay = min(self.max_backoff, self.restart_backoff * 2 ** (plugin.crashes - 1))
        logger.warning(
            "plugin %s crashed (%s); restarting in %.1f s", plugin.name, plugin.error, delay
        )
        plugin.restart_task = asyncio.get_running_loop().create_task(
            self._restart_later(plugin, delay)
        )

    async def _restart_later(self, plugin: _Plugin, delay: float) -> None:
        await self._sleep(delay)
        plugin.restart_task = None
        if plugin.state != "crashed" or self._plugins.get(plugin.name) is not plugin:
            return
        plugin.restarts += 1
        await self._start_supervised(plugin)

    def _exited(self, plugin: _Plugin, process: PluginProcess, error: PluginError | None) -> None:
        if plugin.process is not process:
            return
        plugin.exit_code = process.returncode
        if plugin.state in ("stopping", "stopped", "starting"):
            return  # stop() and _start() record what happened themselves
        self._drop_providers(plugin)
        plugin.state = "crashed"
        plugin.error = str(error) if error else f"exited with code {process.returncode}"
        if time.monotonic() - plugin.started_at >= self.stable_after:
            plugin.crashes = 0  # a long good run wipes the slate
        manifest = plugin.found.manifest
        if manifest is not None and manifest.starts_at_startup:
            self._schedule_restart(plugin)

    # --- providers ------------------------------------------------------

    @property
    def config(self) -> Config | None:
        return self._table.config

    @config.setter
    def config(self, config: Config | None) -> None:
        # The gateway may reload config.toml; new values apply to the next request.
        self._table.config = config

    def attach(self, router: ProviderRegistry) -> None:
        """Register every running plugin's providers into ``router``, and later ones too.

        The gateway's reload swaps in a new router: the running plugins' providers
        move to it. One the new configuration now refuses (a connection of the same
        name) is left out and noted in its plugin's problems.
        """
        self.router = router
        for provider, exc in self._table.attach(router):
            pid = provider.registration.provider_id
            message = f"provider {pid!r} left out after a config reload: {exc}"
            logger.warning("plugin %s: %s", provider.registration.plugin, message)
            plugin = self._plugins.get(provider.registration.plugin)
            if plugin is not None:
                plugin.problems.append(message)

    @property
    def providers(self) -> dict[str, PluginProvider]:
        """Registered providers by id."""
        return dict(self._table.providers)

    def models(self) -> list[ModelInfo]:
        return self._table.models()

    def _register(self, plugin: _Plugin, params: Any) -> dict[str, Any]:
        try:
            provider = self._table.register(plugin.name, params, lambda: self._live_process(plugin))
        except ModelportError as exc:
            logger.warning("plugin %s: provider.register refused: %s", plugin.name, exc.message)
            plugin.refused_in_run = plugin.runs
            plugin.problems.append(f"provider.register refused: {exc.message}")
            plugin.stderr.append(f"[modelport] provider.register refused: {exc.message}")
            raise
        for warning in provider.registration.warnings:
            logger.warning("plugin %s: provider.register: %s", plugin.name, warning)
            plugin.problems.append(f"provider.register: {warning}")
            plugin.stderr.append(f"[modelport] provider.register: {warning}")
        plugin.providers[provider.provider_id] = provider
        return {}

    def _unregister(self, plugin: _Plugin, params: Any) -> dict[str, Any]:
        if plugin.state == "stopping":
            return {}  # its providers went when the stop began (an onStop may unregister)
        pid = self._table.owned_id(plugin.name, params)
        plugin.providers.pop(pid, None)
        self._table.drop(pid)
        return {}

    def _drop_providers(self, plugin: _Plugin) -> None:
        for pid in list(plugin.providers):
            plugin.providers.pop(pid, None)
            self._table.drop(pid)

    def _live_process(self, plugin: _Plugin) -> PluginProcess:
        process = plugin.process
        if process is None or not process.alive or plugin.state not in ("starting", "running"):
            detail = f": {plugin.error}" if plugin.error else ""
            raise PluginError(f"The plugin is {plugin.state}{detail}", plugin=plugin.name)
        return process

    # --- reporting ------------------------------------------------------

    def describe(self, name: str, *, stderr: bool = False) -> dict[str, Any]:
        """A JSON-ready view of one plugin: state, pid, restarts, providers, models, stderr."""
        plugin = self._plugins[name]
        found, manifest = plugin.found, plugin.found.manifest
        process = plugin.process
        scrub = self._table.scrub
        info: dict[str, Any] = {
            "name": plugin.name,
            "version": manifest.version if manifest else None,
            "description": manifest.description if manifest else "",
            "source": found.origin.source,
            "dir": str(found.dir),
            "state": plugin.state,
            "trusted": self.is_trusted(name),
            "triggers": list(manifest.triggers) if manifest else [],
            "command": list(manifest.command) if manifest else [],
            "pid": process.pid if process is not None and process.alive else None,
            "restarts": plugin.restarts,
            "exit_code": plugin.exit_code,
            "error": scrub(plugin.error) if plugin.error else plugin.error,
            "problems": [scrub(problem) for problem in plugin.problems],
            "overrides": str(found.overrides) if found.overrides else None,
            "providers": [
                {
                    "id": pid,
                    "name": p.registration.name,
                    "description": p.registration.description,
                    "requires_key": p.registration.requires_key,
                    "capabilities": list(p.registration.capabilities),
                    "config_fields": list(p.registration.config_fields),
                    "models": [m.id for m in p.registration.models],
                }
                for pid, p in sorted(plugin.providers.items())
            ],
        }
        if stderr:
            # A plugin may print what it was given; no secret of ours leaves through its log.
            info["stderr"] = [scrub(line) for line in plugin.stderr]
            info["log_total"] = plugin.stderr.total
        return info

    def oauth_config(self, provider_id: str) -> OAuthConfig | None:
        """Where the users of a registered provider log in (``modelport login <id>``):
        ``[connections.<id>.oauth]``, else its registration's ``oauth`` block."""
        provider = self._table.providers.get(provider_id)
        if provider is None:
            return None
        return self._table.oauth_config(provider.registration)

    def describe_all(self) -> list[dict[str, Any]]:
        return [self.describe(name) for name in self.names]

    def describe_skipped(self) -> list[dict[str, Any]]:
        """Folders that look like plugins but are not (a ``package.json`` without a
        plugin section), each with the reason."""
        return [
            {"dir": str(s.dir), "source": s.origin.source, "reason": s.reason}
            for s in self._skipped
        ]


class _Handler:
    """Answers the requests one plugin sends (``provider.register`` / ``provider.unregister``)."""

    def __init__(self, host: PluginHost, plugin: _Plugin) -> None:
        self.host = host
        self.plugin = plugin

    async def handle_request(self, process: PluginProcess, method: str, params: Any) -> Any:
        if self.plugin.process is not process:
            raise PluginError("This process was replaced", plugin=self.plugin.name)
        if method == plugin_protocol.PROVIDER_REGISTER:
            return self.host._register(self.plugin, params)
        if method == plugin_protocol.PROVIDER_UNREGISTER:
            return self.host._unregister(self.plugin, params)
        raise MethodNotFound(method)

    def handle_exit(self, process: PluginProcess, error: PluginError | None) -> None:
        self.host._exited(self.plugin, process, error)


def _same(a: DiscoveredPlugin, b: DiscoveredPlugin) -> bool:
    hash_a = a.manifest.hash if a.manifest else a.error
    hash_b = b.manifest.hash if b.manifest else b.error
    return a.dir == b.dir and hash_a == hash_b
