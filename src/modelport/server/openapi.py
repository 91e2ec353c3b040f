"""The OpenAPI 3.1 document for the routes this gateway serves, at ``/openapi.json``.

The schemas describe what the gateway accepts and answers, kept to the
fields it reads (the full vendor APIs are far larger, and requests may carry
more: unknown fields are allowed). Tools such as Schemathesis use it to fuzz
the gateway; the document is built once and served as bytes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["openapi_document", "openapi_endpoint"]

_JSON = "application/json"
_SSE = "text/event-stream"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


_OPENAI_ERRORS = {
    status: _json_body(_ref("OpenAIError"), description)
    for status, description in {
        "400": "Invalid request, or the prompt is longer than the model's context window",
        "401": "Missing or wrong gateway key, or the upstream refused its key",
        "404": "Unknown model or connection",
        "429": "The upstream is rate-limiting (see `retry-after`)",
        "500": "Internal error",
        "502": "The upstream failed or answered with something unreadable",
    }.items()
}
_ANTHROPIC_ERRORS = {
    status: _json_body(_ref("AnthropicError"), response["description"])
    for status, response in _OPENAI_ERRORS.items()
}

_SCHEMAS: dict[str, Any] = {
    "OpenAIError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "code": {"type": ["string", "null"]},
                    "param": {"type": ["string", "null"]},
                },
            }
        },
    },
    "AnthropicError": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "ChatMessage": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
            "content": {"oneOf": [{"type": "string"}, {"type": "array"}, {"type": "null"}]},
            "tool_calls": {"type": "array"},
            "tool_call_id": {"type": "string"},
            "name": {"type": "string"},
        },
    },
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "description": "A model address, `connection/model`"},
            "messages": {"type": "array", "items": _ref("ChatMessage")},
            "stream": {"type": "boolean"},
            "stream_options": {
                "type": "object",
                "properties": {"include_usage": {"type": "boolean"}},
            },
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
            "response_format": {"type": "object"},
            "temperature": {"type": "number"},
            "top_p": {"type": "number"},
            "max_tokens": {"type": "integer"},
            "max_completion_tokens": {"type": "integer"},
            "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "reasoning_effort": {"type": "string"},
        },
    },
    "ChatCompletion": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object"}},
            "usage": {"type": "object"},
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"const": "model"},
                        "owned_by": {"type": "string"},
                    },
                },
            },
        },
    },
    "MessagesRequest": {
        "type": "object",
        "required": ["model", "messages", "max_tokens"],
        "properties": {
            "model": {"type": "string", "description": "A model address, `connection/model`"},
            "max_tokens": {"type": "integer", "minimum": 1},
            "messages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"enum": ["user", "assistant"]},
                        "content": {"oneOf": [{"type": "string"}, {"type": "array"}]},
                    },
                },
            },
            "system": {"oneOf": [{"type": "string"}, {"type": "array"}]},
            "stream": {"type": "boolean"},
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {"type": "object"},
            "thinking": {"type": "object"},
            "stop_sequences": {"type": "array", "items": {"type": "string"}},
            "temperature": {"type": "number"},
            "top_p": {"type": "number"},
            "metadata": {"type": "object"},
        },
    },
    "Message": {
        "type": "object",
        "required": ["id", "type", "role", "content", "model"],
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "content": {"type": "array", "items": {"type": "object"}},
            "model": {"type": "string"},
            "stop_reason": {"type": ["string", "null"]},
            "usage": {"type": "object"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "connections", "plugins"],
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "uptime_s": {"type": "number"},
            "connections": {"type": "array", "items": {"type": "object"}},
            "plugins": {"type": "array", "items": {"type": "object"}},
        },
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    """The document as a dict (built once)."""
    chat_ok = {
        "description": "A completion, or (with `stream: true`) chunks ending in `data: [DONE]`",
        "content": {
            _JSON: {"schema": _ref("ChatCompletion")},
            _SSE: {"schema": {"type": "string"}},
        },
    }
    messages_ok = {
        "description": "A message, or (with `stream: true`) events ending in `message_stop`",
        "content": {_JSON: {"schema": _ref("Message")}, _SSE: {"schema": {"type": "string"}}},
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
                    "requestBody": _json_body(_ref("ChatCompletionRequest"), "An OpenAI chat"),
                    "responses": {"200": chat_ok, **_OPENAI_ERRORS},
                }
            },
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "responses": {
                        "200": _json_body(_ref("ModelList"), "Every model, as connection/model")
                    },
                }
            },
            "/v1/messages": {
                "post": {
                    "operationId": "createMessage",
                    "requestBody": _json_body(_ref("MessagesRequest"), "An Anthropic message"),
                    "responses": {"200": messages_ok, **_ANTHROPIC_ERRORS},
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "responses": {"200": _json_body(_ref("Health"), "The gateway is up")},
                }
            },
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
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }


@cache
def _rendered() -> bytes:
    return msgspec.json.encode(openapi_document())


async def openapi_endpoint(request: Request) -> Response:
    """``GET /openapi.json``."""
    return Response(_rendered(), media_type="application/json")
