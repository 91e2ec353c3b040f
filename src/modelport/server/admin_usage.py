"""Admin routes for the usage ledger: tokens and cost over time, and the recent calls.

* ``GET /admin/usage?days=7&bucket=hour``: totals per hour (or day, in UTC)
  by model and by connection, and the totals of the whole period;
* ``GET /admin/usage/recent?limit=50``: the latest calls, newest first.

Both write what the ledger still holds in memory first, so a call that just
ended is counted. A gateway without a ledger answers 503.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["routes"]

#: How long a usage request waits for the ledger to write what it holds.
_FLUSH_SECONDS = 2.0
_MAX_DAYS = 366
_MAX_RECENT = 500


def _ledger(request: Request) -> Any:
    state = request.app.state
    return getattr(state, "ledger", None) or getattr(state.router, "ledger", None)


def _error(status: int, message: str) -> JSONResponse:
    kind = "unavailable" if status == 503 else "invalid_request_error"
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def _no_ledger() -> JSONResponse:
    return _error(503, "This gateway runs without a usage ledger (see the log for why).")


def _number(request: Request, name: str, default: int, largest: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= largest:
        raise ValueError(f"{name} must be a whole number from 1 to {largest}")
    return int(raw)


async def usage(request: Request) -> Response:
    """``GET /admin/usage``."""
    ledger = _ledger(request)
    if ledger is None or not hasattr(ledger, "atimeseries"):
        return _no_ledger()
    try:
        days = _number(request, "days", 7, _MAX_DAYS)
    except ValueError as exc:
        return _error(400, str(exc))
    bucket = request.query_params.get("bucket", "hour" if days <= 2 else "day")
    if bucket not in ("hour", "day"):
        return _error(400, "bucket must be hour or day")
    await ledger.aflush(_FLUSH_SECONDS)
    since = datetime.now(UTC) - timedelta(days=days)
    by_model = await ledger.atimeseries(since, "model", bucket)
    by_connection = await ledger.atimeseries(since, "connection", bucket)
    totals = {
        "calls": sum(p.calls for p in by_connection),
        "errors": sum(p.errors for p in by_connection),
        "input_tokens": sum(p.input_tokens for p in by_connection),
        "output_tokens": sum(p.output_tokens for p in by_connection),
        "cost": _sum_known(p.cost for p in by_connection),
    }
    body = {
        "since": since.isoformat().replace("+00:00", "Z"),
        "bucket": bucket,
        "totals": totals,
        "by_model": msgspec.to_builtins(by_model),
        "by_connection": msgspec.to_builtins(by_connection),
    }
    return Response(msgspec.json.encode(body), media_type="application/json")


def _sum_known(costs: Any) -> float | None:
    known = [cost for cost in costs if cost is not None]
    return sum(known) if known else None


async def recent(request: Request) -> Response:
    """``GET /admin/usage/recent``."""
    ledger = _ledger(request)
    if ledger is None or not hasattr(ledger, "arecent"):
        return _no_ledger()
    try:
        limit = _number(request, "limit", 50, _MAX_RECENT)
    except ValueError as exc:
        return _error(400, str(exc))
    await ledger.aflush(_FLUSH_SECONDS)
    calls = await ledger.arecent(limit)
    return Response(msgspec.json.encode({"calls": calls}), media_type="application/json")


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/usage", usage, methods=["GET"]),
        Route("/admin/usage/recent", recent, methods=["GET"]),
    ]
