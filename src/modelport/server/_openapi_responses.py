"""The Responses API schemas of the gateway's OpenAPI document (``POST /v1/responses``).

The request is what ``wire/_responses_server_request.py`` reads, no looser and
no stricter (``tests/server/test_schemathesis.py`` fuzzes both ways); the
answers are what ``wire/openai_responses_server.py`` writes.
"""

from __future__ import annotations

from typing import Any

from modelport.server._openapi_builders import (
    _JSON,
    _MODEL,
    _NULLABLE_BOOLEAN,
    _NULLABLE_OBJECT,
    _NULLABLE_PROBABILITY,
    _NULLABLE_STRING,
    _NULLABLE_TOKEN_COUNT,
    _nullable,
    _nullable_range,
    _object,
    _ref,
    _string,
)
from modelport.wire._responses_server_request import ITEM_KINDS

__all__ = ["_RESPONSES_SCHEMAS"]

# --- what the route reads ----------------------------------------------------------------

_PART = {
    "oneOf": [
        _object(
            {
                "type": {"enum": ["input_text", "output_text", "text", "summary_text"]},
                "text": _NULLABLE_STRING,
            },
            ("type",),
        ),
        _object({"type": {"const": "refusal"}, "refusal": _NULLABLE_STRING}, ("type",)),
        _object({"type": {"const": "input_image"}, "image_url": _string(1)}, ("type", "image_url")),
    ]
}
_CONTENT = {"anyOf": [_string(), {"type": "array", "items": _PART}]}
_SUMMARY_PART = _object(
    {
        "type": _string(),
        "text": _NULLABLE_STRING,
        "refusal": _NULLABLE_STRING,
        "image_url": _NULLABLE_STRING,
    },
    ("type",),
)


def _call(kind: str) -> dict[str, Any]:
    return _object(
        {
            "type": {"const": kind},
            "call_id": _string(),
            "name": _string(),
            "arguments": _NULLABLE_STRING,
            "input": _NULLABLE_STRING,
            "namespace": _NULLABLE_STRING,
        },
        ("type", "call_id", "name"),
    )


_ITEM = {
    "oneOf": [
        _object(
            {
                "type": {"const": "message"},
                "role": {"enum": ["user", "assistant", "system", "developer"]},
                "content": _CONTENT,
            },
            ("role", "content"),
            description="A message; `type` may be left out",
        ),
        _call("function_call"),
        _call("custom_tool_call"),
        _object(
            {
                "type": {"enum": ["function_call_output", "custom_tool_call_output"]},
                "call_id": _string(),
                "output": {
                    "anyOf": [_string(), {"type": "array", "items": _PART}, {"type": "null"}]
                },
            },
            ("type", "call_id"),
        ),
        _object(
            {
                "type": {"const": "reasoning"},
                "summary": _nullable({"type": "array", "items": _SUMMARY_PART}),
                "content": _nullable({"type": "array", "items": _SUMMARY_PART}),
                "encrypted_content": _NULLABLE_STRING,
            },
            ("type",),
        ),
        _object(
            {"type": {"type": "string", "minLength": 1, "not": {"enum": sorted(ITEM_KINDS)}}},
            ("type",),
            description="The record of a hosted tool's call (`web_search_call` …): left out",
        ),
    ]
}
_FUNCTION = _object(
    {
        "type": {"const": "function"},
        "name": _string(1),
        "description": _NULLABLE_STRING,
        "parameters": _nullable({"type": "object", "description": "A JSON Schema object"}),
        "strict": _NULLABLE_BOOLEAN,
    },
    ("type", "name"),
)
_CUSTOM = _object(
    {"type": {"const": "custom"}, "name": _string(1), "description": _NULLABLE_STRING},
    ("type", "name"),
)
_TOOL = {
    "oneOf": [
        _FUNCTION,
        _CUSTOM,
        _object(
            {
                "type": {"const": "namespace"},
                "name": _string(1),
                "description": _NULLABLE_STRING,
                "tools": {"type": "array", "items": {"oneOf": [_FUNCTION, _CUSTOM]}},
            },
            ("type", "name", "tools"),
        ),
        _object(
            {
                "type": {
                    "type": "string",
                    "minLength": 1,
                    "not": {"enum": ["function", "custom", "namespace"]},
                }
            },
            ("type",),
            description="A hosted tool (`web_search` …): passed on to a Responses upstream only",
        ),
    ]
}

