"""The Anthropic surface: ``POST /v1/messages``, streamed or not.

Parsing and every byte of output go through
:mod:`modelport.wire.anthropic_messages_server`, so an Anthropic SDK sees
``message_start``, ``content_block_*``, ``message_delta`` and ``message_stop``
whichever provider the model lives on. The handler is the shared one
(:mod:`modelport.server._chat`); this module says what is Anthropic's.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.server._chat import ChatSurface, chat_endpoint
from modelport.types import ChatRequest
from modelport.wire import anthropic_messages_server as wire

__all__ = ["ANTHROPIC_CHAT", "KEEPALIVE", "routes"]

#: Anthropic's own keep-alive: a ``ping`` event, which its SDKs skip.
KEEPALIVE = b'event: ping\ndata: {"type": "ping"}\n\n'


def _stream_encoder(
    chat: ChatRequest, message_id: str, payload: dict[str, Any]
) -> wire.StreamEncoder:
    return wire.StreamEncoder(model=chat.model, id=message_id)


ANTHROPIC_CHAT = ChatSurface(
    api="anthropic",
    wire=wire,
    id_template="msg_%024x",  # 96 bits, as uuid4().hex[:24]
    id_bits=96,
    stream_encoder=_stream_encoder,
    keepalive=KEEPALIVE,
)


async def _reachable(request: Request) -> Response:
    """``HEAD /``: Claude Code's first request, to see that the server answers."""
    return Response(status_code=200)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/messages", chat_endpoint(ANTHROPIC_CHAT), methods=["POST"], name="messages"),
        # HEAD only: GET / is the web UI's.
        Route("/", _reachable, methods=["HEAD"], include_in_schema=False),
    ]
