"""The OpenAPI schemas and paths of the team gateway's admin routes (``/admin/…``)."""

from __future__ import annotations

from typing import Any

from modelport.server._openapi_builders import (
    _NULLABLE_INTEGER,
    _NULLABLE_NUMBER,
    _NULLABLE_STRING,
    _json_body,
    _object,
    _ref,
    _string,
)

_ADMIN_SECURITY = [{"bearer": []}, {"apiKey": []}, {}]
_STRINGS = {"type": "array", "items": _string()}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

GOVERNANCE_SCHEMAS: dict[str, Any] = {
    "VirtualKey": _object(
        {
            "id": _string(),
            "name": _string(),
            "hint": {**_string(), "description": "The secret's last four characters"},
            "user": _NULLABLE_STRING,
            "team": _NULLABLE_STRING,
            "models": {**_STRINGS, "description": "Models it may use; empty: every model"},
            "expires_at": _NULLABLE_TIME,
            "metadata": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"},
            "revoked_at": _NULLABLE_TIME,
        },
        ("id", "name", "hint", "models", "created_at"),
    ),
    "NewVirtualKey": _object(
        {
            "name": _string(1),
            "user": _NULLABLE_STRING,
            "team": _NULLABLE_STRING,
            "models": _STRINGS,
            "expires_at": _NULLABLE_TIME,
            "metadata": {"type": "object"},
        },
        ("name",),
        additionalProperties=False,
    ),
    "IssuedVirtualKey": _object(
        {"key": _ref("VirtualKey"), "secret": {**_string(), "description": "Shown this once"}},
        ("key", "secret"),
    ),
    "Budget": _object(
        {
            "id": _string(),
            "scope": {"enum": ["key", "user", "team"]},
            "subject": _string(),
            "period": {"enum": ["day", "week", "month", "total"]},
            "max_cost": {**_NULLABLE_NUMBER, "description": "US dollars per period"},
            "max_tokens": _NULLABLE_INTEGER,
            "model": _NULLABLE_STRING,
            "created_at": {"type": "string", "format": "date-time"},
            "spent": {
                **_object(
                    {
                        "cost": {"type": "number", "description": "US dollars, settled calls"},
                        "tokens": {"type": "integer"},
                        "since": {**_NULLABLE_STRING, "format": "date-time"},
                        "until": {**_NULLABLE_STRING, "format": "date-time"},
                    },
                    ("cost", "tokens", "since", "until"),
                ),
                "description": "In GET /admin/budgets: the ledger's spend in the current period",
            },
        },
        ("id", "scope", "subject", "period"),
    ),
    "BudgetSetting": _object(
        {
            "scope": {"enum": ["key", "user", "team"]},
            "subject": _string(),
            "period": {"enum": ["day", "week", "month", "total"]},
            "max_cost": _NULLABLE_NUMBER,
            "max_tokens": _NULLABLE_INTEGER,
            "model": _NULLABLE_STRING,
        },
        ("scope", "subject", "period"),
        additionalProperties=False,
    ),
    "RateLimit": _object(
        {
            "id": _string(),
            "scope": {"enum": ["key", "user", "team", "model"]},
            "subject": _string(),
            "rpm": _NULLABLE_INTEGER,
            "tpm": _NULLABLE_INTEGER,
            "model": _NULLABLE_STRING,
            "created_at": {"type": "string", "format": "date-time"},
        },
        ("id", "scope", "subject"),
    ),
    "RateLimitSetting": _object(
        {
            "scope": {"enum": ["key", "user", "team", "model"]},
            "subject": _string(),
            "rpm": _NULLABLE_INTEGER,
            "tpm": _NULLABLE_INTEGER,
            "model": _NULLABLE_STRING,
        },
        ("scope", "subject"),
        additionalProperties=False,
    ),
    "AuditEntry": _object(
        {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "actor": _string(),
            "action": _string(),
            "target": _string(),
            "detail": {"type": "object"},
        },
        ("id", "at", "actor", "action", "target", "detail"),
    ),
    "AdminError": _object(
        {"error": _object({"message": _string(), "type": _string()}, ("message", "type"))},
        ("error",),
    ),
}

