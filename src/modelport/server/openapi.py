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

_JSON = "application/json"
_SSE = "text/event-stream"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


_ERRORS = {
    "400": "Invalid request, or the prompt is longer than the model's context window",
    "401": "Missing or wrong gateway key, or the upstream refused its key",
    "403": "A request from a web page or an unknown host name, or the upstream refused "
    "the key's permissions",
    "404": "Unknown model or connection",
    "413": "The body is larger than the gateway or the upstream accepts",
    "415": "The body is not `application/json`",
    "429": "The upstream is rate-limiting (see `retry-after`)",
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


def _string(min_length: int = 0) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length} if min_length else {"type": "string"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or ``null``: the parsers read an explicit ``null`` as "not given"."""
    kind = schema.get("type")
    if isinstance(kind, str) and set(schema) <= {"type", "items", "properties", "description"}:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _object(
    properties: dict[str, Any], required: tuple[str, ...] = (), **more: Any
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **more}
    if required:
        schema["required"] = list(required)
    return schema


_NULLABLE_STRING = _nullable(_string())
_NULLABLE_INTEGER = {"type": ["integer", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_BOOLEAN = {"type": ["boolean", "null"]}
_NULLABLE_OBJECT = {"type": ["object", "null"]}
_MODEL = {
    "type": "string",
    "description": "A model address, `connection/model` (or an alias); an address no "
    "connection serves is answered with 404",
}

# --- what the OpenAI route reads (wire/_openai_server_shapes.py) ---------------

_OPENAI_CONTENT_PART = {
    "oneOf": [
        _object({"type": {"const": "text"}, "text": _string()}, ("type", "text")),
        _object(
            {
                "type": {"const": "image_url"},
                "image_url": {
                    "anyOf": [
                        _string(),
                        _object({"url": _string(), "detail": _NULLABLE_STRING}, ("url",)),
                    ],
                    "description": "An http(s) URL or a `data:<media type>;base64,` URL",
                },
            },
            ("type", "image_url"),
        ),
        _object({"type": {"const": "refusal"}, "refusal": _string()}, ("type", "refusal")),
    ]
}
_OPENAI_CONTENT = {
    "anyOf": [_string(), {"type": "array", "items": _OPENAI_CONTENT_PART}],
    "description": "Text, or a list of text, image_url and refusal parts",
}
_FUNCTION_CALL = _object(
    {"name": _string(), "arguments": {"anyOf": [_string(), {"type": "object"}]}}, ("name",)
)
_NAMED = {"name": _string(1)}
_FUNCTION_DEFINITION = {
    "name": _nullable(_string()),
    "description": _NULLABLE_STRING,
    "parameters": _nullable({"type": "object", "description": "A JSON Schema object"}),
    "strict": _NULLABLE_BOOLEAN,
}


def _openai_message(role: str, required: tuple[str, ...], **properties: Any) -> dict[str, Any]:
    return _object({"role": {"const": role}, **properties}, ("role", *required))


_OPENAI_SCHEMAS: dict[str, Any] = {
    "ChatMessage": {
        "oneOf": [
            _openai_message("system", ("content",), content=_OPENAI_CONTENT, name=_NULLABLE_STRING),
            _openai_message(
                "developer", ("content",), content=_OPENAI_CONTENT, name=_NULLABLE_STRING
            ),
            _openai_message("user", ("content",), content=_OPENAI_CONTENT, name=_NULLABLE_STRING),
            _openai_message(
                "assistant",
                (),
                content=_nullable(_OPENAI_CONTENT),
                name=_NULLABLE_STRING,
                tool_calls=_nullable(
                    {
                        "type": "array",
                        "items": _object(
                            {
                                "id": _string(),
                                "type": {"const": "function"},
                                "function": _FUNCTION_CALL,
                            },
                            ("id", "function"),
                        ),
                    }
                ),
                function_call=_nullable(_FUNCTION_CALL),
                refusal=_NULLABLE_STRING,
                reasoning_content=_NULLABLE_STRING,
                reasoning=_NULLABLE_STRING,
            ),
            _openai_message(
                "tool", ("content", "tool_call_id"), content=_OPENAI_CONTENT, tool_call_id=_string()
            ),
            _openai_message("function", ("name",), name=_string(), content=_NULLABLE_STRING),
        ]
    },
    "ChatTool": _object(
        {
            "type": {"enum": ["function", None]},
            "function": _nullable(_object(_FUNCTION_DEFINITION)),
            **_FUNCTION_DEFINITION,
        },
        description='`{"type": "function", "function": {"name": ...}}`, or the flat '
        'legacy form `{"name": ...}`',
        anyOf=[
            _object({"function": _object(_NAMED, ("name",))}, ("function",)),
            _object({"function": {"type": "null"}, **_NAMED}, ("name",)),
        ],
    ),
    "ChatToolChoice": {
        "anyOf": [
            {"enum": ["auto", "none", "required"]},
            _object(
                {
                    "type": {"enum": ["function", None]},
                    "function": _nullable(_object({"name": _NULLABLE_STRING})),
                    "name": _NULLABLE_STRING,
                },
                anyOf=[
                    _object({"function": _object(_NAMED, ("name",))}, ("function",)),
                    _object({"function": {"type": "null"}, **_NAMED}, ("name",)),
                ],
            ),
        ],
        "description": "`auto`, `none`, `required`, or one function by name",
    },
    "ChatCompletionRequest": _object(
        {
            "model": _MODEL,
            "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
            "stream": _NULLABLE_BOOLEAN,
            "stream_options": _nullable(
                _object({"include_usage": _NULLABLE_BOOLEAN}, description="With `stream`")
            ),
            "tools": _nullable({"type": "array", "items": _ref("ChatTool")}),
            "tool_choice": _nullable(_ref("ChatToolChoice")),
            "functions": _nullable(
                {"type": "array", "items": _ref("ChatTool"), "deprecated": True}
            ),
            "function_call": _nullable({**_ref("ChatToolChoice"), "deprecated": True}),
            "response_format": _NULLABLE_OBJECT,
            "temperature": _NULLABLE_NUMBER,
            "top_p": _NULLABLE_NUMBER,
            "max_tokens": _NULLABLE_INTEGER,
            "max_completion_tokens": _NULLABLE_INTEGER,
            "stop": _nullable({"anyOf": [_string(), {"type": "array", "items": _string()}]}),
            "reasoning_effort": _NULLABLE_STRING,
            "reasoning": _nullable(
                _object(
                    {"effort": _NULLABLE_STRING, "max_tokens": _NULLABLE_INTEGER},
                    description="OpenRouter's reasoning object",
                )
            ),
            "metadata": _NULLABLE_OBJECT,
        },
        ("model", "messages"),
        description="Other fields (`seed`, `user`, `n` …) are passed on to OpenAI upstreams",
    ),
    "ChatCompletion": _object(
        {
            "id": _string(),
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": _string(),
            "choices": {
                "type": "array",
                "items": _object(
                    {
                        "index": {"type": "integer"},
                        "message": _object(
                            {
                                "role": {"const": "assistant"},
                                "content": _NULLABLE_STRING,
                                "refusal": _NULLABLE_STRING,
                                "reasoning_content": _string(),
                                "tool_calls": {
                                    "type": "array",
                                    "items": _object(
                                        {
                                            "id": _string(),
                                            "type": {"const": "function"},
                                            "function": _object(
                                                {"name": _string(), "arguments": _string()},
                                                ("name", "arguments"),
                                            ),
                                        },
                                        ("id", "type", "function"),
                                    ),
                                },
                            },
                            ("role", "content", "refusal"),
                        ),
                        "finish_reason": {
                            "enum": ["stop", "length", "tool_calls", "content_filter"]
                        },
                        "logprobs": {"type": "null"},
                    },
                    ("index", "message", "finish_reason"),
                ),
            },
            "usage": _ref("ChatUsage"),
        },
        ("id", "object", "created", "model", "choices", "usage"),
    ),
    "ChatUsage": _object(
        {
            "prompt_tokens": {"type": "integer", "minimum": 0},
            "completion_tokens": {"type": "integer", "minimum": 0},
            "total_tokens": {"type": "integer", "minimum": 0},
            "prompt_tokens_details": _object(
                {
                    "cached_tokens": {"type": "integer", "minimum": 0},
                    "cache_write_tokens": {"type": "integer", "minimum": 0},
                }
            ),
            "completion_tokens_details": _object(
                {"reasoning_tokens": {"type": "integer", "minimum": 0}}
            ),
            "cost": {"type": "number"},
        },
        ("prompt_tokens", "completion_tokens", "total_tokens"),
    ),
}

# --- what the Anthropic route reads (wire/anthropic_messages_server.py) --------

_CACHE_CONTROL = {"cache_control": _NULLABLE_OBJECT}


def _block(kind: str, properties: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    return _object({"type": {"const": kind}, **properties, **_CACHE_CONTROL}, ("type", *required))


_TEXT_BLOCK = _block("text", {"text": _string()}, ("text",))
_IMAGE_BLOCK = _block(
    "image",
    {
        "source": {
            "oneOf": [
                _object(
                    {
                        "type": {"const": "base64"},
                        "media_type": _NULLABLE_STRING,
                        "data": _string(),
                    },
                    ("type", "data"),
                ),
                _object({"type": {"const": "url"}, "url": _string()}, ("type", "url")),
            ]
        }
    },
    ("source",),
)
_THINKING_BLOCK = _block(
    "thinking", {"thinking": _string(), "signature": _NULLABLE_STRING}, ("thinking",)
)
_REDACTED_THINKING_BLOCK = _block("redacted_thinking", {"data": _string()}, ("data",))

_ANTHROPIC_SCHEMAS: dict[str, Any] = {
    "ContentBlock": {
        "oneOf": [
            _TEXT_BLOCK,
            _IMAGE_BLOCK,
            _block(
                "tool_use",
                {
                    "id": _string(1),
                    "name": _string(1),
                    "input": _nullable({"type": "object"}),
                },
                ("id", "name"),
            ),
            _block(
                "tool_result",
                {
                    "tool_use_id": _string(1),
                    "content": _nullable(
                        {
                            "anyOf": [
                                _string(),
                                {
                                    "type": "array",
                                    "items": {
                                        "oneOf": [
                                            _TEXT_BLOCK,
                                            _IMAGE_BLOCK,
                                            _THINKING_BLOCK,
                                            _REDACTED_THINKING_BLOCK,
                                        ]
                                    },
                                },
                            ]
                        }
                    ),
                    "is_error": {"type": "boolean"},
                },
                ("tool_use_id",),
            ),
            _THINKING_BLOCK,
            _REDACTED_THINKING_BLOCK,
        ]
    },
    "Tool": {
        "anyOf": [
            _object(
                {
                    "type": {"enum": ["custom", None]},
                    "name": _string(),
                    "description": _string(),
                    "input_schema": {"type": "object", "description": "A JSON Schema object"},
                    "strict": _NULLABLE_BOOLEAN,
                    **_CACHE_CONTROL,
                },
                ("name", "input_schema"),
            ),
            _object(
                {
                    "type": {"type": "string", "not": {"const": "custom"}},
                    "name": _string(),
                    "description": _string(),
                    "input_schema": _NULLABLE_OBJECT,
                    "strict": _NULLABLE_BOOLEAN,
                    **_CACHE_CONTROL,
                },
                ("type", "name"),
                description="A tool Anthropic defines (`web_search_20250305` …): passed on "
                "to Anthropic upstreams only",
            ),
        ]
    },
    "ToolChoice": {
        "anyOf": [
            _object(
                {"type": {"enum": ["auto", "any", "none"]}, "name": _NULLABLE_STRING}, ("type",)
            ),
            _object({"type": {"const": "tool"}, "name": _string(1)}, ("type", "name")),
        ]
    },
    "MessagesRequest": _object(
        {
            "model": _MODEL,
            "max_tokens": {"type": "integer", "minimum": 1},
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": _object(
                    {
                        "role": {"enum": ["user", "assistant"]},
                        "content": {
                            "anyOf": [
                                _string(),
                                {"type": "array", "items": _ref("ContentBlock")},
                            ]
                        },
                    },
                    ("role", "content"),
                ),
            },
            "system": _nullable({"anyOf": [_string(), {"type": "array", "items": _TEXT_BLOCK}]}),
            "stream": {"type": "boolean"},
            "tools": _nullable({"type": "array", "items": _ref("Tool")}),
            "tool_choice": _nullable(_ref("ToolChoice")),
            "thinking": _nullable(
                {
                    "type": "object",
                    "description": '`{"type": "enabled", "budget_tokens": n}` sets a '
                    "thinking budget; any other form is passed on to Anthropic upstreams",
                }
            ),
            "stop_sequences": _nullable({"type": "array", "items": _string()}),
            "temperature": _NULLABLE_NUMBER,
            "top_p": _NULLABLE_NUMBER,
            "metadata": _NULLABLE_OBJECT,
        },
        ("model", "max_tokens", "messages"),
        description="Other fields (`top_k`, `service_tier` …) are passed on to Anthropic upstreams",
    ),
    "Message": _object(
        {
            "id": _string(),
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "content": {
                "type": "array",
                "items": {
                    "oneOf": [
                        _object({"type": {"const": "text"}, "text": _string()}, ("type", "text")),
                        _object(
                            {
                                "type": {"const": "thinking"},
                                "thinking": _string(),
                                "signature": _string(),
                            },
                            ("type", "thinking", "signature"),
                        ),
                        _object(
                            {"type": {"const": "redacted_thinking"}, "data": _string()},
                            ("type", "data"),
                        ),
                        _object(
                            {
                                "type": {"const": "tool_use"},
                                "id": _string(),
                                "name": _string(),
                                "input": {},
                            },
                            ("type", "id", "name", "input"),
                        ),
                    ]
                },
            },
            "model": _string(),
            "stop_reason": {"enum": ["end_turn", "max_tokens", "tool_use", "refusal", None]},
            "stop_sequence": {"type": "null"},
            "usage": _object(
                {
                    "input_tokens": {"type": "integer", "minimum": 0},
                    "output_tokens": {"type": "integer", "minimum": 0},
                    "cache_creation_input_tokens": {"type": "integer", "minimum": 0},
                    "cache_read_input_tokens": {"type": "integer", "minimum": 0},
                },
                ("input_tokens", "output_tokens"),
            ),
        },
        ("id", "type", "role", "content", "model", "stop_reason", "usage"),
    ),
}


def _json_data(schema: dict[str, Any]) -> dict[str, Any]:
    """An SSE ``data`` field that holds JSON matching ``schema``."""
    return {"type": "string", "contentMediaType": _JSON, "contentSchema": schema}


_CHUNK_TOOL_CALL = _object(
    {
        "index": {"type": "integer", "minimum": 0},
        "id": _string(),
        "type": {"const": "function"},
        "function": _object({"name": _string(), "arguments": _string()}),
    },
    ("index", "function"),
)
_STREAM_SCHEMAS: dict[str, Any] = {
    "ChatCompletionChunk": _object(
        {
            "id": _string(),
            "object": {"const": "chat.completion.chunk"},
            "created": {"type": "integer"},
            "model": _string(),
            "choices": {
                "type": "array",
                "items": _object(
                    {
                        "index": {"type": "integer"},
                        "delta": _object(
                            {
                                "role": {"const": "assistant"},
                                "content": _string(),
                                "reasoning_content": _string(),
                                "tool_calls": {"type": "array", "items": _CHUNK_TOOL_CALL},
                            }
                        ),
                        "finish_reason": {
                            "enum": ["stop", "length", "tool_calls", "content_filter", None]
                        },
                    },
                    ("index", "delta", "finish_reason"),
                ),
            },
            "usage": _ref("ChatUsage"),
        },
        ("id", "object", "created", "model", "choices"),
    ),
    "ChatCompletionEvent": _object(
        {
            "data": {
                "anyOf": [
                    {"const": "[DONE]"},
                    _json_data({"anyOf": [_ref("ChatCompletionChunk"), _ref("OpenAIError")]}),
                ]
            }
        },
        ("data",),
        description="One server-sent event: a chunk, an in-band error, or `[DONE]`",
    ),
    "MessageStreamEvent": {
        "oneOf": [
            _object(
                {"type": {"const": "message_start"}, "message": _ref("Message")},
                ("type", "message"),
            ),
            _object(
                {
                    "type": {"const": "content_block_start"},
                    "index": {"type": "integer", "minimum": 0},
                    "content_block": {
                        "$ref": "#/components/schemas/Message/properties/content/items"
                    },
                },
                ("type", "index", "content_block"),
            ),
            _object(
                {
                    "type": {"const": "content_block_delta"},
                    "index": {"type": "integer", "minimum": 0},
                    "delta": {
                        "oneOf": [
                            _object(
                                {"type": {"const": "text_delta"}, "text": _string()},
                                ("type", "text"),
                            ),
                            _object(
                                {"type": {"const": "thinking_delta"}, "thinking": _string()},
                                ("type", "thinking"),
                            ),
                            _object(
                                {"type": {"const": "signature_delta"}, "signature": _string()},
                                ("type", "signature"),
                            ),
                            _object(
                                {"type": {"const": "input_json_delta"}, "partial_json": _string()},
                                ("type", "partial_json"),
                            ),
                        ]
                    },
                },
                ("type", "index", "delta"),
            ),
            _object(
                {
                    "type": {"const": "content_block_stop"},
                    "index": {"type": "integer", "minimum": 0},
                },
                ("type", "index"),
            ),
            _object(
                {
                    "type": {"const": "message_delta"},
                    "delta": _object(
                        {
                            "stop_reason": {
                                "enum": ["end_turn", "max_tokens", "tool_use", "refusal"]
                            },
                            "stop_sequence": {"type": "null"},
                        },
                        ("stop_reason",),
                    ),
                    "usage": {"$ref": "#/components/schemas/Message/properties/usage"},
                },
                ("type", "delta", "usage"),
            ),
            _object({"type": {"const": "message_stop"}}, ("type",)),
            _object({"type": {"const": "ping"}}, ("type",)),
            _ref("AnthropicError"),
        ]
    },
    "MessageEvent": _object(
        {
            "event": {
                "enum": [
                    "message_start",
                    "content_block_start",
                    "content_block_delta",
                    "content_block_stop",
                    "message_delta",
                    "message_stop",
                    "ping",
                    "error",
                ]
            },
            "data": _json_data(_ref("MessageStreamEvent")),
        },
        ("event", "data"),
        description="One server-sent event; its `data` repeats the event name as `type`",
    ),
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
    **_ANTHROPIC_SCHEMAS,
    **_STREAM_SCHEMAS,
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
                    },
                    ("name", "state", "calls", "failures"),
                ),
            },
            "plugins": {"type": "array", "items": {"type": "object"}},
        },
        ("status", "uptime_s", "connections", "plugins"),
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