_REQUEST = _object(
    {
        "model": _MODEL,
        "input": {
            "anyOf": [_string(1), {"type": "array", "minItems": 1, "items": _ITEM}],
            "description": "A text, or input items",
        },
        "instructions": _NULLABLE_STRING,
        "tools": _nullable({"type": "array", "items": _TOOL}),
        "tool_choice": _nullable(
            {"anyOf": [{"enum": ["auto", "none", "required"]}, {"type": "object"}]}
        ),
        "temperature": _nullable_range("number", 0, 2),
        "top_p": _NULLABLE_PROBABILITY,
        "max_output_tokens": _NULLABLE_TOKEN_COUNT,
        "metadata": _NULLABLE_OBJECT,
        "reasoning": _NULLABLE_OBJECT,
        "text": _NULLABLE_OBJECT,
        "parallel_tool_calls": _NULLABLE_BOOLEAN,
        "stream": _NULLABLE_BOOLEAN,
        "store": _NULLABLE_BOOLEAN,
        "include": _nullable({"type": "array", "items": _string()}),
    },
    ("model", "input"),
    description="`previous_response_id` continues a kept response (then `input` may be "
    "left out); other fields (`prompt_cache_key`, `client_metadata` …) are passed on to "
    "Responses API upstreams",
)

# --- what the route answers ---------------------------------------------------------------

_USAGE = _object(
    {
        "input_tokens": {"type": "integer", "minimum": 0},
        "input_tokens_details": _object(
            {
                "cached_tokens": {"type": "integer", "minimum": 0},
                "cache_write_tokens": {"type": "integer", "minimum": 0},
            },
            ("cached_tokens", "cache_write_tokens"),
        ),
        "output_tokens": {"type": "integer", "minimum": 0},
        "output_tokens_details": _object(
            {"reasoning_tokens": {"type": "integer", "minimum": 0}}, ("reasoning_tokens",)
        ),
        "total_tokens": {"type": "integer", "minimum": 0},
    },
    ("input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details"),
)
_OUTPUT_ITEM = _object(
    {
        "id": _string(),
        "type": {"enum": ["message", "reasoning", "function_call", "custom_tool_call"]},
    },
    ("id", "type"),
)
_RESPONSE = _object(
    {
        "id": _string(),
        "object": {"const": "response"},
        "created_at": {"type": "integer"},
        "status": {"enum": ["in_progress", "completed", "incomplete", "failed"]},
        "model": _string(),
        "output": {"type": "array", "items": _OUTPUT_ITEM},
        "usage": _nullable(_USAGE),
        "error": _NULLABLE_OBJECT,
        "incomplete_details": _NULLABLE_OBJECT,
    },
    ("id", "object", "created_at", "status", "model", "output"),
)
_EVENT_DATA = _object(
    {"type": _string(1), "sequence_number": {"type": "integer", "minimum": 0}},
    ("type", "sequence_number"),
)

_RESPONSES_SCHEMAS: dict[str, Any] = {
    "ResponsesRequest": _REQUEST,
    "Response": _RESPONSE,
    "ResponseEvent": _object(
        {
            "event": _string(1),
            "data": {"type": "string", "contentMediaType": _JSON, "contentSchema": _EVENT_DATA},
        },
        ("event", "data"),
        description="One server-sent event (`response.created` … `response.completed`, or "
        "`error` then `response.failed`); its `data` repeats the event name as `type`",
    ),
}


def responses_path(errors: dict[str, Any]) -> dict[str, Any]:
    """The ``/v1/responses`` path item."""
    return {
        "post": {
            "operationId": "createResponse",
            "requestBody": {
                "description": "An OpenAI Responses API request",
                "content": {_JSON: {"schema": _ref("ResponsesRequest")}},
                "required": True,
            },
            "responses": {
                "200": {
                    "description": "A response, or (with `stream: true`) its events",
                    "content": {
                        _JSON: {"schema": _ref("Response")},
                        "text/event-stream": {"schema": _ref("ResponseEvent")},
                    },
                },
                **errors,
            },
        }
    }