_ERRORS = {
    "400": _json_body(_ref("AdminError"), "The body does not fit"),
    "401": _json_body(_ref("OpenAIError"), "Missing or wrong admin key"),
    "404": _json_body(_ref("AdminError"), "No such key, budget or limit"),
    "503": _json_body(_ref("AdminError"), "The gateway runs without a catalog"),
}


def _id_parameter(what: str) -> list[dict[str, Any]]:
    return [
        {"name": "id", "in": "path", "required": True, "description": what, "schema": _string()}
    ]


def _op(operation_id: str, summary: str, ok: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["admin"],
        "security": _ADMIN_SECURITY,
        "responses": {**ok, **_ERRORS},
        **more,
    }


def _list(name: str, schema: str) -> dict[str, Any]:
    return {
        "200": _json_body(
            _object({name: {"type": "array", "items": _ref(schema)}}, (name,)), f"Every {schema}"
        )
    }


GOVERNANCE_PATHS: dict[str, Any] = {
    "/admin/keys": {
        "get": _op(
            "listVirtualKeys", "Every virtual key (never a secret)", _list("keys", "VirtualKey")
        ),
        "post": _op(
            "createVirtualKey",
            "Issue a virtual key; its secret is in this answer only",
            {"201": _json_body(_ref("IssuedVirtualKey"), "The key and its secret")},
            requestBody={**_json_body(_ref("NewVirtualKey"), "The key"), "required": True},
        ),
    },
    "/admin/keys/{id}": {
        "get": _op(
            "getVirtualKey",
            "One virtual key",
            {"200": _json_body(_ref("VirtualKey"), "The key")},
            parameters=_id_parameter("The key's id (vk_…)"),
        )
    },
    "/admin/keys/{id}/rotate": {
        "post": _op(
            "rotateVirtualKey",
            "A new secret for the key; the old one stops at once",
            {"200": _json_body(_ref("IssuedVirtualKey"), "The key and its new secret")},
            parameters=_id_parameter("The key's id (vk_…)"),
        )
    },
    "/admin/keys/{id}/revoke": {
        "post": _op(
            "revokeVirtualKey",
            "Stop the key on every instance within a second",
            {"200": _json_body(_object({"key": _ref("VirtualKey")}, ("key",)), "The key")},
            parameters=_id_parameter("The key's id (vk_…)"),
        )
    },
    "/admin/budgets": {
        "get": _op("listBudgets", "Every budget", _list("budgets", "Budget")),
        "put": _op(
            "setBudget",
            "Set (or change) the budget of a key, user or team for a period",
            {"200": _json_body(_ref("Budget"), "The budget")},
            requestBody={**_json_body(_ref("BudgetSetting"), "The budget"), "required": True},
        ),
    },
    "/admin/budgets/{id}": {
        "delete": _op(
            "removeBudget",
            "Remove a budget",
            {"204": {"description": "Removed"}},
            parameters=_id_parameter("The budget's id (bg_…)"),
        )
    },
    "/admin/limits": {
        "get": _op("listRateLimits", "Every rate limit", _list("limits", "RateLimit")),
        "put": _op(
            "setRateLimit",
            "Set (or change) the requests and tokens per minute of a key, user, team or model",
            {"200": _json_body(_ref("RateLimit"), "The rate limit")},
            requestBody={**_json_body(_ref("RateLimitSetting"), "The limit"), "required": True},
        ),
    },
    "/admin/limits/{id}": {
        "delete": _op(
            "removeRateLimit",
            "Remove a rate limit",
            {"204": {"description": "Removed"}},
            parameters=_id_parameter("The limit's id (rl_…)"),
        )
    },
    "/admin/audit": {
        "get": _op(
            "auditLog",
            "The latest admin actions, newest first",
            _list("entries", "AuditEntry"),
            parameters=[
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
                {
                    "name": "before",
                    "in": "query",
                    "required": False,
                    "description": "Only entries older than this id (the last id of a page)",
                    "schema": {"type": "integer"},
                },
            ],
        )
    },
    "/admin/counters/rebuild": {
        "post": _op(
            "rebuildCounters",
            "Drop the budget counters; each restarts from the ledger",
            {"204": {"description": "Dropped"}},
        )
    },
}
