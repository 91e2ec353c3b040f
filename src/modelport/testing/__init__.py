"""Test doubles that ship with modelport: a fake upstream server and a fake provider.

:class:`FakeUpstream` is a real HTTP/1.1 server on ``127.0.0.1`` that replays
scripted :class:`Reply` objects (usually recorded fixtures) and records every
request. It runs on its own event loop in a daemon thread, so sync tests, async
tests and subprocesses (the CLI) can all talk to it::

    with FakeUpstream() as upstream:
        upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/messages-stream-text.sse",
                                                             chunks="random", split_seed=7))
        ...  # point a connection at upstream.url
        assert upstream.requests[0].headers["x-api-key"] == "sk-test"

Streamed replies use chunked transfer encoding and each piece is written (and
flushed) separately, so a client sees the body cut at the scripted boundaries.
Replies can also be delayed, dropped mid-body or never answered at all.

:class:`FakeProvider` implements the provider protocol in memory with a queue
of scripted replies and a ``history`` of the requests it saw.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from modelport.events import FinishEvent, StreamEvent, TextEvent, UsageEvent
from modelport.providers import BaseProvider, ConnectionSettings
from modelport.testing._fake_upstream import (
    FakeUpstream,
    RecordedRequest,
    Reply,
    Responder,
    fixtures_dir,
)
from modelport.types import ChatRequest, EmbeddingRequest, EmbeddingResponse, ModelInfo, Usage

__all__ = [
    "FakeProvider",
    "FakeReply",
    "FakeUpstream",
    "RecordedRequest",
    "Reply",
    "Responder",
    "fixtures_dir",
]

# --- the fake provider -------------------------------------------------------


@dataclass(frozen=True)
class FakeReply:
    """A scripted provider reply: ``events`` in order, then ``error`` raised if given."""

    events: Sequence[StreamEvent | str] = ()
    error: BaseException | None = None


ScriptedReply = FakeReply | Sequence[StreamEvent | str] | BaseException | str


def _normalise(reply: ScriptedReply) -> FakeReply:
    if isinstance(reply, FakeReply):
        return reply
    if isinstance(reply, BaseException):
        return FakeReply(error=reply)
    if isinstance(reply, str):
        return FakeReply(events=(TextEvent(text=reply), FinishEvent(reason="stop")))
    return FakeReply(events=tuple(reply))


_DEFAULT_REPLY = FakeReply(
    events=(
        TextEvent(text="Hello from FakeProvider"),
        UsageEvent(input_tokens=1, output_tokens=4),
        FinishEvent(reason="stop"),
    )
)


class FakeProvider(BaseProvider):
    """An in-memory provider with a queue of scripted replies and a request history.

    Each reply is a list of events (a ``str`` item is shorthand for a
    :class:`~modelport.events.TextEvent`), a plain ``str`` (that text, then
    ``finish(stop)``), an exception to raise before any event, or a
    :class:`FakeReply` that raises its ``error`` after its ``events``. Replies
    are used in order and the last one repeats; with none, a short greeting.
    ``event_delay`` sleeps between events (to test cancellation and timing).
    :meth:`embed` answers with stable made-up vectors.
    """

    def __init__(
        self,
        *replies: ScriptedReply,
        models: Sequence[ModelInfo | str] | None = None,
        connection: str = "fake",
        event_delay: float = 0.0,
    ) -> None:
        super().__init__(ConnectionSettings(name=connection, compat="fake"))
        self.replies: list[FakeReply] = [_normalise(reply) for reply in replies]
        self.models: list[ModelInfo] = [
            ModelInfo(id=model, connection=connection) if isinstance(model, str) else model
            for model in (models if models is not None else ["fake-model"])
        ]
        self.event_delay = event_delay
        self.history: list[ChatRequest] = []
        #: The embedding requests it answered, in order.
        self.embedded: list[EmbeddingRequest] = []
        #: Streams closed by their consumer before the scripted reply ended.
        self.cancelled = 0
        self.closed = False
        self._served = 0

    def add_reply(self, *replies: ScriptedReply) -> None:
        """Append more scripted replies to the queue."""
        self.replies.extend(_normalise(reply) for reply in replies)

    def _next(self) -> FakeReply:
        if not self.replies:
            return _DEFAULT_REPLY
        reply = self.replies[min(self._served, len(self.replies) - 1)]
        self._served += 1
        return reply

    async def list_models(self) -> list[ModelInfo]:
        return list(self.models)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:  # type: ignore[override]
        self.history.append(request)
        reply = self._next()
        finished = False
        try:
            for index, event in enumerate(reply.events):
                if index and self.event_delay:
                    await asyncio.sleep(self.event_delay)
                yield TextEvent(text=event) if isinstance(event, str) else event
            finished = True
        finally:
            if not finished:
                self.cancelled += 1
        if reply.error is not None:
            raise reply.error

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """A vector per input, the same for the same input (``dimensions`` long, at most 64).

        Each input counts as one token per word (a token array: its length).
        """
        self.embedded.append(request)
        size = min(request.dimensions or 8, 64)
        vectors: list[list[float]] = []
        tokens = 0
        for item in request.input:
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += len(text.split()) if isinstance(item, str) else len(item)
            digest = hashlib.sha256(text.encode()).digest()
            vectors.append([(digest[i % len(digest)] - 128) / 128 for i in range(size)])
        return EmbeddingResponse(
            model=request.model, embeddings=vectors, usage=Usage(input_tokens=tokens)
        )

    async def aclose(self) -> None:
        self.closed = True
