"""The OpenAI surface: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Handlers parse with :mod:`modelport.wire.openai_chat_server`, hand the
canonical request to the router and encode what comes back with the same
module: no OpenAI JSON is written here by hand, so a model behind any
provider answers exactly as the OpenAI SDK expects. The chat handler is the
shared one (:mod:`modelport.server._chat`); this module says what is OpenAI's.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.server._chat import ChatSurface, chat_endpoint, reject
from modelport.types import ChatRequest, ModelInfo
from modelport.wire import anthropic_messages_server as anthropic_wire
from modelport.wire import openai_chat_server as wire

__all__ = ["KEEPALIVE", "OPENAI_CHAT", "routes"]

#: An SSE comment: every SSE client skips it, and it keeps proxies from timing out.
KEEPALIVE = b": keep-alive\n\n"


def _stream_encoder(
    chat: ChatRequest, completion_id: str, payload: dict[str, Any]
) -> wire.StreamEncoder:
    options = payload.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return wire.StreamEncoder(model=chat.model, id=completion_id, include_usage=include_usage)


OPENAI_CHAT = ChatSurface(
    api="openai",
    wire=wire,
    id_template="chatcmpl-%032x",  # 128 bits, as uuid4's hex
    id_bits=128,
    stream_encoder=_stream_encoder,
    keepalive=KEEPALIVE,
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
    key = request.scope.get("state", {}).get("vkey")
    if key is not None and key.models:  # a virtual key sees the models it may use
        models = [m for m in models if m.address in key.models]
    return Response(api.encode_models(models), media_type="application/json")


def routes() -> list[BaseRoute]:
    return [
        Route(
            "/v1/chat/completions",
            chat_endpoint(OPENAI_CHAT),
            methods=["POST"],
            name="chat_completions",
        ),
        Route("/v1/models", list_models, methods=["GET"]),
    ]
