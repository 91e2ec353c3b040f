"""The OpenAI surface: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Handlers parse with :mod:`modelport.wire.openai_chat_server`, hand the
canonical request to the router and encode what comes back with the same
module: no OpenAI JSON is written here by hand, so a model behind any
provider answers exactly as the OpenAI SDK expects.
"""

from __future__ import annotations

import random
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.server._chat import answer_chat, read_json, reject
from modelport.types import ModelInfo
from modelport.wire import anthropic_messages_server as anthropic_wire
from modelport.wire import openai_chat_server as wire

__all__ = ["KEEPALIVE", "routes"]

#: An SSE comment: every SSE client skips it, and it keeps proxies from timing out.
KEEPALIVE = b": keep-alive\n\n"


def _include_usage(payload: dict[str, Any]) -> bool:
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def chat_completions(request: Request) -> Response:
    started = time.perf_counter()
    try:
        payload = await read_json(request)
        chat = wire.parse_request(payload)
    except Exception as exc:
        return reject(request, wire, exc)
    # The id the client sees, streamed or not, is the one the ledger records.
    # 128 random bits, as uuid4's hex but without its os.urandom call (~3 µs).
    completion_id = f"chatcmpl-{random.getrandbits(128):032x}"
    encoder = None
    if payload.get("stream") is True:
        encoder = wire.StreamEncoder(
            model=chat.model, id=completion_id, include_usage=_include_usage(payload)
        )
    return await answer_chat(
        request,
        chat,
        wire=wire,
        encoder=encoder,
        keepalive=KEEPALIVE,
        started=started,
        api="openai",
        request_id=completion_id,
    )


async def list_models(request: Request) -> Response:
    """``GET /v1/models``: every connection's and plugin's models as ``connection/model``.

    The Anthropic SDK lists models at the same path; it announces itself with
    ``anthropic-version``, and then gets the Anthropic page shape.
    """
    api = anthropic_wire if "anthropic-version" in request.headers else wire
    try:
        models: list[ModelInfo] = await request.app.state.router.list_models()
    except Exception as exc:
        return reject(request, api, exc)
    return Response(api.encode_models(models), media_type="application/json")


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
    ]
