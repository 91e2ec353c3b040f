"""``modelport models``: every connection's models, as each upstream lists them.

Plugin models are included: the plugins start for the listing and stop after it.

A connection that cannot be listed prints its error on stderr and the others
are still shown. The command exits 1 only when every connection failed, so a
script can tell "nothing reachable" from "one provider is down".
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
from rich.table import Table

from modelport.cli._output import err_console, error_hint, exit_with, out_console, redact

if TYPE_CHECKING:
    from modelport.routing import ConnectionModels
    from modelport.types import ModelInfo

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``models`` to ``app``."""
    app.command(name="models")(models)


def models(
    connection: Annotated[
        str | None, typer.Option("--connection", "-c", help="Only this connection.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array of models instead of a table.")
    ] = False,
) -> None:
    """List the models every configured connection and every plugin offers.

    A connection that fails prints its error on stderr; the command exits 1
    only when every connection failed.
    """
    from modelport.config import load_config
    from modelport.routing import Router, plugin_host

    async def _report() -> list[ConnectionModels]:
        router = Router(load_config(), provider_source=plugin_host)
        try:
            return list(await router.list_models_report(connection))
        finally:
            await router.aclose()

    reports = asyncio.run(_report())
    found = [model for report in reports for model in report.models]
    failed = [report for report in reports if report.error is not None]

    if as_json:
        encoded = msgspec.json.encode([_model_dict(model) for model in found])
        sys.stdout.write(msgspec.json.format(encoded, indent=2).decode() + "\n")
        sys.stdout.flush()
    elif found:
        out_console().print(_table(found))
    elif not reports:
        err_console().print(
            "No connections configured. Add one with `modelport connections add NAME ...`, "
            "or `modelport local on` for a local server.",
            style="dim",
            markup=False,
        )

    console = err_console()
    for report in failed:
        console.print(
            f"error: {report.connection}: {redact(str(report.error))}",
            style="bold red",
            markup=False,
        )
        hint = error_hint(report.error)
        if hint:
            console.print(f"  {hint}", style="dim", markup=False)
    if reports and len(failed) == len(reports):
        exit_with(1)


def _model_dict(model: ModelInfo) -> dict[str, Any]:
    return {"address": model.address, **msgspec.to_builtins(model)}


def _table(found: list[ModelInfo]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("model")
    table.add_column("context", justify="right")
    table.add_column("max out", justify="right")
    table.add_column("$/M in", justify="right")
    table.add_column("$/M out", justify="right")
    for model in found:
        table.add_row(
            model.address,
            _number(model.context_window),
            _number(model.max_output_tokens),
            _price(model.prices.input),
            _price(model.prices.output),
        )
    return table


def _number(value: int | None) -> str:
    return f"{value:,}" if value else "-"


def _price(value: float | None) -> str:
    return f"{value:g}" if value is not None else "-"
