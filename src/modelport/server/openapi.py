"""The OpenAPI 3.1 document for the routes this gateway serves, at ``/openapi.json``.

The schemas describe exactly what the gateway accepts and answers, kept to
the fields it reads (the full vendor APIs are far larger, and requests may
carry more: unknown fields are allowed and passed on). Exactly means both
ways: a request the document allows is accepted, one it forbids is refused
with a 4xx, and ``tests/server/test_schemathesis.py`` fuzzes the gateway in
both directions to keep it so. A change to a parser in
``modelport.wire.*_server`` needs its twin here. Streams are described one
server-sent event at a time, their JSON ``data`` through ``contentSchema``.
The document is built once and served as bytes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["openapi_document", "openapi_endpoint"]

from modelport.server._openapi_admin import ADMIN_PATHS, ADMIN_SCHEMAS
from modelport.server._openapi_anthropic import _ANTHROPIC_SCHEMAS
from modelport.server._openapi_builders import (
    _JSON,
    _NULLABLE_NUMBER,
    _NULLABLE_STRING,
    _SSE,
    _json_body,
    _nullable,
    _object,
    _ref,
    _string,
)
from modelport.server._openapi_embeddings import _EMBEDDING_SCHEMAS
from modelport.server._openapi_governance import GOVERNANCE_PATHS, GOVERNANCE_SCHEMAS
from modelport.server._openapi_openai import _OPENAI_SCHEMAS
from modelport.server._openapi_responses import _RESPONSES_SCHEMAS, responses_path
from modelport.server._openapi_streams import _STREAM_SCHEMAS

_ERRORS = {
    "400": "Invalid request, or the prompt is longer than the model's context window",
    "401": "Missing or wrong gateway key or virtual key, or the upstream refused its key",
    "403": "A request from a web page or an unknown host name, a model the virtual key may "
    "not use, or the upstream refused the key's permissions",
    "404": "Unknown model or connection",
    "413": "The body is larger than the gateway or the upstream accepts",
    "415": "The body is not `application/json`",
    "429": "A rate limit or budget of the gateway's virtual key (`insufficient_quota`), or "
    "the upstream's (see `retry-after`)",
    "500": "Internal error",
    "502": "The upstream failed or answered with something unreadable",
}
_OPENAI_ERRORS = {
    **{status: _json_body(_ref("OpenAIError"), text) for status, text in _ERRORS.items()},
    "4XX": _json_body(_ref("OpenAIError"), "The upstream's own 4xx, passed on"),
    "5XX": _json_body(_ref("OpenAIError"), "The upstream's own 5xx, passed on"),
}
_ANTHROPIC_ERRORS = {
    status: _json_body(_ref("AnthropicError"), text)
    for status, text in {
        **_ERRORS,
        "504": "The upstream timed out",
        "529": "The upstream is overloaded",
    }.items()
}


_SCHEMAS: dict[str, Any] = {
    "OpenAIError": _object(
        {
            "error": _object(
                {
                    "message": _string(),
                    "type": _string(),
                    "code": _NULLABLE_STRING,
                    "param": _NULLABLE_STRING,
                },
                ("message", "type"),
            )
        },
        ("error",),
    ),
    "AnthropicError": _object(
        {
            "type": {"const": "error"},
            "error": _object({"type": _string(), "message": _string()}, ("type", "message")),
        },
        ("type", "error"),
    ),
    **_OPENAI_SCHEMAS,
    **_EMBEDDING_SCHEMAS,
    **_RESPONSES_SCHEMAS,
    **_ANTHROPIC_SCHEMAS,
    **_STREAM_SCHEMAS,
    **GOVERNANCE_SCHEMAS,
    **ADMIN_SCHEMAS,
    "ModelList": _object(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": _object(
                    {
                        "id": _string(),
                        "object": {"const": "model"},
                        "created": {"type": "integer"},
                        "owned_by": _string(),
                    },
                    ("id", "object", "created", "owned_by"),
                ),
            },
        },
        ("object", "data"),
        description="The OpenAI shape",
    ),
    "ModelPage": _object(
        {
            "data": {
                "type": "array",
                "items": _object(
                    {
                        "type": {"const": "model"},
                        "id": _string(),
                        "display_name": _string(),
                        "created_at": {"type": "string", "format": "date-time"},
                        "lifecycle": {"enum": ["active", "deprecated", "retired"]},
                        "max_input_tokens": {"type": "integer"},
                        "max_tokens": {"type": "integer"},
                    },
                    ("type", "id", "display_name", "created_at", "lifecycle"),
                ),
            },
            "has_more": {"type": "boolean"},
            "first_id": _NULLABLE_STRING,
            "last_id": _NULLABLE_STRING,
        },
        ("data", "has_more", "first_id", "last_id"),
        description="The Anthropic shape, for a request with `anthropic-version`",
    ),
    "Health": _object(
        {
            "status": {"enum": ["ok", "degraded"]},
            "uptime_s": {"type": "number"},
            "connections": {
                "type": "array",
                "items": _object(
                    {
                        "name": _string(),
                        "state": {"enum": ["idle", "ok", "error"]},
                        "calls": {"type": "integer", "minimum": 0},
                        "failures": {"type": "integer", "minimum": 0},
                        "last_error": _nullable(
                            _object(
                                {"class": _string(), "message": _string()}, ("class", "message")
                            )
                        ),
                        "last_error_at": _NULLABLE_NUMBER,
                        "last_success_at": _NULLABLE_NUMBER,
                        "upstream": _NULLABLE_STRING,
                    },
                    ("name", "state", "calls", "failures", "upstream"),
                ),
            },
            "plugins": {"type": "array", "items": {"type": "object"}},
            "config": _ref("ConfigState"),
        },
        ("status", "uptime_s", "connections", "plugins"),
    ),
    "ConfigState": _object(
        {
            "state": {"enum": ["ok", "stale", "static"]},
            "error": _NULLABLE_STRING,
            "failed_at": _NULLABLE_NUMBER,
            "loaded_at": {"type": "number"},
            "reloads": {"type": "integer", "minimum": 0},
        },
        ("state", "error", "failed_at", "loaded_at", "reloads"),
        description="`stale`: the last reload failed and the last good configuration runs "
        "(`error` says why); `static`: handed in, not read from files",
    ),
    "Reload": _object(
        {
            "reloaded": {"type": "boolean"},
            "restart_needed": {"type": "array", "items": _string()},
            "config": _ref("ConfigState"),
        },
        ("reloaded", "restart_needed", "config"),
    ),
}


@cache
def openapi_document() -> dict[str, Any]:
    """The document as a dict (built once)."""
    chat_ok = {
        "description": "A completion, or (with `stream: true`) chunks ending in `data: [DONE]`",
        "content": {
            _JSON: {"schema": _ref("ChatCompletion")},
            _SSE: {"schema": _ref("ChatCompletionEvent")},
        },
    }
    messages_ok = {
        "description": "A message, or (with `stream: true`) events ending in `message_stop`",
        "content": {_JSON: {"schema": _ref("Message")}, _SSE: {"schema": _ref("MessageEvent")}},
    }
    security = [{"bearer": []}, {"apiKey": []}, {}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelport gateway",
            "version": "0.1.0",
            "description": "OpenAI- and Anthropic-compatible gateway in front of every "
            "configured model. Models are addressed as `connection/model`.",
        },
        "security": security,
        "paths": {
            "/v1/chat/completions": {
                "post": {
                    "operationId": "createChatCompletion",
                    "requestBody": {
                        **_json_body(_ref("ChatCompletionRequest"), "An OpenAI chat"),
                        "required": True,
                    },
                    "responses": {"200": chat_ok, **_OPENAI_ERRORS},
                }
            },
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "parameters": [
                        {
                            "name": "anthropic-version",
                            "in": "header",
                            "required": False,
                            "description": "Sent by Anthropic clients: the answer is then "
                            "an Anthropic model page",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json_body(
                            {"anyOf": [_ref("ModelList"), _ref("ModelPage")]},
                            "Every model, as `connection/model`",
                        ),
                        "5XX": _json_body(
                            {"anyOf": [_ref("OpenAIError"), _ref("AnthropicError")]},
                            "No connection could list its models",
                        ),
                    },
                }
            },
            "/v1/messages": {
                "post": {
                    "operationId": "createMessage",
                    "requestBody": {
                        **_json_body(_ref("MessagesRequest"), "An Anthropic message"),
                        "required": True,
                    },
                    "responses": {"200": messages_ok, **_ANTHROPIC_ERRORS},
                }
            },
            "/v1/responses": responses_path(_OPENAI_ERRORS),
            "/v1/embeddings": {
                "post": {
                    "operationId": "createEmbedding",
                    "requestBody": {
                        **_json_body(_ref("EmbeddingRequest"), "Texts to embed"),
                        "required": True,
                    },
                    "responses": {
                        "200": _json_body(_ref("EmbeddingList"), "One vector per input"),
                        **_OPENAI_ERRORS,
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "responses": {"200": _json_body(_ref("Health"), "The gateway is up")},
                }
            },
            "/admin/reload": {
                "post": {
                    "operationId": "reloadConfig",
                    "description": "Read config.toml and stored keys again and route new "
                    "requests by them; requests already running finish as they started. "
                    "Takes the admin key (or, on loopback without one, the gateway key).",
                    "responses": {
                        "200": _json_body(_ref("Reload"), "Reloaded"),
                        "401": _json_body(_ref("OpenAIError"), "Missing or wrong admin key"),
                        "403": _json_body(
                            _ref("OpenAIError"),
                            "Admin routes are closed beyond loopback without an admin key",
                        ),
                        "409": _json_body(
                            {"allOf": [_ref("Reload"), _ref("OpenAIError")]},
                            "The configuration does not load; the last good one stays",
                        ),
                    },
                }
            },
            **GOVERNANCE_PATHS,
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            **ADMIN_PATHS,
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "modelport_ui",
                    "description": "A web UI session from `POST /ui/login`",
                },
            },
        },
    }


@cache
def _rendered() -> bytes:
    return msgspec.json.encode(openapi_document())


async def openapi_endpoint(request: Request) -> Response:
    """``GET /openapi.json``."""
    return Response(_rendered(), media_type="application/json")
