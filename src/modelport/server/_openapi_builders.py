"""The small builders and shared pieces the OpenAPI schemas are made of."""

from __future__ import annotations

from typing import Any

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
_MODEL = {
    "type": "string",
    "description": "A model address, `connection/model` (or an alias); an address no "
    "connection serves is answered with 404",
}
