"""``modelport usage`` and ``modelport logs``: what the usage ledger recorded.

``usage`` totals tokens, cost and latency per model or per connection;
``logs`` lists the latest calls. Both read the ledger the configuration points
at (``database_url``, else SQLite under ``MODELPORT_HOME``) and print a table,
or JSON with ``--json``.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
from rich.table import Table
from rich.text import Text

from modelport.cli._output import err_console, fail, out_console

if TYPE_CHECKING:
    from modelport.ledger import CallRecord, Ledger, UsageSummary

__all__ = ["register"]


class _GroupBy(StrEnum):
    model = "model"
    connection = "connection"


def register(app: typer.Typer) -> None:
    """Add ``usage`` and ``logs`` to ``app``."""
    app.command(name="usage")(usage)
    app.command(name="logs")(logs)


def usage(
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only calls since an age (30m, 1h, 7d, 2w) or a date (2026-11-01)."
        ),
    ] = None,
    by: Annotated[_GroupBy, typer.Option("--by", help="Group by model or by connection.")] = (
        _GroupBy.model
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Show tokens, cost and latency per model or connection."""
    start = _parse_since(since) if since else None
    with _open() as ledger:
        rows = ledger.summary(since=start, by=by.value)
    if as_json:
        _write_json(rows)
    elif rows:
        out_console().print(_summary_table(rows, by.value))
    else:
        _nothing_recorded(start)


def logs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many calls.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Show the most recent calls, newest first."""
    with _open() as ledger:
        records = ledger.recent(limit)
    if as_json:
        _write_json(records)
    elif records:
        out_console().print(_logs_table(records))
    else:
        _nothing_recorded(None)


def _open() -> Ledger:
    from modelport.ledger import open_ledger

    try:
        from modelport.config import load_config
    except ImportError:  # no configuration support: the default database
        return open_ledger()
    return open_ledger(load_config())


# Ages: a number and a unit, e.g. 90m, 1.5h, 7d.
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def _parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """An age (``7d``) back from now, or a date/time (local time unless it says otherwise)."""
    match = _AGE.match(text)
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(
            f"--since {text!r} is neither an age nor a date.",
            "Use an age such as 30m, 1h, 7d or 2w, or a date such as 2026-11-01.",
        )
    # A naive date or time means the user's own clock.
    return moment.astimezone(UTC)


def _write_json(items: list[Any]) -> None:
    sys.stdout.write(msgspec.json.encode(items).decode() + "\n")


def _nothing_recorded(since: datetime | None) -> None:
    when = f" since {_local(since)}" if since else ""
    err_console().print(f"No calls recorded{when}.", style="dim", markup=False)


def _summary_table(rows: list[UsageSummary], by: str) -> Table:
    table = Table(box=None, header_style="bold")
    table.add_column(by)
    for name in ("calls", "errors", "input", "output", "cache read", "cache write", "reasoning"):
        table.add_column(name, justify="right")
    for name in ("cost", "avg latency", "avg ttft"):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(
            Text(row.key),  # a client chose the model name: never read it as markup
            str(row.calls),
            str(row.errors),
            *(
                f"{n:,}"
                for n in (
                    row.input_tokens,
                    row.output_tokens,
                    row.cache_read_tokens,
                    row.cache_write_tokens,
                    row.reasoning_tokens,
                )
            ),
            _cost(row.cost),
            _ms(row.avg_latency_ms),
            _ms(row.avg_ttft_ms),
        )
    return table


def _logs_table(records: list[CallRecord]) -> Table:
    table = Table(box=None, header_style="bold")
    table.add_column("time")
    table.add_column("model")
    table.add_column("api")
    table.add_column("outcome")
    for name in ("input", "output", "cost", "latency", "ttft"):
        table.add_column(name, justify="right")
    table.add_column("error", overflow="fold")
    for record in records:
        table.add_row(
            _local(record.started_at),
            # Recorded text (a client's model name, an upstream's error) is never markup.
            Text(f"{record.connection}/{record.model}"),
            Text(record.api),
            Text(record.outcome),
            f"{record.input_tokens:,}",
            f"{record.output_tokens:,}",
            _cost(record.cost),
            _ms(record.latency_ms),
            _ms(record.ttft_ms),
            Text(record.error or ""),
        )
    return table


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _cost(cost: float | None) -> str:
    return "—" if cost is None else f"${cost:.4f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"
