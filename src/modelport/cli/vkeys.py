"""``modelport vkeys``: the team gateway's virtual keys, budgets, rate limits and audit log.

Not to be confused with ``modelport keys``, which stores the *provider* keys
the gateway calls upstreams with. Virtual keys are the ones the gateway hands
out to people and tools. Every command works on the catalog in the ledger's
database (``database_url``, else SQLite under ``MODELPORT_HOME``), so no
gateway needs to run; running gateways pick a change up within a second.
Each change is recorded in the audit log as ``cli:<user>@<host>``.
"""

from __future__ import annotations

import getpass
import json
import socket
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from modelport.cli._output import err_console, fail, out_console

if TYPE_CHECKING:
    from modelport.governance import Catalog

__all__ = ["register"]

vkeys_app = typer.Typer(
    name="vkeys",
    help="The gateway's virtual keys for people and tools, their budgets, rate limits "
    "and audit log (provider keys are `modelport keys`).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
budget_app = typer.Typer(name="budget", help="Budgets per key, user or team.", no_args_is_help=True)
limit_app = typer.Typer(name="limit", help="Requests and tokens per minute.", no_args_is_help=True)
vkeys_app.add_typer(budget_app)
vkeys_app.add_typer(limit_app)


def register(app: typer.Typer) -> None:
    """Add the ``vkeys`` group to ``app``."""
    app.add_typer(vkeys_app)


def _catalog() -> closing[Catalog]:
    """The configured catalog, closed when the ``with`` block ends."""
    from modelport.config import load_config
    from modelport.governance import open_catalog

    return closing(open_catalog(load_config()))


def _actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _expiry(text: str | None) -> datetime | None:
    if not text:
        return None
    if text.endswith("d") and text[:-1].isdigit():
        return datetime.now(UTC) + timedelta(days=int(text[:-1]))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--expires {text!r} is neither a number of days (30d) nor an ISO date")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@vkeys_app.command()
def create(
    name: Annotated[str, typer.Argument(help="Who or what the key is for.")],
    user: Annotated[str | None, typer.Option(help="The person it belongs to.")] = None,
    team: Annotated[str | None, typer.Option(help="The team it belongs to.")] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="A model it may use (repeat; default all).")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="When it stops working: 30d, or an ISO date.")
    ] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="KEY=VALUE to keep with it (repeat).")
    ] = None,
) -> None:
    """Issue a virtual key. Its secret is shown once, now."""
    metadata: dict[str, Any] = {}
    for item in meta or []:
        name_, sep, value = item.partition("=")
        if not sep:
            fail(f"--meta {item!r} is not KEY=VALUE")
        metadata[name_] = value
    with _catalog() as catalog:
        key, secret = catalog.create_key(
            name=name,
            user=user,
            team=team,
            models=model or [],
            expires_at=_expiry(expires),
            metadata=metadata,
            actor=_actor(),
        )
    err_console().print(
        f"Issued {key.id} ({key.name}). The secret below is shown this once; store it now.",
        markup=False,
    )
    out_console().print(secret, markup=False, soft_wrap=True)


@vkeys_app.command(name="list")
def list_() -> None:
    """Every virtual key (never a secret)."""
    from modelport.governance._spend import keys_with_spend

    with _catalog() as catalog:
        snapshot = catalog.snapshot()
        keys = snapshot.keys
        spent = [entry["spent"] for entry in keys_with_spend(catalog.engine, snapshot)]
    if not keys:
        err_console().print("No virtual keys. `modelport vkeys create NAME` issues one.")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "name", "user", "team", "models", "ends", "state", "spent (month)"):
        table.add_column(column)
    table.add_column("secret")
    now = datetime.now(UTC)
    for key, spend in zip(keys, spent, strict=True):
        state = "revoked" if key.revoked_at else "active" if key.usable_at(now) else "expired"
        table.add_row(
            key.id,
            key.name,
            key.user or "",
            key.team or "",
            ", ".join(key.models) or "all",
            _when(key.expires_at),
            state,
            f"${spend['cost']:.4f} · {spend['tokens']:,} tokens",
            f"mpvk-…{key.hint}",
        )
    out_console().print(table)


@vkeys_app.command()
def rotate(key_id: Annotated[str, typer.Argument(help="The key's id (vk_…).")]) -> None:
    """A new secret for a key (budgets and history stay); the old one stops at once."""
    with _catalog() as catalog:
        key, secret = catalog.rotate_key(key_id, actor=_actor())
    err_console().print(f"Rotated {key.id}. The new secret is shown this once:", markup=False)
    out_console().print(secret, markup=False, soft_wrap=True)


@vkeys_app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (vk_…).")]) -> None:
    """Stop a key, on every running gateway within a second."""
    with _catalog() as catalog:
        key = catalog.revoke_key(key_id, actor=_actor())
    err_console().print(f"Revoked {key.id} ({key.name}).", markup=False)


