"""``modelport doctor``: what is configured, what works, and how to fix what doesn't.

For every connection it runs the checks of :mod:`modelport.checks` (list the
models, which proves the server is reachable and the key accepted where
listing needs one; a remote connection with no key at all; the default model
among those listed), the same the web UI's Test button runs. Plugins are checked without
starting them (:func:`modelport.plugin_host.diagnose.diagnose`: manifests,
programs, trust, provider packages), then started so that their providers
are listed like connections. An untrusted project config is a warning. Each
problem comes with one concrete command to fix it. Exit code 1 when anything
is broken; warnings (no default model, say) leave it at 0.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelport.cli._output import err_console, exit_with, out_console, redact

if TYPE_CHECKING:
    from modelport.checks import Probe
    from modelport.config import Config, ConnectionConfig
    from modelport.plugin_host.diagnose import Finding

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to ``app``."""
    app.command(name="doctor")(doctor)


class _Report:
    """Collects check results and prints them as ``✓``/``✗``/``!`` lines."""

    def __init__(self) -> None:
        self.console = out_console()
        self.broken = 0

    def info(self, label: str, value: str) -> None:
        self.console.print(f"  {label}: {value}", markup=False)

    def ok(self, text: str) -> None:
        self.console.print(f"✓ {text}", style="green", markup=False)

    def warn(self, text: str, fix: str | None = None) -> None:
        self.console.print(f"! {text}", style="yellow", markup=False)
        if fix:
            self.console.print(f"    fix: {fix}", style="dim", markup=False)

    def problem(self, text: str, fix: str | None = None) -> None:
        self.broken += 1
        self.console.print(f"✗ {text}", style="red", markup=False)
        if fix:
            self.console.print(f"    fix: {fix}", style="dim", markup=False)


def doctor() -> None:
    """Check config, keys and connections; suggest fixes.

    Exits 1 when something is broken.
    """
    from modelport.config import default_model, load_config, resolve_address
    from modelport.errors import ModelportError

    report = _Report()
    _print_locations(report)
    try:
        config = load_config()
    except ModelportError as exc:  # a config that cannot load is the first thing to fix
        report.problem(f"config cannot be loaded: {redact(str(exc))}", "edit the file named above")
        exit_with(1)

    for ignored in config.ignored:
        report.warn(
            f"project config not trusted: ignoring {', '.join(ignored.keys)} in {ignored.path}",
            f"review the file, then `{ignored.fix}`",
        )
    _check_plugins(report)

    address: str | None = None
    default = default_model(config)
    if not default:
        report.warn(
            "no default model set",
            "`modelport local on` for a local server, or `modelport local model NAME`",
        )
    else:
        try:
            address = resolve_address(default, config)  # follows aliases
        except ModelportError as exc:
            report.problem(f"default model {default!r}: {redact(exc.message)}")
        else:
            shown = default if address == default else f"{default} → {address}"
            report.info("default model", shown)
    default_connection, default_id = _split(address)
    checks = _check_all(config, default_connection)
    if default_connection and default_connection not in checks:
        report.problem(
            f"default model {address!r} names connection {default_connection!r}, "
            "which is not configured (and no plugin registered it)",
            f"`modelport connections add {default_connection} --compat ...`",
        )
        default_connection = None
    if not checks and default_connection is None:
        report.warn(
            "no connections configured",
            "`modelport local on`, or `modelport connections add NAME --compat ... --base-url ...`",
        )

    for name, checked in checks.items():
        connection = config.connection(name)
        if connection is None:  # a provider a running plugin registered
            from modelport.config import ConnectionConfig

            connection = ConnectionConfig(compat=f"plugin:{name}")
        _check_connection(report, name, connection, checked, default_connection, default_id)

    if report.broken:
        err_console().print(
            f"{report.broken} problem{'s' if report.broken != 1 else ''} found.",
            style="bold red",
            markup=False,
        )
        exit_with(1)
    err_console().print("Everything works.", style="bold green", markup=False)


def _check_plugins(report: _Report) -> None:
    """Plugin folders and provider packages, checked without starting anything."""
    from modelport.config import find_project_dir, modelport_home
    from modelport.plugin_host.diagnose import diagnose
    from modelport.plugin_host.discovery import default_dirs

    home = modelport_home()
    findings = diagnose(default_dirs(home, find_project_dir()), home)
    if not findings:
        return
    report.console.print("plugins", style="bold", markup=False)
    for finding in findings:
        text = f"{finding.kind} {finding.name}: {redact(finding.message)}"
        if finding.level == "ok":
            report.ok(text)
        elif finding.level == "warning":
            report.warn(text)  # the message says what to run
        else:
            report.problem(text, _plugin_fix(finding))


def _plugin_fix(finding: Finding) -> str:
    if finding.kind == "package":
        return (
            f"reinstall the package that provides {finding.name!r}, or uninstall it "
            "(`modelport plugins list` names it)"
        )
    if "not installed" in finding.message:
        return "install that program, or change 'command' in the plugin's modelport-plugin.toml"
    return "correct the plugin's modelport-plugin.toml, then `modelport plugins check DIR`"


def _print_locations(report: _Report) -> None:
    from modelport.auth.keys import key_storage
    from modelport.auth.tokens import token_storage
    from modelport.config import find_project_dir, global_config_path, modelport_home

    report.console.print("modelport", style="bold", markup=False)
    report.info("home", str(modelport_home()))
    report.info("config", _described(global_config_path()))
    project = find_project_dir()
    if project is None:
        report.info("project", "none (no .modelport/ in this folder or above)")
    else:
        report.info("project", str(project))
        report.info("project config", _described(project / ".modelport" / "config.toml"))
    report.info("keys", str(key_storage()))
    report.info("OAuth tokens", token_storage())


def _described(path: Path) -> str:
    return str(path) if path.exists() else f"{path} (not created yet)"


def _split(address: str | None) -> tuple[str | None, str | None]:
    if not address or "/" not in address:
        return None, None
    connection, _, model = address.partition("/")
    return connection, model


def _check_all(config: Config, default_connection: str | None) -> dict[str, Probe]:
    """Every configured connection's and plugin provider's probe, plus the default's preset.

    The default's connection is left out when it is neither configured, a
    preset, nor registered by a plugin.
    """
    from modelport.checks import probe_connections
    from modelport.routing import Router, plugin_host

    async def _run() -> dict[str, Probe]:
        router = Router(config, provider_source=plugin_host)
        try:
            probes = await probe_connections(router)
            if (
                default_connection
                and default_connection not in probes
                and config.connection(default_connection) is not None
            ):
                probes.update(await probe_connections(router, [default_connection]))
            return probes
        finally:
            await router.aclose()

    return asyncio.run(_run())


def _check_connection(
    report: _Report,
    name: str,
    connection: ConnectionConfig,
    probe: Probe,
    default_connection: str | None,
    default_model: str | None,
) -> None:
    from modelport.checks import check_probe

    checked = check_probe(
        name,
        connection,
        probe,
        default_connection=default_connection,
        default_model=default_model,
        redact=redact,
    )
    report.console.print(checked.heading, style="bold", markup=False)
    for check in checked.checks:
        if check.level == "info":
            report.info(check.label or "", check.text)
        elif check.level == "ok":
            report.ok(check.text)
        elif check.level == "warning":
            report.warn(check.text, check.fix)
        else:
            report.problem(check.text, check.fix)
