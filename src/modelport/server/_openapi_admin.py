"""The OpenAPI paths and schemas of the admin routes (``/plugins…``, ``/admin…``).

They take the admin key (or a signed-in web UI session); the web UI reads
nothing that is not described here, so a script can do what the UI does.
"""

from __future__ import annotations

from typing import Any

from modelport.server._openapi_builders import (
    _NULLABLE_INTEGER,
    _NULLABLE_NUMBER,
    _NULLABLE_STRING,
    _json_body,
    _nullable,
    _object,
    _ref,
    _string,
)

__all__ = ["ADMIN_PATHS", "ADMIN_SCHEMAS"]

_ADMIN_ERROR = _object(
    {"error": _object({"message": _string(), "type": _string()}, ("message", "type"))},
    ("error",),
)
_PRICES = _object(
    {name: _NULLABLE_NUMBER for name in ("input", "output", "cache_read", "cache_write")},
    description="US dollars per million tokens; null where unknown",
)
_CAPABILITIES = _object(
    {
        name: {"type": "boolean"}
        for name in ("tools", "vision", "reasoning", "prompt_cache", "streaming")
    }
)
_NAME = {"name": "name", "in": "path", "required": True, "schema": _string(1)}
# `{}`: a loopback gateway with no key configured takes none.
_SECURITY = [{"bearer": []}, {"apiKey": []}, {"session": []}, {}]

