"""``modelport connections``: list, add, remove and test configured connections.

Changes are written to the global ``config.toml`` through
:mod:`modelport.config`, which keeps the file's comments and layout, and a
running gateway is told to reload (:mod:`modelport.cli._gateway`).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from modelport.cli._gateway import tell_gateway_to_reload
from modelport.cli._output import err_console, exit_with, fail, out_console, print_error

if TYPE_CHECKING:
    from modelport.config import Config
    from modelport.routing import Router

__all__ = ["register"]

_COMPATS = ("openai", "anthropic", "ollama", "gemini", "azure", "openai-responses")
#: Every key ``add`` may write, cleared first when ``--force`` replaces a connection.
_CONNECTION_KEYS = (
    "base_url",
    "api_key_env",
    "timeout",
    "max_retries",
    "retry_base_delay",
    "retry_max_delay",
    "model",
    "temperature",
    "max_tokens",
    "headers",
    "prices",
    "auth",
    "oauth",
)

connections_app = typer.Typer(
    name="connections",
    help="List, add, remove and test connections.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    """Add the ``connections`` group to ``app``."""
    app.add_typer(connections_app)


def _check_compat(value: str) -> str:
    if value in _COMPATS or (value.startswith("plugin:") and len(value) > len("plugin:")):
        return value
    raise typer.BadParameter(f"use one of {', '.join(_COMPATS)} or plugin:<provider id>")


@connections_app.command(name="list")
def list_connections() -> None:
    """Show every connection: compat, base URL, whether a key is available, OAuth logins."""
    from modelport.config import load_config
    from modelport.routing import Router

    config = load_config()
    if not config.connections:
        err_console().print(
            "No connections configured. Add one with `modelport connections add NAME ...`, "
            "or `modelport local on` for a local server.",
            style="dim",
            markup=False,
        )
        return
    router = Router(config)
    table = Table(box=None, pad_edge=False, header_style="bold")
    # A login column only where some connection logs in with OAuth.
    logins = any(c.auth in ("oauth", "auto") for c in config.connections.values())
    for column in ("name", "compat", "base url", "key", *(("login",) if logins else ())):
        table.add_column(column)
    for name, connection in sorted(config.connections.items()):
        row = [
            name,
            connection.compat or "openai",
            connection.base_url or "(default)",
            # A connection with auth = "oauth" never sends a key.
            "-"
            if connection.auth == "oauth"
            else _key_source(router, name, connection.api_key_env),
        ]
        if logins:
            row.append(_login_state(name, connection.auth))
        table.add_row(*row)
    out_console().print(table)


def _login_state(name: str, auth: str | None) -> str:
    """``logged in as …, expires in …, refresh available`` for an OAuth connection, else ``-``."""
    if auth not in ("oauth", "auto"):
        return "-"
    from modelport.auth.tokens import load_tokens, login_status

    return login_status(load_tokens(name))


def _key_source(router: Router, name: str, api_key_env: str | None) -> str:
    """Where the key comes from (``stored``, ``$VAR``, ``none``), never the key itself."""
    from modelport.auth.keys import get_key
    from modelport.errors import ModelportError

    if get_key(name) is not None:
        return "stored"
    try:
        settings = router.settings_for(name)
    except ModelportError:  # this row says so; `doctor` explains, the other rows still list
        return "? (see `modelport doctor`)"
    if settings.api_key is None:
        return "none"
    return f"${api_key_env}" if api_key_env and os.environ.get(api_key_env) else "environment"


@connections_app.command(name="add")
def add(
    name: Annotated[str, typer.Argument(help="Connection name, used in model addresses.")],
    compat: Annotated[
        str,
        typer.Option(
            "--compat",
            callback=_check_compat,
            help="Wire format: openai, anthropic, ollama, gemini, azure or plugin:<provider id>.",
        ),
    ],
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="API base URL (provider default if omitted).")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option("--api-key-env", help="Read the key from this environment variable."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.1, help="Request timeout in seconds.")
    ] = None,
    max_retries: Annotated[
        int | None, typer.Option("--max-retries", min=0, help="Retries for failed requests.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Replace a connection of the same name.")
    ] = False,
) -> None:
    """Add a connection (or replace one with --force)."""
    from modelport import config as config_module

    if "/" in name:
        fail(f"connection names cannot contain '/': {name!r}")
    if compat == "openai" and base_url is None:
        presets = config_module.PRESETS
        ready = sorted(n for n, preset in presets.items() if preset.compat == "openai")
        if name not in ready:
            # Only a ready-made connection knows its OpenAI-compatible server's URL.
            fail(
                f"an OpenAI-compatible connection needs --base-url: {name!r} is not "
                "a ready-made connection that knows its own",
                f"`modelport connections add {name} --compat openai "
                "--base-url http://localhost:8000/v1` (your server's API URL); "
                f"ready-made: {', '.join(ready)}.",
            )
    if compat == "azure" and base_url is None:
        fail(
            "an Azure OpenAI connection needs --base-url: your resource's endpoint",
            f"`modelport connections add {name} --compat azure "
            "--base-url https://NAME.openai.azure.com --api-key-env AZURE_OPENAI_API_KEY`",
        )
    existing = config_module.load_config().connections
    if name in existing and not force:
        fail(
            f"connection {name!r} already exists",
            f"Use --force to replace it, or `modelport connections remove {name}` first.",
        )
    values: dict[str, Any] = {"compat": compat}
    for key, value in (
        ("base_url", base_url),
        ("api_key_env", api_key_env),
        ("timeout", timeout),
        ("max_retries", max_retries),
    ):
        if value is not None:
            values[key] = value
    if name in existing:
        # Replace in place (one write, the table's comments kept): clear what is not given.
        old = existing[name]
        cleared = {key: None for key in (*_CONNECTION_KEYS, *old.options)}
        values = {**cleared, **values}
    config_module.set_connection(name, values)
    console = err_console()
    done = "Replaced" if name in existing else "Added"
    console.print(f"{done} connection {name!r}{tell_gateway_to_reload()}.", markup=False)
    if compat != "ollama" and api_key_env is None and not _is_local(base_url):
        console.print(
            f"Store its key with `modelport keys set {name}` if it needs one; "
            f"`modelport connections test {name}` checks it.",
            style="dim",
            markup=False,
        )


def _is_local(url: str | None) -> bool:
    from modelport.routing._settings import is_local_url

    return is_local_url(url)


@connections_app.command(name="remove")
def remove(name: Annotated[str, typer.Argument(help="Connection to remove.")]) -> None:
    """Remove a connection from config.toml (its stored key stays; see `keys remove`)."""
    from modelport import config as config_module

    if name not in config_module.load_config().connections:
        fail(f"no connection named {name!r}", "`modelport connections list` shows them.")
    config_module.remove_connection(name)
    err_console().print(f"Removed connection {name!r}{tell_gateway_to_reload()}.", markup=False)


@connections_app.command(name="test")
def test(
    name: Annotated[str, typer.Argument(help="Connection to test.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Also send a tiny request to this model (costs tokens)."
        ),
    ] = None,
) -> None:
    """Check a connection: reachable, key accepted, and optionally a tiny request."""
    from modelport.config import load_config
    from modelport.errors import ModelportError

    config = load_config()
    if name not in config.connections:
        fail(f"no connection named {name!r}", "`modelport connections list` shows them.")
    console = out_console()
    try:
        count = asyncio.run(_probe(config, name, model))
    except ModelportError as exc:
        console.print(f"✗ {name}: not working", style="red", markup=False)
        print_error(exc)
        exit_with(1)
    console.print(f"✓ {name}: reachable, key accepted, {count} models listed", style="green")
    if model:
        console.print(f"✓ {name}/{model}: answered", style="green", markup=False)


async def _probe(config: Config, name: str, model: str | None) -> int:
    from modelport.routing import Router
    from modelport.types import ChatRequest, Message

    router = Router(config)
    try:
        models = await router.list_models(connection=name)
        if model:
            await router.complete(
                ChatRequest(
                    model=f"{name}/{model}",
                    messages=[Message(role="user", content="Say OK.")],
                    max_tokens=16,
                )
            )
        return len(models)
    finally:
        await router.aclose()
