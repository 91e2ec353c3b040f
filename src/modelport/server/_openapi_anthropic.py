"""The Anthropic request and response schemas of the gateway's OpenAPI document."""

from __future__ import annotations

from typing import Any

from modelport.server._openapi_builders import (
    _MODEL,
    _NULLABLE_BOOLEAN,
    _NULLABLE_OBJECT,
    _NULLABLE_PROBABILITY,
    _NULLABLE_STRING,
    _TOKEN_COUNT,
    _nullable,
    _nullable_range,
    _object,
    _ref,
    _string,
)
from modelport.wire._limits import MAX_TOKEN_COUNT

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
            "max_tokens": _TOKEN_COUNT,
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "anyOf": [
                        _object(
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
                        # The mid-conversation-system beta: a system message in place.
                        _object(
                            {
                                "role": {"const": "system"},
                                "content": {
                                    "anyOf": [_string(), {"type": "array", "items": _TEXT_BLOCK}]
                                },
                            },
                            ("role", "content"),
                        ),
                    ]
                },
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
            "temperature": _NULLABLE_PROBABILITY,  # Anthropic's range is 0 to 1
            "top_p": _NULLABLE_PROBABILITY,
            "metadata": _NULLABLE_OBJECT,
            "top_k": _nullable_range("integer", 0, MAX_TOKEN_COUNT),  # checked, passed on
        },
        ("model", "max_tokens", "messages"),
        description="Other fields (`service_tier`, `container` …) are passed on to Anthropic "
        "upstreams",
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