ADMIN_SCHEMAS: dict[str, Any] = {
    "AdminError": _ADMIN_ERROR,
    "Deleted": _object(
        {
            "deleted": _string(),
            "overridden_by": {
                **_NULLABLE_STRING,
                "description": "A connection: the project config.toml that still sets it",
            },
        },
        ("deleted",),
    ),
    "Plugin": _object(
        {
            "name": _string(),
            "version": _NULLABLE_STRING,
            "description": _string(),
            "source": {"enum": ["shipped", "global", "project"]},
            "dir": _string(),
            "state": {
                "enum": [
                    "loaded",
                    "starting",
                    "running",
                    "stopping",
                    "stopped",
                    "crashed",
                    "invalid",
                ]
            },
            "trusted": {"type": "boolean"},
            "triggers": {"type": "array"},
            "command": {"type": "array", "items": _string()},
            "pid": _NULLABLE_INTEGER,
            "restarts": {"type": "integer"},
            "exit_code": _NULLABLE_INTEGER,
            "error": _NULLABLE_STRING,
            "problems": {"type": "array", "items": _string()},
            "providers": {"type": "array", "items": {"type": "object"}},
            "stderr": {
                "type": "array",
                "items": _string(),
                "description": "The last log lines (one plugin only)",
            },
            "log_total": {"type": "integer", "description": "Log lines written so far"},
        },
        ("name", "state", "trusted", "pid", "restarts", "providers"),
    ),
    "PluginList": _object({"plugins": {"type": "array", "items": _ref("Plugin")}}, ("plugins",)),
    "PluginLog": _object(
        {
            "lines": {"type": "array", "items": _string()},
            "next": {"type": "integer", "description": "The `after` to send next time"},
        },
        ("lines", "next"),
    ),
    "ModelGroups": _object(
        {
            "default_model": _NULLABLE_STRING,
            "connections": {
                "type": "array",
                "items": _object(
                    {
                        "connection": _string(),
                        "compat": _NULLABLE_STRING,
                        "plugin": _NULLABLE_STRING,
                        "error": _nullable(
                            _object(
                                {"class": _string(), "message": _string()}, ("class", "message")
                            )
                        ),
                        "models": {
                            "type": "array",
                            "items": _object(
                                {
                                    "address": _string(),
                                    "id": _string(),
                                    "name": _NULLABLE_STRING,
                                    "context_window": _NULLABLE_INTEGER,
                                    "max_output_tokens": _NULLABLE_INTEGER,
                                    "prices": _PRICES,
                                    "capabilities": _CAPABILITIES,
                                },
                                ("address", "id", "prices", "capabilities"),
                            ),
                        },
                    },
                    ("connection", "models", "error"),
                ),
            },
        },
        ("default_model", "connections"),
    ),
    "Connection": _object(
        {
            "name": _string(),
            "configured": {"type": "boolean", "description": "In config.toml (else a plugin's)"},
            "compat": _string(),
            "base_url": _NULLABLE_STRING,
            "api_key_env": _NULLABLE_STRING,
            "timeout": _NULLABLE_NUMBER,
            "max_retries": _NULLABLE_INTEGER,
            "headers": {"type": "array", "items": _string(), "description": "Names only"},
            "options": {"type": "object", "description": "Provider options, secrets left out"},
            "key": _object(
                {"set": {"type": "boolean"}, "source": _NULLABLE_STRING},
                ("set", "source"),
                description="Whether a key is available and where from; never the key",
            ),
            "overridden_by": {
                **_NULLABLE_STRING,
                "description": (
                    "The project config.toml whose table for this connection replaces the "
                    "global one these routes edit (an edit here then has no effect), else null"
                ),
            },
            "plugin": _NULLABLE_STRING,
            "config_fields": {"type": "array", "items": {"type": "object"}},
        },
        ("name", "configured", "compat", "key"),
    ),
    "ConnectionList": _object(
        {
            "connections": {"type": "array", "items": _ref("Connection")},
            "compats": {"type": "array", "items": _string()},
        },
        ("connections", "compats"),
    ),
    "ConnectionUpdate": _object(
        {
            "compat": _NULLABLE_STRING,
            "base_url": _NULLABLE_STRING,
            "api_key_env": _NULLABLE_STRING,
            "timeout": _NULLABLE_NUMBER,
            "max_retries": _NULLABLE_INTEGER,
            "options": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            },
            "key": {
                **_NULLABLE_STRING,
                "writeOnly": True,
                "description": "Stored as `modelport keys set` stores it",
            },
            "clear_key": {"type": "boolean"},
        },
        additionalProperties=False,
        description="Only the fields given change; null removes a setting",
    ),
    "ConnectionReport": _object(
        {
            "name": _string(),
            "compat": _string(),
            "where": _string(),
            "ok": {"type": "boolean"},
            "checks": {
                "type": "array",
                "items": _object(
                    {
                        "level": {"enum": ["info", "ok", "warning", "problem"]},
                        "text": _string(),
                        "fix": _NULLABLE_STRING,
                        "label": _NULLABLE_STRING,
                    },
                    ("level", "text"),
                ),
            },
        },
        ("name", "ok", "checks"),
    ),
    "UsagePoint": _object(
        {
            "bucket": {"type": "string", "description": "Start of the hour or day, UTC"},
            "key": _string(),
            "calls": {"type": "integer"},
            "errors": {"type": "integer"},
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "cost": _NULLABLE_NUMBER,
        },
        ("bucket", "key", "calls", "errors", "input_tokens", "output_tokens", "cost"),
    ),
    "Usage": _object(
        {
            "since": _string(),
            "bucket": {"enum": ["hour", "day"]},
            "totals": {"type": "object"},
            "by_model": {"type": "array", "items": _ref("UsagePoint")},
            "by_connection": {"type": "array", "items": _ref("UsagePoint")},
        },
        ("since", "bucket", "totals", "by_model", "by_connection"),
    ),
    "RecentCalls": _object(
        {"calls": {"type": "array", "items": {"type": "object"}}},
        ("calls",),
        description="The ledger's records, newest first",
    ),
}


def _answer(schema: str, text: str, *errors: str) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _json_body(_ref(schema), text)}
    for status in ("401", "403", *errors):
        responses[status] = _json_body(_ref("AdminError"), _ERROR_TEXT[status])
    return responses


_ERROR_TEXT = {
    "400": "The request is not valid (the message says why)",
    "401": "The admin key (or a web UI session) is missing or wrong",
    "403": "Closed beyond loopback without an admin key, or sent by another page",
    "404": "No such plugin or connection",
    "409": "The plugin cannot start (invalid, not trusted, or its program or files missing)",
    "502": "The plugin failed to start",
    "503": "No plugin host or no usage ledger on this gateway",
}


