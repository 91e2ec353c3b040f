"""Google's Gemini API, client side: canonical request → body, answers → events.

``streamGenerateContent?alt=sse`` streams one ``GenerateContentResponse``
per SSE event; ``generateContent`` answers one of them whole, and
``streamGenerateContent`` without ``alt=sse`` a JSON array of them
(:func:`decode_response` reads both). Choices this module makes:

* **Thinking.** A part with ``thought: true`` is reasoning text.
* **Signatures.** Gemini attaches ``thoughtSignature`` to a part and wants it
  back on that part. On a function call it becomes the call's own
  ``signature`` (:class:`~modelport.events.ToolCallStartEvent`, then
  :class:`~modelport.types.ToolCall`); on any other part it closes the
  reasoning before it, as Anthropic's do (a :class:`ReasoningEvent` with the
  signature, then a :class:`~modelport.types.ThinkingPart` holding it).
  The request builder puts a thinking part's signature on the part that
  follows it and a call's on the call. For Gemini 3 and later, which refuse
  a function-call turn without its signature, the first call of a turn that
  has none (written by another model, or by a client that dropped it) gets
  the value Google documents for that case, ``skip_thought_signature_validator``.
* **Function calls** arrive whole (``args``) or, with
  ``streamFunctionCallArguments``, as ``partialArgs`` leaves that
  :mod:`._gemini_args` writes out as JSON text fragment by fragment; a call
  ends when a chunk says no more will come, at an empty ``functionCall``,
  at the next call or at the finish. Gemini gives no ids (or an ``id`` of its
  own, kept): a call is ``call_<responseId>_<n>``.
* **Usage.** ``promptTokenCount`` already includes the cached
  ``cachedContentTokenCount`` (the cache read) and ``toolUsePromptTokenCount``
  is added to it; output is ``candidatesTokenCount`` plus ``thoughtsTokenCount``
  (the reasoning). Every chunk repeats the running totals: a changed one is
  a new snapshot.
* **Finish.** ``STOP`` is ``stop`` (``tool_calls`` after a call),
  ``MAX_TOKENS`` is ``length``, the safety reasons (``SAFETY``,
  ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``, the image
  ones) and a prompt blocked by ``promptFeedback.blockReason`` are
  ``content_filter``. ``MALFORMED_FUNCTION_CALL`` and its kin are failures of
  the model's output: an :class:`UpstreamError` (502, so a call that sent
  nothing yet is retried). A stream without a finish broke off.
* **Errors.** ``{"error": {"code", "message", "status", "details"}}``;
  ``RetryInfo.retryDelay`` is the retry-after when no header gives one, an
  invalid key (a 400 with reason ``API_KEY_INVALID``) is an
  :class:`~modelport.errors.AuthError`, and "input token count exceeds the
  maximum" is a :class:`~modelport.errors.ContextTooLongError`.
* **Request.** System messages become ``systemInstruction``; assistant turns
  are ``model`` contents (thinking as ``thought`` parts); tool results are
  ``functionResponse`` parts (a JSON object as it is, other text as
  ``{"output": …}``), the answers to one turn's calls in one content; tools
  are ``functionDeclarations`` with ``parametersJsonSchema``; an effort is a
  ``thinkingBudget`` from :data:`EFFORT_BUDGETS`, with ``includeThoughts``;
  an image URL is ``fileData`` (a ``data:`` URL ``inlineData``).
  ``vendor["gemini"]`` merges into the body, its ``generationConfig`` into
  ours.
"""

from __future__ import annotations

import uuid

from modelport.errors import (
    ModelportError,
    ParseError,
    UpstreamError,
)
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.types import Capabilities, FinishReason, ModelInfo
from modelport.wire import _gemini_shapes as _shapes
from modelport.wire._errors import truncated_stream
from modelport.wire._gemini_args import ArgumentWriter
from modelport.wire._gemini_errors import error_from_response, in_band_error
from modelport.wire._gemini_request import EFFORT_BUDGETS, SKIP_SIGNATURE, build_request
from modelport.wire._json import decode
from modelport.wire._sse import SSEEvent
from modelport.wire._sse_stream import SSEStreamDecoder

