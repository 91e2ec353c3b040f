"""The Responses API surface: ``POST /v1/responses``, streamed or not.

Parsing and every byte of output go through
:mod:`modelport.wire.openai_responses_server`; the handler is the shared one
(:mod:`modelport.server._chat`). What this API adds is an
:class:`~modelport.server._chat.Exchange` per call: it puts the conversation
that ``previous_response_id`` names in front of the new input, gives the
encoders the client's body (echoed in the answer, tool names given back), and
keeps the answer for the next ``previous_response_id`` unless the client said
``store: false`` (:mod:`modelport.server._response_store`: 24 hours; in the
ledger's database when there is one).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from modelport.errors import InvalidRequestError
from modelport.server._chat import ChatSurface, chat_endpoint
from modelport.server._response_store import ResponseStore
from modelport.types import ChatRequest, ChatResponse, Message
from modelport.wire import openai_responses_server as wire

__all__ = ["KEEPALIVE", "RESPONSES", "routes"]

#: An SSE comment: the SDKs and Codex skip it.
KEEPALIVE = b": keep-alive\n\n"


class _ResponsesExchange:
    """One ``POST /v1/responses`` call: its request, its encoders, what is kept after it."""

    def __init__(
        self,
        chat: ChatRequest,
        payload: dict[str, Any],
        conversation: list[Message],
        store: ResponseStore | None,
    ) -> None:
        self.chat = chat
        self._payload = payload
        self._conversation = conversation
        self._store = store

    def stream_encoder(self, response_id: str) -> wire.StreamEncoder:
        return wire.StreamEncoder(
            model=self.chat.model,
            id=response_id,
            request=self._payload,
            on_complete=self._keep if self._store is not None else None,
        )

    def encode_response(self, response: ChatResponse) -> bytes:
        if self._store is not None:
            self._keep(response)
        return wire.encode_response(response, request=self._payload)

    def _keep(self, response: ChatResponse) -> None:
        assert self._store is not None
        self._store.save(response.id, [*self._conversation, response.to_message()])


async def _exchange(request: Request, payload: dict[str, Any], chat: ChatRequest) -> Any:
    store: ResponseStore = request.app.state.responses
    previous = payload.get("previous_response_id")
    # Instructions are the request's own: a continued conversation does not carry them over.
    own = 1 if payload.get("instructions") else 0
    history: list[Message] = []
    if previous is not None:
        if not isinstance(previous, str):
            raise InvalidRequestError("previous_response_id must be a string")
        kept = await store.load(previous)
        if kept is None:
            raise InvalidRequestError(
                f"Previous response with id {previous!r} not found. This gateway keeps "
                "responses made with `store` on for 24 hours; send the whole conversation "
                "as input instead."
            )
        history = kept
        chat = msgspec.structs.replace(
            chat, messages=[*chat.messages[:own], *history, *chat.messages[own:]]
        )
    keep = payload.get("store") is not False
    conversation = [*history, *chat.messages[own + len(history) :]]
    return _ResponsesExchange(chat, payload, conversation, store if keep else None)


def _stream_encoder(chat: ChatRequest, response_id: str, payload: dict[str, Any]) -> Any:
    return wire.StreamEncoder(model=chat.model, id=response_id, request=payload)


RESPONSES = ChatSurface(
    api="responses",
    wire=wire,
    id_template="resp_%048x",  # 192 bits, as long as OpenAI's own ids
    id_bits=192,
    stream_encoder=_stream_encoder,
    keepalive=KEEPALIVE,
    exchange=_exchange,
)


def routes() -> list[BaseRoute]:
    return [Route("/v1/responses", chat_endpoint(RESPONSES), methods=["POST"], name="responses")]