def _operation(op_id: str, summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "summary": summary,
        "security": _SECURITY,
        **more,
        "responses": responses,
    }


ADMIN_PATHS: dict[str, Any] = {
    "/plugins": {
        "get": _operation(
            "listPlugins", "Every plugin and its state", _answer("PluginList", "The plugins", "503")
        )
    },
    "/plugins/load": {
        "post": _operation(
            "loadPlugins",
            "Rescan the plugin folders, start the startup plugins, re-read stored keys",
            _answer("PluginList", "The plugins", "503"),
        )
    },
    "/plugins/{name}": {
        "get": _operation(
            "getPlugin",
            "One plugin, with its log",
            _answer("Plugin", "The plugin", "404", "503"),
            parameters=[_NAME],
        )
    },
    "/plugins/{name}/start": {
        "post": _operation(
            "startPlugin",
            "Start a plugin",
            _answer("Plugin", "It runs", "404", "409", "502", "503"),
            parameters=[_NAME],
        )
    },
    "/plugins/{name}/stop": {
        "post": _operation(
            "stopPlugin",
            "Stop a plugin",
            _answer("Plugin", "It stopped", "404", "503"),
            parameters=[_NAME],
        )
    },
    "/plugins/{name}/trust": {
        "post": _operation(
            "trustPlugin",
            "Trust a project plugin's folder and the project's config.toml, as they are now "
            "(what `modelport plugins trust` does)",
            _answer("Plugin", "Trusted", "404", "409", "503"),
            parameters=[_NAME],
        )
    },
    "/plugins/{name}/log": {
        "get": _operation(
            "pluginLog",
            "The plugin's log lines after the first `after` written",
            _answer("PluginLog", "New lines", "400", "404", "503"),
            parameters=[
                _NAME,
                {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            ],
        )
    },
    "/admin/models": {
        "get": _operation(
            "adminModels",
            "Every model with context window, prices and capabilities, grouped by connection",
            _answer("ModelGroups", "The models"),
        )
    },
    "/admin/connections": {
        "get": _operation(
            "listConnections",
            "Connections and plugin providers; keys as set or not set",
            _answer("ConnectionList", "The connections"),
        )
    },
    "/admin/connections/{name}": {
        "put": _operation(
            "putConnection",
            "Create a connection or change the fields given, in config.toml; store its key",
            {
                **_answer("Connection", "Changed", "400"),
                "201": _json_body(_ref("Connection"), "Created"),
            },
            parameters=[_NAME],
            requestBody={**_json_body(_ref("ConnectionUpdate"), "The change"), "required": True},
        ),
        "delete": _operation(
            "deleteConnection",
            "Remove a connection from config.toml (its stored key stays unless forget_key=true)",
            {
                **_answer("Deleted", "Removed", "400", "404"),
                "409": _json_body(
                    _ref("AdminError"),
                    "Only the project's config.toml sets it; deleting here would change nothing",
                ),
            },
            parameters=[
                _NAME,
                {"name": "forget_key", "in": "query", "schema": {"enum": ["true", "false"]}},
            ],
        ),
    },
    "/admin/connections/{name}/test": {
        "post": _operation(
            "testConnection",
            "The checks `modelport doctor` runs, for one connection",
            _answer("ConnectionReport", "The checks", "404"),
            parameters=[_NAME],
        )
    },
    "/admin/usage": {
        "get": _operation(
            "usage",
            "Tokens, cost and calls per hour or day by model and by connection",
            _answer("Usage", "The usage", "400", "503"),
            parameters=[
                {
                    "name": "days",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 366},
                },
                {"name": "bucket", "in": "query", "schema": {"enum": ["hour", "day"]}},
            ],
        )
    },
    "/admin/usage/recent": {
        "get": _operation(
            "recentCalls",
            "The latest calls, newest first",
            _answer("RecentCalls", "The calls", "400", "503"),
            parameters=[
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                }
            ],
        )
    },
}