__all__ = [
    "EFFORT_BUDGETS",
    "SKIP_SIGNATURE",
    "StreamDecoder",
    "build_request",
    "decode_models",
    "decode_response",
    "error_from_response",
    "finish_reason",
]

_FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
#: Finish reasons that mean the model's output could not be used at all.
_FAILED = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"})


def finish_reason(raw: str) -> FinishReason:
    """The canonical reason for a Gemini ``finishReason`` (unknown words mean ``stop``)."""
    return _FINISH_REASONS.get(raw, "stop")


# --- one answer, chunk by chunk -------------------------------------------------------


class _Turn:
    """What the chunks of one answer share: calls so far, the usage, whether it finished."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.calls = 0
        self.streaming: tuple[int, ArgumentWriter] | None = None
        self.usage: UsageEvent | None = None
        self.finished = False

    def chunk(self, response: _shapes.Response, out: list[StreamEvent]) -> None:
        if response.error is not None:
            raise in_band_error(response.error)
        self.id = self.id or response.responseId
        candidate = next(
            (c for c in response.candidates or () if not c.index), None
        )  # index 0, or none given
        if candidate is not None and candidate.content is not None:
            for part in candidate.content.parts or ():
                self._part(part, out)
        usage = _usage(response.usageMetadata)
        if usage is not None and usage != self.usage:
            self.usage = usage
            out.append(usage)
        if self.finished:
            return
        if candidate is not None and candidate.finishReason is not None:
            self._finish(candidate, out)
        elif response.promptFeedback is not None and response.promptFeedback.blockReason:
            # The prompt itself was blocked: there are no candidates to wait for.
            self.finished = True
            out.append(FinishEvent(reason="content_filter"))

    def _part(self, part: _shapes.Part, out: list[StreamEvent]) -> None:
        if part.functionCall is not None:
            self._call(part.functionCall, part.thoughtSignature, out)
            return
        if part.thought:
            if part.text:
                out.append(ReasoningEvent(text=part.text))
            if part.thoughtSignature:
                out.append(ReasoningEvent(signature=part.thoughtSignature))
            return
        if part.thoughtSignature:
            out.append(ReasoningEvent(signature=part.thoughtSignature))
        if part.text:
            out.append(TextEvent(text=part.text))

    def _call(
        self, call: _shapes.FunctionCall, signature: str | None, out: list[StreamEvent]
    ) -> None:
        if call.name:
            self._end_streaming(out)
            index = self.calls
            self.calls += 1
            call_id = call.id or (
                f"call_{self.id}_{index}" if self.id else f"call_{uuid.uuid4().hex[:24]}"
            )
            out.append(
                ToolCallStartEvent(index=index, id=call_id, name=call.name, signature=signature)
            )
            if call.args:
                out.append(ToolCallDeltaEvent(index=index, arguments=bytes(call.args).decode()))
                return
            if call.partialArgs is None and not call.willContinue:
                out.append(ToolCallDeltaEvent(index=index, arguments="{}"))
                return
            self.streaming = (index, ArgumentWriter())
        elif call.partialArgs is not None and self.streaming is None:
            raise ParseError("Gemini streamed arguments for a function call that never started")
        if self.streaming is None:
            return  # an empty functionCall with nothing open: nothing to end
        index, writer = self.streaming
        if call.partialArgs:
            fragment = writer.add(call.partialArgs)
            if fragment:
                out.append(ToolCallDeltaEvent(index=index, arguments=fragment))
        more = call.willContinue or any(piece.willContinue for piece in call.partialArgs or ())
        if not more:
            self._end_streaming(out)

    def _end_streaming(self, out: list[StreamEvent]) -> None:
        if self.streaming is not None:
            index, writer = self.streaming
            self.streaming = None
            out.append(ToolCallDeltaEvent(index=index, arguments=writer.finish()))

    def _finish(self, candidate: _shapes.Candidate, out: list[StreamEvent]) -> None:
        self._end_streaming(out)
        raw = candidate.finishReason or ""
        if raw in _FAILED:
            detail = f": {candidate.finishMessage}" if candidate.finishMessage else ""
            raise UpstreamError(
                f"Gemini stopped without a usable answer ({raw}{detail})", status=502
            )
        reason = finish_reason(raw)
        if reason == "stop" and self.calls:
            reason = "tool_calls"
        self.finished = True
        out.append(FinishEvent(reason=reason))

    def end(self, out: list[StreamEvent]) -> None:
        """The body ended: a call still streaming its arguments is complete now."""
        self._end_streaming(out)


def _usage(metadata: _shapes.UsageMetadata | None) -> UsageEvent | None:
    if metadata is None:
        return None
    prompt = (metadata.promptTokenCount or 0) + (metadata.toolUsePromptTokenCount or 0)
    thoughts = metadata.thoughtsTokenCount or 0
    output = (metadata.candidatesTokenCount or 0) + thoughts
    if not (prompt or output):
        return None  # Vertex sends {"trafficType": …} alone until the counts are known
    return UsageEvent(
        input_tokens=prompt,
        output_tokens=output,
        cache_read_tokens=metadata.cachedContentTokenCount or 0,
        reasoning_tokens=thoughts,
    )


# --- streaming ------------------------------------------------------------------------


class StreamDecoder(SSEStreamDecoder):
    """``streamGenerateContent?alt=sse`` bytes → canonical events; any split, same events.

    Events decoded before an in-band error in the same :meth:`feed` are
    returned first; the error is raised by the next call.
    """

    def __init__(self) -> None:
        super().__init__()
        self._turn = _Turn()

    @property
    def id(self) -> str | None:
        """The upstream's ``responseId``, once a chunk gave it."""
        return self._turn.id

    def close(self) -> list[StreamEvent]:
        """End of the body. Raises ``NetworkError`` if the answer never finished."""
        self._raise_deferred()
        out: list[StreamEvent] = []
        if not self._done:
            try:
                # A last event without its blank line is still worth reading.
                self._dispatch(self._sse.feed(b"\n\n"), out)
                self._raise_deferred()
            except ParseError as exc:
                if not self._turn.finished:
                    raise truncated_stream() from exc
                raise
        if not self._turn.finished:
            raise truncated_stream()
        return out

    def _dispatch(self, events: list[SSEEvent], out: list[StreamEvent]) -> None:
        for sse in events:
            if self._done:
                return
            if not sse.data or sse.data.isspace():
                continue
            try:
                chunk = decode(_shapes.RESPONSE, sse.data, "Gemini sent a stream chunk")
                self._turn.chunk(chunk, out)
            except ModelportError as exc:
                self._defer(exc, out)
                return


