"""``modelport doctor``: what is configured, what works, and how to fix what doesn't.

For every connection it lists the models (which proves the server is
reachable, and the key accepted where listing needs one; many servers list
models to anyone, so a remote connection with no key at all is a problem
too) and, for the connection ``default_model``
points at, checks the model is among them. Plugins are checked without
starting them (:func:`modelport.plugin_host.diagnose.diagnose`: manifests,
programs, trust, provider packages), then started so that their providers
are listed like connections. An untrusted project config is a warning. Each
problem comes with one concrete command to fix it. Exit code 1 when anything
is broken; warnings (no default model, say) leave it at 0.
"""

from __future__ import annotations

import asyncio
import difflib
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelport.cli._output import err_console, exit_with, out_console, redact

if TYPE_CHECKING:
    from modelport.config import Config, ConnectionConfig
    from modelport.plugin_host.diagnose import Finding
    from modelport.routing import ConnectionModels

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


class _Checked:
    """One connection's results: its models (or error), whether a key is available,
    whether it lies beyond this machine (``None``: unknown), and, for one that logs
    in with OAuth, its login (``logged in as … / expires in … / refresh available``)."""

    def __init__(
        self,
        result: ConnectionModels,
        has_key: bool | None,
        remote: bool | None = None,
        login: str | None = None,
    ) -> None:
        self.result = result
        self.has_key = has_key
        self.remote = remote
        self.login = login


def _check_all(config: Config, default_connection: str | None) -> dict[str, _Checked]:
    """Every configured connection's and plugin provider's check, plus the default's preset.

    The default's connection is left out when it is neither configured, a
    preset, nor registered by a plugin.
    """
    from modelport.auth.tokens import load_tokens, login_status
    from modelport.errors import ModelportError
    from modelport.plugin_host.host import PluginHost
    from modelport.routing import Router, is_local_url, plugin_host

    async def _run() -> dict[str, _Checked]:
        router = Router(config, provider_source=plugin_host)
        try:
            reports = await router.list_models_report()
            if (
                default_connection
                and default_connection not in {r.connection for r in reports}
                and config.connection(default_connection) is not None
            ):
                reports += await router.list_models_report(default_connection)
            checked = {}
            host = router.provider_source
            for result in reports:
                has_key: bool | None = None  # the listing already failed with the reason
                remote: bool | None = None
                login: str | None = None
                name = result.connection
                configured = config.connection(name)
                oauth_plugin = isinstance(host, PluginHost) and host.oauth_config(name) is not None
                if oauth_plugin or (
                    configured is not None and configured.auth in ("oauth", "auto")
                ):
                    login = login_status(await asyncio.to_thread(load_tokens, name))
                try:
                    settings = router.settings_for(result.connection)
                except ModelportError:
                    pass
                else:
                    has_key = settings.api_key is not None or settings.auth == "oauth"
                    plugin = settings.compat.startswith("plugin:")
                    local = is_local_url(settings.base_url) or (
                        settings.compat == "ollama" and settings.base_url is None
                    )
                    remote = None if plugin else not local
                checked[result.connection] = _Checked(result, has_key, remote, login)
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

    plugin = (connection.compat or "").startswith("plugin:")
    where = "a plugin" if plugin else connection.base_url or "its default URL"
    report.console.print(
        f"{name} ({connection.compat or 'openai'}, {where})", style="bold", markup=False
    )
    if checked.login is not None:
        report.info("login", checked.login)
    elif checked.has_key is not None:
        report.info("key", "present" if checked.has_key else "none")
    result = checked.result
    error = result.error
    if error is None:
        state = "registered by a running plugin" if plugin else "reachable"
        report.ok(f"{name}: {state}, {len(result.models)} models")
        if checked.remote and checked.has_key is False:
            # Listing proved nothing: OpenRouter, Ollama and others list models to anyone.
            report.problem(
                f"{name}: no API key, and a remote server will refuse chats without one "
                "(its model list is public, so listing it proves nothing)",
                _key_fix(name, connection),
            )
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
    if plugin:
        report.problem(f"{name}: {message}", "`modelport plugins list` shows each plugin's state")
    elif isinstance(error, NetworkError):
        report.problem(f"{name}: {message}", _unreachable_fix(name, connection))
    elif isinstance(error, AuthError) and checked.login is not None:
        report.problem(f"{name}: login missing or refused: {message}", f"`modelport login {name}`")
    elif isinstance(error, AuthError):
        report.problem(f"{name}: key missing or refused: {message}", _key_fix(name, connection))
    else:
        report.problem(f"{name}: {message}", _config_fix(name, connection, error))


def _is_ollama(connection: ConnectionConfig) -> bool:
    return connection.compat == "ollama" or _OLLAMA_PORT in (connection.base_url or "")


def _unreachable_fix(name: str, connection: ConnectionConfig) -> str:
    if _is_ollama(connection):
        return "start Ollama: `ollama serve`"
    url = connection.base_url or "the default URL"
    return (
        f"check that the server at {url} is running, or fix the URL: "
        f"`modelport connections add {name} --compat {connection.compat or 'openai'} "
        "--base-url URL --force`"
    )


def _key_fix(name: str, connection: ConnectionConfig) -> str:
    from modelport.config import PRESET_KEY_FALLBACKS, PRESETS

    if connection.api_key_env:
        return f"export {connection.api_key_env}=... (or `modelport keys set {name}`)"
    preset = PRESETS.get(name)
    if (
        preset is not None
        and preset.api_key_env
        and preset.compat == connection.compat
        and preset.base_url == connection.base_url
    ):
        # The vendor's own variable, which the ladder reads for a preset's own URL only.
        others = PRESET_KEY_FALLBACKS.get(name, ())
        also = f" (or {', '.join(others)})" if others else ""
        return f"`modelport keys set {name}`, or export {preset.api_key_env}=...{also}"
    if connection.compat == "azure":
        return (
            f"`modelport keys set {name}`, or name the variable that holds it: "
            f'api_key_env = "AZURE_OPENAI_API_KEY" under [connections.{name}]'
        )
    return f"`modelport keys set {name}`"


def _config_fix(name: str, connection: ConnectionConfig, error: BaseException) -> str:
    """The fix for a connection its adapter refused to build (the compat, a setting)."""
    from modelport.errors import ConfigError
    from modelport.providers import BUILTIN_PROVIDERS

    compat = connection.compat or "openai"
    if isinstance(error, ConfigError) and str(error.message).startswith("Unknown compat"):
        known = sorted(BUILTIN_PROVIDERS)
        close = difflib.get_close_matches(compat, known, n=1)
        suggestion = close[0] if close else "openai"
        return (
            f'set compat = "{suggestion}" under [connections.{name}] '
            f"(built in: {', '.join(known)}; or plugin:<provider id>)"
        )
    if compat == "azure" and not connection.base_url:
        return (
            f"`modelport connections add {name} --compat azure --base-url "
            "https://NAME.openai.azure.com --api-key-env AZURE_OPENAI_API_KEY --force`"
        )
    return f"`modelport connections test {name}` for details"


def _missing_model_fix(name: str, connection: ConnectionConfig, model: str) -> str:
    if _is_ollama(connection):
        return f"`ollama pull {model}`"
    return (
        f"pick a model from `modelport models --connection {name}` and set default_model "
        "in config.toml to its address"
    )
