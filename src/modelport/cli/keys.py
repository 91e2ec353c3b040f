"""``modelport keys``: store, remove and list API keys, never showing one.

Keys go to the OS keyring (``connection:<name>``) or, where there is none or
it refuses the write, to an owner-only file under ``MODELPORT_HOME``;
:mod:`modelport.auth.keys` decides which, and ``keys set`` says where the key
went and why. ``keys set`` prompts with hidden input, or reads ``--stdin``
for scripts, so a key never lands in the shell history. A running gateway is
told to read its keys again (:mod:`modelport.cli._gateway`).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from modelport.cli._gateway import tell_gateway_to_reload
from modelport.cli._output import err_console, fail, out_console

if TYPE_CHECKING:
    from modelport.config import ConnectionConfig

__all__ = ["register"]

keys_app = typer.Typer(
    name="keys",
    help="Store, remove and list API keys (values are never shown).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    """Add the ``keys`` group to ``app``."""
    app.add_typer(keys_app)


@keys_app.command(name="set")
def set_(
    name: Annotated[str, typer.Argument(help="Connection name the key belongs to.")],
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the key from stdin instead of prompting.")
    ] = False,
) -> None:
    """Store the key for connection NAME (prompted with hidden input)."""
    from modelport.auth.keys import set_key

    if stdin:
        value = sys.stdin.read().strip()
    else:
        value = typer.prompt(f"Key for {name}", hide_input=True, err=True).strip()
    if not value:
        fail("empty key; nothing stored")
    stored = set_key(name, value)
    reloaded = tell_gateway_to_reload()
    # Where it really went: a locked keyring sends the key to the file, and saying
    # "OS keyring" then would be a lie about where a secret lies.
    err_console().print(
        f"Stored the key for {name!r} in {stored.describe()}{reloaded}.", markup=False
    )


@keys_app.command(name="remove")
def remove(name: Annotated[str, typer.Argument(help="Connection whose key to forget.")]) -> None:
    """Forget the stored key of connection NAME."""
    from modelport.auth.keys import delete_key, get_key

    if get_key(name) is None:
        fail(f"no key stored for {name!r}", "`modelport keys list` shows the stored keys.")
    delete_key(name)
    err_console().print(f"Removed the key for {name!r}{tell_gateway_to_reload()}.", markup=False)


@keys_app.command(name="list")
def list_() -> None:
    """Show which connections have a key and where it comes from (never the value).

    Covers every configured connection, and every well-known one (``openai``,
    ``anthropic``, ...) that has a key stored or in its own environment variable.
    """
    from modelport.auth.keys import get_key, key_storage
    from modelport.config import PRESETS, load_config
    from modelport.errors import ModelportError
    from modelport.routing import Router

    config = load_config()
    router = Router(config)
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("name")
    table.add_column("key")
    rows = 0
    for name in sorted(set(config.connections) | set(PRESETS)):
        variables = _variables(config.connections.get(name), PRESETS.get(name))
        if get_key(name) is not None:
            source = "stored"
        elif name not in config.connections:
            if not variables:
                continue  # an unused preset without a key is noise
            source = f"environment ${variables[0]}"
        else:
            try:
                available = router.settings_for(name).api_key is not None
            except ModelportError as exc:
                source = f"? ({exc.message})"
            else:
                if available:
                    variable = (variables or ["MODELPORT_API_KEY"])[0]
                    source = f"environment ${variable}"
                else:
                    source = "none"
        table.add_row(name, source)
        rows += 1
    if rows:
        out_console().print(table)
    else:
        err_console().print(
            "No keys found. `modelport keys set NAME` stores one.", style="dim", markup=False
        )
    err_console().print(f"Stored keys live in: {key_storage()}", style="dim", markup=False)


def _variables(*tables: ConnectionConfig | None) -> list[str]:
    """The key variables these config tables name that are set right now."""
    names = [table.api_key_env for table in tables if table is not None and table.api_key_env]
    return [name for name in names if os.environ.get(name)]