# --- non-streaming --------------------------------------------------------------------


def decode_response(body: bytes) -> list[StreamEvent]:
    """The events of a ``generateContent`` body (or a ``streamGenerateContent`` JSON array)."""
    parsed = decode(_shapes.RESPONSES, body, "Gemini sent an answer")
    turn = _Turn()
    out: list[StreamEvent] = []
    for response in parsed if isinstance(parsed, list) else [parsed]:
        turn.chunk(response, out)
    turn.end(out)
    return out


# --- /v1beta/models -------------------------------------------------------------------

#: Methods that make a model worth listing: it answers chats or embeds.
_USEFUL = frozenset({"generateContent", "streamGenerateContent", "embedContent"})


def decode_models(body: bytes, connection: str) -> list[ModelInfo]:
    """``GET /v1beta/models`` → the models that chat or embed (image and audio ones left out)."""
    listing: _shapes.ModelList = decode(_shapes.MODELS, body, "Gemini sent a model list")
    models: list[ModelInfo] = []
    for entry in listing.models:
        methods = set(entry.supportedGenerationMethods or ())
        if entry.supportedGenerationMethods is not None and not methods & _USEFUL:
            continue
        model_id = entry.name.removeprefix("models/")
        chats = "generateContent" in methods or entry.supportedGenerationMethods is None
        models.append(
            ModelInfo(
                id=model_id,
                connection=connection,
                name=entry.displayName,
                context_window=entry.inputTokenLimit,
                max_output_tokens=entry.outputTokenLimit,
                capabilities=Capabilities(
                    tools=chats,
                    vision=chats and model_id.startswith("gemini"),
                    reasoning=bool(entry.thinking),
                    prompt_cache="createCachedContent" in methods,
                    streaming=chats,
                ),
            )
        )
    return models
