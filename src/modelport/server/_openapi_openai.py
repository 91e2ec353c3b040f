"""The OpenAI request and response schemas of the gateway's OpenAPI document."""

from __future__ import annotations

from typing import Any

from modelport.server._openapi_builders import (
    _MODEL,
    _NULLABLE_BOOLEAN,
    _NULLABLE_OBJECT,
    _NULLABLE_PROBABILITY,
    _NULLABLE_STRING,
    _NULLABLE_TOKEN_BUDGET,
    _NULLABLE_TOKEN_COUNT,
    _THINKING_BLOCKS,
    _nullable,
    _nullable_range,
    _object,
    _ref,
    _string,
)

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


def chat_completion(
    kind: str, choice: dict[str, Any], choice_required: tuple[str, ...], *, usage_required: bool
) -> dict[str, Any]:
    """A ``chat.completion`` or a ``chat.completion.chunk``: one envelope, different choices.

    ``choice`` holds a choice's properties after its ``index`` (the message or
    the delta, ``finish_reason`` …); a chunk's ``usage`` is optional.
    """
    required = ("id", "object", "created", "model", "choices")
    return _object(
        {
            "id": _string(),
            "object": {"const": kind},
            "created": {"type": "integer"},
            "model": _string(),
            "choices": {
                "type": "array",
                "items": _object({"index": {"type": "integer"}, **choice}, choice_required),
            },
            "usage": _ref("ChatUsage"),
        },
        (*required, "usage") if usage_required else required,
    )


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
                thinking_blocks=_nullable(_THINKING_BLOCKS),
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
            "temperature": _nullable_range("number", 0, 2),
            "top_p": _NULLABLE_PROBABILITY,
            "max_tokens": _NULLABLE_TOKEN_COUNT,
            "max_completion_tokens": _NULLABLE_TOKEN_COUNT,
            "stop": _nullable({"anyOf": [_string(), {"type": "array", "items": _string()}]}),
            "reasoning_effort": _NULLABLE_STRING,
            "reasoning": _nullable(
                _object(
                    {"effort": _NULLABLE_STRING, "max_tokens": _NULLABLE_TOKEN_BUDGET},
                    description="OpenRouter's reasoning object",
                )
            ),
            "metadata": _NULLABLE_OBJECT,
            # Checked here, then passed on as sent.
            "seed": _nullable_range("integer", -(2**63), 2**63 - 1),
            "n": _nullable_range("integer", 1, 128),
            "presence_penalty": _nullable_range("number", -2, 2),
            "frequency_penalty": _nullable_range("number", -2, 2),
            "top_logprobs": _nullable_range("integer", 0, 20),
        },
        ("model", "messages"),
        description="Other fields (`user`, `logprobs` …) are passed on to OpenAI upstreams",
    ),
    "ChatCompletion": chat_completion(
        "chat.completion",
        {
            "message": _object(
                {
                    "role": {"const": "assistant"},
                    "content": _NULLABLE_STRING,
                    "refusal": _NULLABLE_STRING,
                    "reasoning_content": _string(),
                    "thinking_blocks": _THINKING_BLOCKS,
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
            "finish_reason": {"enum": ["stop", "length", "tool_calls", "content_filter"]},
            "logprobs": {"type": "null"},
        },
        ("index", "message", "finish_reason"),
        usage_required=True,
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
