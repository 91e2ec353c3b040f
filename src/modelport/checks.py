"""The connection checks ``modelport doctor`` and the web UI's Test button run.

A connection is checked by listing its models: that proves the server is
reachable and, where listing needs one, that the key is accepted. Many
servers list models to anyone, so a remote connection with no key at all is
a problem too; and for the connection ``default_model`` points at, the model
must be among those listed. Each problem comes with one concrete command
that fixes it.

The results are values (:class:`Check`, :class:`ConnectionReport`), not
printed lines: the CLI prints them with ``✓``/``✗``/``!``, the gateway
answers them as JSON (``POST /admin/connections/{name}/test``). This module
sits below both, so neither reaches into the other.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from modelport._redact import public_text
from modelport.errors import AuthError, ModelportError, NetworkError

if TYPE_CHECKING:
    from modelport.config import Config, ConnectionConfig
    from modelport.routing import ConnectionModels, Router

__all__ = [
    "Check",
    "ConnectionReport",
    "Probe",
    "check_connection",
    "check_probe",
    "key_fix",
    "probe_connections",
]

Level = Literal["info", "ok", "warning", "problem"]

_OLLAMA_PORT = ":11434"


@dataclass(frozen=True, slots=True)
class Check:
    """One result: ``info`` (a fact), ``ok``, ``warning`` or ``problem``, and how to fix it."""

    level: Level
    text: str
    fix: str | None = None
    #: For ``info``: what the fact is about ("key").
    label: str | None = None


@dataclass(slots=True)
class ConnectionReport:
    """Everything checked about one connection, in the order to show it."""

    name: str
    compat: str
    where: str
    checks: list[Check] = field(default_factory=list)

    @property
    def heading(self) -> str:
        return f"{self.name} ({self.compat}, {self.where})"

    @property
    def problems(self) -> int:
        return sum(1 for check in self.checks if check.level == "problem")

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "compat": self.compat,
            "where": self.where,
            "ok": self.problems == 0,
            "checks": [
                {"level": c.level, "text": c.text, "fix": c.fix, "label": c.label}
                for c in self.checks
            ],
        }


@dataclass(frozen=True, slots=True)
class Probe:
    """One connection's listing: its models (or error), whether a key is available,
    whether it lies beyond this machine (``None``: unknown), and, for one that logs
    in with OAuth, its login (``logged in as … / expires in … / refresh available``)."""

    result: ConnectionModels
    has_key: bool | None
    remote: bool | None = None
    login: str | None = None


async def probe_connections(router: Router, names: list[str] | None = None) -> dict[str, Probe]:
    """List the models of ``names`` (every connection when ``None``) through ``router``."""
    import asyncio

    from modelport.auth.tokens import load_tokens, login_status
    from modelport.routing import is_local_url

    if names is None:
        reports = await router.list_models_report()
    else:
        reports = [entry for name in names for entry in await router.list_models_report(name)]
    probes = {}
    host = router.provider_source
    oauth_config = getattr(host, "oauth_config", None)
    for result in reports:
        has_key: bool | None = None  # the listing already failed with the reason
        remote: bool | None = None
        login: str | None = None
        configured = router.config.connection(result.connection)
        oauth_plugin = oauth_config is not None and oauth_config(result.connection) is not None
        if oauth_plugin or (configured is not None and configured.auth in ("oauth", "auto")):
            login = login_status(await asyncio.to_thread(load_tokens, result.connection))
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
        probes[result.connection] = Probe(result, has_key, remote, login)
    return probes


def check_probe(
    name: str,
    connection: ConnectionConfig,
    probe: Probe,
    *,
    default_connection: str | None = None,
    default_model: str | None = None,
    redact: Callable[[str], str] = public_text,
) -> ConnectionReport:
    """What ``probe`` says about connection ``name``, with a fix for each problem."""
    plugin = (connection.compat or "").startswith("plugin:")
    report = ConnectionReport(
        name=name,
        compat=connection.compat or "openai",
        where="a plugin" if plugin else connection.base_url or "its default URL",
    )
    add = report.checks.append
    if probe.login is not None:
        add(Check("info", probe.login, label="login"))
    elif probe.has_key is not None:
        add(Check("info", "present" if probe.has_key else "none", label="key"))
    result = probe.result
    error = result.error
    if error is None:
        state = "registered by a running plugin" if plugin else "reachable"
        add(Check("ok", f"{name}: {state}, {len(result.models)} models"))
        if probe.remote and probe.has_key is False:
            # Listing proved nothing: OpenRouter, Ollama and others list models to anyone.
            add(
                Check(
                    "problem",
                    f"{name}: no API key, and a remote server will refuse chats without one "
                    "(its model list is public, so listing it proves nothing)",
                    key_fix(name, connection),
                )
            )
        if name == default_connection and default_model:
            if default_model in {model.id for model in result.models}:
                add(Check("ok", f"{name}: default model {default_model!r} is available"))
            else:
                add(
                    Check(
                        "problem",
                        f"{name}: default model {default_model!r} is not among its models",
                        _missing_model_fix(name, connection, default_model),
                    )
                )
        return report
    message = redact(getattr(error, "message", str(error)))
    if plugin:
        add(
            Check(
                "problem",
                f"{name}: {message}",
                "`modelport plugins list` shows each plugin's state",
            )
        )
    elif isinstance(error, NetworkError):
        add(Check("problem", f"{name}: {message}", _unreachable_fix(name, connection)))
    elif isinstance(error, AuthError) and probe.login is not None:
        add(
            Check(
                "problem",
                f"{name}: login missing or refused: {message}",
                f"`modelport login {name}`",
            )
        )
    elif isinstance(error, AuthError):
        add(
            Check(
                "problem",
                f"{name}: key missing or refused: {message}",
                key_fix(name, connection),
            )
        )
    else:
        add(Check("problem", f"{name}: {message}", _config_fix(name, connection, error)))
    return report


async def check_connection(router: Router, name: str) -> ConnectionReport:
    """Check one connection through a running ``router`` (the gateway's Test button)."""
    from modelport.config import ConnectionConfig, default_model, resolve_address

    config: Config = router.config
    default_connection = default_id = None
    default = default_model(config)
    if default:
        try:
            address = resolve_address(default, config)
        except ModelportError:
            address = None
        if address and "/" in address:
            default_connection, _, default_id = address.partition("/")
    probes = await probe_connections(router, [name])
    connection = config.connection(name) or ConnectionConfig(compat=f"plugin:{name}")
    return check_probe(
        name,
        connection,
        probes[name],
        default_connection=default_connection,
        default_model=default_id,
    )


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


def key_fix(name: str, connection: ConnectionConfig) -> str:
    """How to give connection ``name`` its key."""
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
