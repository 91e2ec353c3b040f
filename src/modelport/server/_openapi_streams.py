"""The streamed events of the gateway's OpenAPI document, one server-sent event at a time."""

from __future__ import annotations

from typing import Any

from modelport.server._openapi_builders import (
    _JSON,
    _THINKING_BLOCKS,
    _object,
    _ref,
    _string,
)
from modelport.server._openapi_openai import chat_completion


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
    "ChatCompletionChunk": chat_completion(
        "chat.completion.chunk",
        {
            "delta": _object(
                {
                    "role": {"const": "assistant"},
                    "content": _string(),
                    "reasoning_content": _string(),
                    "thinking_blocks": _THINKING_BLOCKS,
                    "tool_calls": {"type": "array", "items": _CHUNK_TOOL_CALL},
                }
            ),
            "finish_reason": {"enum": ["stop", "length", "tool_calls", "content_filter", None]},
        },
        ("index", "delta", "finish_reason"),
        usage_required=False,
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
