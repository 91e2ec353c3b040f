"""Admin routes of the team gateway: virtual keys, budgets, rate limits, the audit log.

Mounted under ``/admin`` behind the admin key (:mod:`modelport.server._keys`).
Every change goes through the catalog (:class:`~modelport.governance.Catalog`),
which writes its audit entry in the same transaction; this instance reloads at
once, the others within their poll interval. A key's secret appears in one
answer only: the one that issued or rotated it.

=================================  ==============================================
``GET /admin/keys``                every key (never a secret or digest), with its
                                   ``spent`` this month
``POST /admin/keys``               issue one: ``{name, user?, team?, models?,
                                   expires_at?, metadata?}`` → ``{key, secret}``
``GET /admin/keys/{id}``           one key
``POST /admin/keys/{id}/rotate``   a new secret for it → ``{key, secret}``
``POST /admin/keys/{id}/revoke``   stop it, on every instance within a second
``GET /admin/budgets``             every budget, with its ``spent`` this period
``PUT /admin/budgets``             set one: ``{scope, subject, period,
                                   max_cost?, max_tokens?, model?}``
``DELETE /admin/budgets/{id}``     remove one
``GET /admin/limits``              every rate limit
``PUT /admin/limits``              set one: ``{scope, subject, rpm?, tpm?, model?}``
``DELETE /admin/limits/{id}``      remove one
``GET /admin/audit?limit=N``       the latest admin actions, newest first;
                                   ``&before=ID`` pages on to older ones
``POST /admin/counters/rebuild``   drop the budget counters; each restarts from the ledger
=================================  ==============================================
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from modelport.errors import InvalidRequestError, ModelportError

__all__ = ["routes"]


class KeyRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    user: str | None = None
    team: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    expires_at: datetime | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class BudgetRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    scope: str
    subject: str
    period: str
    max_cost: float | None = None
    max_tokens: int | None = None
    model: str | None = None


class LimitRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    scope: str
    subject: str
    rpm: int | None = None
    tpm: int | None = None
    model: str | None = None


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def _governance(request: Request) -> Any:
    return getattr(request.app.state, "governance", None)


def _actor(request: Request) -> str:
    client = request.client.host if request.client is not None else "unknown"
    return f"admin api ({client})"


async def _body(request: Request, shape: type[Any]) -> Any:
    try:
        return msgspec.json.decode(await request.body(), type=shape)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"The request body does not fit: {exc}") from None


async def _change(request: Request, action: Any, status: int = 200) -> Response:
    """Run a catalog change on a worker thread, reload, answer its result as JSON."""
    governance = _governance(request)
    if governance is None:
        return _error(503, "This gateway runs without virtual keys (no catalog).", "unavailable")
    try:
        result = await asyncio.to_thread(action, governance.catalog, _actor(request))
        await asyncio.to_thread(governance.reload)
    except ModelportError as exc:
        from modelport.governance._catalog import NotFound

        code = 404 if isinstance(exc, NotFound) else 400
        return _error(code, exc.message, "not_found" if code == 404 else "invalid_request_error")
    if result is None:
        return Response(status_code=204)
    return JSONResponse(result, status_code=status)


async def _read(request: Request, action: Any) -> Response:
    governance = _governance(request)
    if governance is None:
        return _error(503, "This gateway runs without virtual keys (no catalog).", "unavailable")
    try:
        return JSONResponse(await asyncio.to_thread(action, governance))
    except ModelportError as exc:
        return _error(404, exc.message, "not_found")


async def list_keys(request: Request) -> Response:
    from modelport.governance._spend import keys_with_spend

    return await _read(request, lambda g: {"keys": keys_with_spend(g.catalog.engine, g.snapshot)})


async def create_key(request: Request) -> Response:
    try:
        body = await _body(request, KeyRequest)
    except InvalidRequestError as exc:
        return _error(400, exc.message, "invalid_request_error")

    def create(catalog: Any, actor: str) -> dict[str, Any]:
        key, secret = catalog.create_key(
            name=body.name,
            user=body.user,
            team=body.team,
            models=body.models,
            expires_at=body.expires_at,
            metadata=body.metadata,
            actor=actor,
        )
        return {"key": key.public(), "secret": secret}

    return await _change(request, create, status=201)


async def get_key(request: Request) -> Response:
    key_id = request.path_params["id"]
    return await _read(request, lambda g: g.catalog.key(key_id).public())


async def rotate_key(request: Request) -> Response:
    key_id = request.path_params["id"]

    def rotate(catalog: Any, actor: str) -> dict[str, Any]:
        key, secret = catalog.rotate_key(key_id, actor=actor)
        return {"key": key.public(), "secret": secret}

    return await _change(request, rotate)


async def revoke_key(request: Request) -> Response:
    key_id = request.path_params["id"]
    return await _change(
        request, lambda catalog, actor: {"key": catalog.revoke_key(key_id, actor=actor).public()}
    )


async def list_budgets(request: Request) -> Response:
    from modelport.governance._spend import budgets_with_spend

    return await _read(
        request, lambda g: {"budgets": budgets_with_spend(g.catalog.engine, g.snapshot)}
    )


async def set_budget(request: Request) -> Response:
    try:
        body = await _body(request, BudgetRequest)
    except InvalidRequestError as exc:
        return _error(400, exc.message, "invalid_request_error")
    return await _change(
        request,
        lambda catalog, actor: catalog.set_budget(
            **msgspec.structs.asdict(body), actor=actor
        ).public(),
    )


async def remove_budget(request: Request) -> Response:
    budget_id = request.path_params["id"]
    return await _change(
        request, lambda catalog, actor: catalog.remove_budget(budget_id, actor=actor)
    )


async def list_limits(request: Request) -> Response:
    return await _read(request, lambda g: {"limits": [r.public() for r in g.snapshot.limits]})


async def set_limit(request: Request) -> Response:
    try:
        body = await _body(request, LimitRequest)
    except InvalidRequestError as exc:
        return _error(400, exc.message, "invalid_request_error")
    return await _change(
        request,
        lambda catalog, actor: catalog.set_limit(
            **msgspec.structs.asdict(body), actor=actor
        ).public(),
    )


async def remove_limit(request: Request) -> Response:
    limit_id = request.path_params["id"]
    return await _change(
        request, lambda catalog, actor: catalog.remove_limit(limit_id, actor=actor)
    )


async def audit_log(request: Request) -> Response:
    try:
        limit = int(request.query_params.get("limit", "100"))
        before = request.query_params.get("before")
        before_id = None if before is None else int(before)
    except ValueError:
        return _error(400, "limit and before must be whole numbers.", "invalid_request_error")
    limit = max(1, min(limit, 1000))
    return await _read(
        request,
        lambda g: {"entries": [e.public() for e in g.catalog.audit_log(limit, before=before_id)]},
    )


async def rebuild_counters(request: Request) -> Response:
    governance = _governance(request)
    if governance is None:
        return _error(503, "This gateway runs without virtual keys (no catalog).", "unavailable")
    await governance.counters.rebuild()
    await asyncio.to_thread(governance.catalog.record, _actor(request), "counters.rebuild", "*")
    return Response(status_code=204)


def routes() -> list[BaseRoute]:
    """The team gateway's admin routes (behind the admin key, as every ``/admin`` path)."""
    return [
        Route("/admin/keys", list_keys, methods=["GET"]),
        Route("/admin/keys", create_key, methods=["POST"]),
        Route("/admin/keys/{id}", get_key, methods=["GET"]),
        Route("/admin/keys/{id}/rotate", rotate_key, methods=["POST"]),
        Route("/admin/keys/{id}/revoke", revoke_key, methods=["POST"]),
        Route("/admin/budgets", list_budgets, methods=["GET"]),
        Route("/admin/budgets", set_budget, methods=["PUT"]),
        Route("/admin/budgets/{id}", remove_budget, methods=["DELETE"]),
        Route("/admin/limits", list_limits, methods=["GET"]),
        Route("/admin/limits", set_limit, methods=["PUT"]),
        Route("/admin/limits/{id}", remove_limit, methods=["DELETE"]),
        Route("/admin/audit", audit_log, methods=["GET"]),
        Route("/admin/counters/rebuild", rebuild_counters, methods=["POST"]),
    ]
