"""``POST /v1/embeddings``: OpenAI's embeddings API in front of any model that embeds.

The body is read with :mod:`modelport.wire.openai_embeddings_server`, the call
goes through the router (settings, keys, retries, the usage ledger) and the
vectors go back as floats or, as the official SDKs ask by default, base64.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.errors import ModelportError
from modelport.server._chat import read_json, reject
from modelport.server._errors import json_error, scrub_secrets
from modelport.server._governed import GovernedCall, admit_embedding
from modelport.server._streaming import internal_error
from modelport.wire import openai_embeddings_server as wire

__all__ = ["routes"]


async def embeddings(request: Request) -> Response:
    try:
        payload = await read_json(request)
        embedding, encoding = wire.parse_request(payload)
    except Exception as exc:
        return reject(request, wire, exc)
    state = request.app.state
    address = embedding.model
    request.scope.setdefault("state", {})["model"] = address
    # 128 random bits, as for chat ids; the ledger records the call under it.
    request_id = f"embd-{random.getrandbits(128):032x}"
    options: dict[str, Any] = {"api": "openai", "request_id": request_id}
    governed: GovernedCall | None = None
    try:
        key = request.scope["state"].get("vkey")
        if key is not None:  # budgets and limits apply, as on the chat routes
            governed = await admit_embedding(state, key, embedding)
            options["key_id"] = key.id
        response = await state.router.embed(embedding, **options)
    except Exception as exc:
        if governed is not None:
            governed.done(None, "failed")
        failure = exc if isinstance(exc, ModelportError) else internal_error(exc)
        scrub_secrets(state, failure)
        _finished(state, request, address, failure)
        return json_error(wire, failure)
    except BaseException:
        if governed is not None:
            governed.done(None, "broken")
        raise
    if governed is not None:
        governed.done(response.usage, "ok")
    _finished(state, request, address, None, usage=response.usage)
    # The client sees the name it asked for (an alias stays an alias), as chats do.
    answered = msgspec.structs.replace(response, model=address)
    return Response(
        wire.encode_response(answered, encoding_format=encoding), media_type="application/json"
    )


def _finished(
    state: Any,
    request: Request,
    address: str,
    error: ModelportError | None,
    *,
    usage: Any = None,
) -> None:
    """Report the call to the metrics and the health table, as chats are."""
    if error is None:
        if usage is not None:
            state.metrics.observe_usage(address, usage)
        state.health.record(address, None)
        return
    state.metrics.observe_error(error)
    state.health.record(address, error)
    request.scope.setdefault("state", {})["error"] = type(error).__name__


def routes() -> list[BaseRoute]:
    return [Route("/v1/embeddings", embeddings, methods=["POST"])]
