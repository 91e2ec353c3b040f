"""The small builders and shared pieces the OpenAPI schemas are made of."""

from __future__ import annotations

from typing import Any

from modelport.wire._limits import MAX_MODEL_NAME, MAX_TOKEN_COUNT

_JSON = "application/json"
_SSE = "text/event-stream"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


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


def _nullable_range(kind: str, minimum: float, maximum: float) -> dict[str, Any]:
    """A number in ``[minimum, maximum]``, or ``null``: a value outside is answered with 400."""
    return {"type": [kind, "null"], "minimum": minimum, "maximum": maximum}


#: The gateway's ``thinking_blocks`` extension (LiteLLM's shape): signed reasoning an
#: Anthropic model wants back, verbatim, at the start of the turn that called a tool.
_THINKING_BLOCKS = {
    "type": "array",
    "description": "Signed thinking to hand back on the next request (an extension; LiteLLM's "
    "shape). In a stream, each block comes whole as it closes, with its `index`.",
    "items": {
        "oneOf": [
            _object(
                {
                    "type": {"const": "thinking"},
                    "thinking": _string(),
                    "signature": _nullable(_string()),
                    "index": {"type": "integer"},
                },
                ("type",),
            ),
            _object(
                {
                    "type": {"const": "redacted_thinking"},
                    "data": _string(),
                    "index": {"type": "integer"},
                },
                ("type", "data"),
            ),
        ]
    },
}
#: A token count: at least 1, at most what a signed 32-bit integer holds.
_TOKEN_COUNT = {"type": "integer", "minimum": 1, "maximum": MAX_TOKEN_COUNT}
_NULLABLE_TOKEN_COUNT = _nullable_range("integer", 1, MAX_TOKEN_COUNT)
_NULLABLE_TOKEN_BUDGET = _nullable_range("integer", 0, MAX_TOKEN_COUNT)
_NULLABLE_PROBABILITY = _nullable_range("number", 0, 1)
_MODEL = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_MODEL_NAME,
    "description": "A model address, `connection/model` (or an alias); an address no "
    "connection serves is answered with 404",
}
