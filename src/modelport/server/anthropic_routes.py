"""The Anthropic surface: ``POST /v1/messages``, streamed or not.

Parsing and every byte of output go through
:mod:`modelport.wire.anthropic_messages_server`, so an Anthropic SDK sees
``message_start``, ``content_block_*``, ``message_delta`` and ``message_stop``
whichever provider the model lives on.
"""

from __future__ import annotations

import random
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.server._chat import answer_chat, read_json, reject
from modelport.wire import anthropic_messages_server as wire

__all__ = ["KEEPALIVE", "routes"]

#: Anthropic's own keep-alive: a ``ping`` event, which its SDKs skip.
KEEPALIVE = b'event: ping\ndata: {"type": "ping"}\n\n'


async def messages(request: Request) -> Response:
    started = time.perf_counter()
    try:
        payload = await read_json(request)
        chat = wire.parse_request(payload)
    except Exception as exc:
        return reject(request, wire, exc)
    # The id the client sees, streamed or not, is the one the ledger records.
    # 96 random bits, as uuid4().hex[:24] but without its os.urandom call (~3 µs).
    message_id = f"msg_{random.getrandbits(96):024x}"
    encoder = None
    if payload.get("stream") is True:
        encoder = wire.StreamEncoder(model=chat.model, id=message_id)
    return await answer_chat(
        request,
        chat,
        wire=wire,
        encoder=encoder,
        keepalive=KEEPALIVE,
        started=started,
        api="anthropic",
        request_id=message_id,
    )


def routes() -> list[BaseRoute]:
    return [Route("/v1/messages", messages, methods=["POST"])]