@budget_app.command(name="set")
def budget_set(
    scope: Annotated[str, typer.Argument(help="key, user or team.")],
    subject: Annotated[str, typer.Argument(help="The key's id, the user or the team.")],
    period: Annotated[str, typer.Option(help="day, week, month or total.")] = "month",
    dollars: Annotated[float | None, typer.Option(help="Most US dollars per period.")] = None,
    tokens: Annotated[int | None, typer.Option(help="Most tokens per period.")] = None,
    model: Annotated[str | None, typer.Option(help="Only calls to this model.")] = None,
) -> None:
    """Set the budget of a key, user or team (again: change it)."""
    with _catalog() as catalog:
        budget = catalog.set_budget(
            scope=scope,
            subject=subject,
            period=period,
            max_cost=dollars,
            max_tokens=tokens,
            model=model,
            actor=_actor(),
        )
    err_console().print(f"Budget {budget.id} set.", markup=False)


@budget_app.command(name="list")
def budget_list() -> None:
    """Every budget."""
    with _catalog() as catalog:
        budgets = catalog.snapshot().budgets
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "scope", "subject", "period", "dollars", "tokens", "model"):
        table.add_column(column)
    for b in budgets:
        table.add_row(
            b.id,
            b.scope,
            b.subject,
            b.period,
            "" if b.max_cost is None else f"{b.max_cost:g}",
            "" if b.max_tokens is None else f"{b.max_tokens:,}",
            b.model or "",
        )
    out_console().print(table)


@budget_app.command(name="remove")
def budget_remove(
    budget_id: Annotated[str, typer.Argument(help="The budget's id (bg_…).")],
) -> None:
    """Remove a budget."""
    with _catalog() as catalog:
        catalog.remove_budget(budget_id, actor=_actor())
    err_console().print(f"Removed {budget_id}.", markup=False)


@limit_app.command(name="set")
def limit_set(
    scope: Annotated[str, typer.Argument(help="key, user, team or model.")],
    subject: Annotated[str, typer.Argument(help="The key's id, the user, team or model.")],
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    model: Annotated[str | None, typer.Option(help="Only calls to this model.")] = None,
) -> None:
    """Set the rate limit of a key, user, team or model (again: change it)."""
    with _catalog() as catalog:
        limit = catalog.set_limit(
            scope=scope, subject=subject, rpm=rpm, tpm=tpm, model=model, actor=_actor()
        )
    err_console().print(f"Rate limit {limit.id} set.", markup=False)


@limit_app.command(name="list")
def limit_list() -> None:
    """Every rate limit."""
    with _catalog() as catalog:
        limits = catalog.snapshot().limits
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "scope", "subject", "rpm", "tpm", "model"):
        table.add_column(column)
    for r in limits:
        table.add_row(
            r.id,
            r.scope,
            r.subject,
            "" if r.rpm is None else f"{r.rpm:,}",
            "" if r.tpm is None else f"{r.tpm:,}",
            r.model or "",
        )
    out_console().print(table)


@limit_app.command(name="remove")
def limit_remove(limit_id: Annotated[str, typer.Argument(help="The limit's id (rl_…).")]) -> None:
    """Remove a rate limit."""
    with _catalog() as catalog:
        catalog.remove_limit(limit_id, actor=_actor())
    err_console().print(f"Removed {limit_id}.", markup=False)


@vkeys_app.command()
def audit(
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 50,
    before: Annotated[
        int | None,
        typer.Option(help="Only entries older than this id: the last id of a page reads the next."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Who issued, changed or revoked what."""
    if limit < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--limit")
    with _catalog() as catalog:
        entries = catalog.audit_log(limit, before=before)
    if as_json:
        for entry in entries:
            out_console().print(json.dumps(entry.public()), markup=False, soft_wrap=True)
        return
    if not entries:
        err_console().print("No audit entries" + (f" before {before}." if before else "."))
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "when", "who", "action", "target", "detail"):
        table.add_column(column)
    for entry in entries:
        detail = ", ".join(f"{k}={v}" for k, v in entry.detail.items() if v not in (None, [], {}))
        table.add_row(
            str(entry.id), _when(entry.at), entry.actor, entry.action, entry.target, detail
        )
    out_console().print(table)
    if len(entries) == limit:
        err_console().print(
            f"Older entries: modelport vkeys audit --limit {limit} --before {entries[-1].id}",
            markup=False,
        )


@vkeys_app.command()
def rebuild() -> None:
    """Drop the budget counters (Redis or the database); each restarts from the ledger."""
    import asyncio

    from modelport.config import load_config
    from modelport.governance import open_governance

    async def run() -> None:
        governance = open_governance(load_config())
        try:
            await governance.counters.rebuild()
            await asyncio.to_thread(governance.catalog.record, _actor(), "counters.rebuild", "*")
        finally:
            await governance.aclose()

    asyncio.run(run())
    err_console().print("Budget counters dropped; each starts again from the ledger.")
