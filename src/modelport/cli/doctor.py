"""``modelport doctor``: what is configured, what works, and how to fix what doesn't.

For every connection it lists the models (which proves the server is
reachable and the key accepted) and, for the connection ``default_model``
points at, checks the model is among them. Each problem comes with one
concrete command to fix it. Exit code 1 when anything is broken; warnings
(no default model, say) leave it at 0.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelport.cli._output import err_console, exit_with, out_console, redact

if TYPE_CHECKING:
    from modelport.config import Config, ConnectionConfig
    from modelport.router import ConnectionModels

__all__ = ["register"]

_OLLAMA_PORT = ":11434"


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
    from modelport.addresses import default_model, resolve_address
    from modelport.config import load_config
    from modelport.errors import ModelportError

    report = _Report()
    _print_locations(report)
    try:
        config = load_config()
    except ModelportError as exc:  # a config that cannot load is the first thing to fix
        report.problem(f"config cannot be loaded: {redact(str(exc))}", "edit the file named above")
        exit_with(1)

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
    if default_connection and config.connection(default_connection) is None:
        report.problem(
            f"default model {address!r} names connection {default_connection!r}, "
            "which is not configured",
            f"`modelport connections add {default_connection} --compat ...`",
        )
        default_connection = None
    if not config.connections and default_connection is None:
        report.warn(
            "no connections configured",
            "`modelport local on`, or `modelport connections add NAME --compat ... --base-url ...`",
        )

    for name, checked in _check_all(config, default_connection).items():
        connection = config.connection(name)
        if connection is not None:  # plugin providers report through `modelport plugins`
            _check_connection(report, name, connection, checked, default_connection, default_id)

    if report.broken:
        err_console().print(
            f"{report.broken} problem{'s' if report.broken != 1 else ''} found.",
            style="bold red",
            markup=False,
        )
        exit_with(1)
    err_console().print("Everything works.", style="bold green", markup=False)


def _print_locations(report: _Report) -> None:
    from modelport.auth.keys import key_storage
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


def _described(path: Path) -> str:
    return str(path) if path.exists() else f"{path} (not created yet)"


def _split(address: str | None) -> tuple[str | None, str | None]:
    if not address or "/" not in address:
        return None, None
    connection, _, model = address.partition("/")
    return connection, model


class _Checked:
    """One connection's results: its models (or error) and whether a key is available."""

    def __init__(self, result: ConnectionModels, has_key: bool | None) -> None:
        self.result = result
        self.has_key = has_key


def _check_all(config: Config, default_connection: str | None) -> dict[str, _Checked]:
    """Every configured connection's check, plus the default's ready-made one if it uses one."""
    from modelport.errors import ModelportError
    from modelport.router import Router

    async def _run() -> dict[str, _Checked]:
        router = Router(config)
        try:
            reports = await router.list_models_report()
            if default_connection and default_connection not in {r.connection for r in reports}:
                reports += await router.list_models_report(default_connection)
            checked = {}
            for result in reports:
                try:
                    has_key: bool | None = (
                        router.settings_for(result.connection).api_key is not None
                    )
                except ModelportError:
                    has_key = None  # the listing already failed with the reason
                checked[result.connection] = _Checked(result, has_key)
            return checked
        finally:
            await router.aclose()

    return asyncio.run(_run())


def _check_connection(
    report: _Report,
    name: str,
    connection: ConnectionConfig,
    checked: _Checked,
    default_connection: str | None,
    default_model: str | None,
) -> None:
    from modelport.errors import AuthError, NetworkError

    where = connection.base_url or "its default URL"
    report.console.print(
        f"{name} ({connection.compat or 'openai'}, {where})", style="bold", markup=False
    )
    if checked.has_key is not None:
        report.info("key", "present" if checked.has_key else "none")
    result = checked.result
    error = result.error
    if error is None:
        report.ok(f"{name}: reachable, {len(result.models)} models")
        if name == default_connection and default_model:
            if default_model in {model.id for model in result.models}:
                report.ok(f"{name}: default model {default_model!r} is available")
            else:
                report.problem(
                    f"{name}: default model {default_model!r} is not among its models",
                    _missing_model_fix(name, connection, default_model),
                )
        return
    message = redact(getattr(error, "message", str(error)))
    if isinstance(error, NetworkError):
        report.problem(f"{name}: {message}", _unreachable_fix(name, connection))
    elif isinstance(error, AuthError):
        report.problem(f"{name}: key missing or refused: {message}", _key_fix(name, connection))
    else:
        report.problem(f"{name}: {message}", f"`modelport connections test {name}` for details")


def _is_ollama(connection: ConnectionConfig) -> bool:
    return connection.compat == "ollama" or _OLLAMA_PORT in (connection.base_url or "")


def _unreachable_fix(name: str, connection: ConnectionConfig) -> str:
    if _is_ollama(connection):
        return "start Ollama: `ollama serve`"
    url = connection.base_url or "the default URL"
    return (
        f"check that the server at {url} is running, or fix the URL: "
        f"`modelport connections add {name} --compat {connection.compat} --base-url URL --force`"
    )


def _key_fix(name: str, connection: ConnectionConfig) -> str:
    if connection.api_key_env:
        return f"export {connection.api_key_env}=... (or `modelport keys set {name}`)"
    return f"`modelport keys set {name}`"


def _missing_model_fix(name: str, connection: ConnectionConfig, model: str) -> str:
    if _is_ollama(connection):
        return f"`ollama pull {model}`"
    return (
        f"pick a model from `modelport models --connection {name}` and set default_model "
        "in config.toml to its address"
    )
