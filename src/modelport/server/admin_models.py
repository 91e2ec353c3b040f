"""``GET /admin/models``: every model of every connection and plugin, grouped by connection.

``GET /v1/models`` answers in the OpenAI (or Anthropic) shape, which has no
room for what a person picking a model wants to see; this route gives each
model's context window, output limit, prices and capabilities, grouped by
the connection (or plugin provider) that serves it, with the error of a
connection that could not list its models in place of its models.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport._redact import public_message
from modelport.errors import ModelportError

__all__ = ["routes"]


def _compat(router: Any, name: str) -> str | None:
    try:
        return str(router.settings_for(name).compat)
    except ModelportError:
        return None


def _fields(value: msgspec.Struct) -> dict[str, Any]:
    # Every field, defaults included (the values omit defaults when encoded).
    return {name: getattr(value, name) for name in value.__struct_fields__}


def _model(info: Any) -> dict[str, Any]:
    return {
        "address": info.address,
        "id": info.id,
        "name": info.name,
        "context_window": info.context_window,
        "max_output_tokens": info.max_output_tokens,
        "prices": _fields(info.prices),
        "capabilities": _fields(info.capabilities),
    }


async def list_models(request: Request) -> Response:
    """``GET /admin/models``."""
    from modelport.config import default_model, resolve_address

    state = request.app.state
    router = state.router
    host = getattr(state, "plugin_host", None)
    providers = host.providers if host is not None else {}
    groups = []
    for entry in await router.list_models_report():
        provider = providers.get(entry.connection)
        groups.append(
            {
                "connection": entry.connection,
                "compat": _compat(router, entry.connection),
                "plugin": provider.registration.plugin if provider is not None else None,
                "error": None
                if entry.error is None
                else {"class": type(entry.error).__name__, "message": public_message(entry.error)},
                "models": [_model(info) for info in entry.models],
            }
        )
    default = default_model(router.config)
    if default:
        try:
            default = resolve_address(default, router.config)  # an alias names an address
        except ModelportError:
            pass
    body = {"default_model": default, "connections": groups}
    return Response(msgspec.json.encode(body), media_type="application/json")


def routes() -> list[BaseRoute]:
    return [Route("/admin/models", list_models, methods=["GET"])]
