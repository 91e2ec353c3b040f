"""The OpenAI Chat Completions format, client side: canonical request → body, answers → events.

OpenAI and most servers that call themselves OpenAI-compatible (DeepSeek,
OpenRouter, Groq, Z.ai, vLLM, llama.cpp, LM Studio, Ollama's ``/v1``) speak it,
each with a dialect. Choices this module makes where they differ:

* **Reasoning** arrives as ``reasoning_content`` (DeepSeek, Z.ai, vLLM) or
  ``reasoning`` (OpenRouter, Groq, Ollama). When a server sends both, only
  ``reasoning_content`` counts. OpenRouter repeats the same text in
  ``reasoning_details``, which is read only for a block's ``signature``.
* **Refusals** (``delta.refusal``) become text, and a turn that refused
  finishes with ``refusal``.
* **Tool calls** are keyed by their ``index`` (a server that omits it gets the
  position in the list). A fragment naming a *new* id and name at an index
  already taken is a new call (servers that send each call whole, all at
  index 0). A call whose first fragments carry no name is held back until the
  name arrives. Missing ids become ``call_<index>``.
* **Usage**: ``prompt_tokens_details.cached_tokens``, or DeepSeek's
  ``prompt_cache_hit_tokens``, is the cache read; OpenRouter's ``usage.cost`` is
  kept; Groq's ``x_groq.usage`` is read when ``usage`` is absent.
* **Azure OpenAI** opens a stream with a chunk of ``prompt_filter_results``
  and no choices, and may send choices whose ``delta`` is empty but for
  ``content_filter_results``: neither is an event. Its ``finish_reason:
  "content_filter"`` is ``content_filter``; a prompt its filter refused is a
  400 with ``code: "content_filter"`` (an ``InvalidRequestError`` whose
  message names the filtered categories from ``innererror``).
* **Errors in the stream** (``data: {"error": ...}``) take their status from an
  integer ``code``, else from a well-known ``code``/``type`` string, else 500.
  Events decoded before the error in the same :meth:`StreamDecoder.feed` are
  returned first and the error is raised by the next call.
* **Request**: thinking parts are dropped (Chat Completions has no slot for
  them); a parts list reduced to a single text part is sent as a string, which
  every server accepts; a token budget alone becomes the nearest
  ``reasoning_effort`` (see :func:`effort_for_budget`); ``metadata`` is not sent
  (OpenAI rejects it unless ``store`` is on); a tool's ``strict``, when set,
  becomes ``function.strict``. ``vendor["openai"]`` may carry
  ``max_completion_tokens``, which then replaces ``max_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from uuid import uuid4

import msgspec

from modelport.errors import ModelportError, ParseError
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.types import (
    Capabilities,
    ChatResponse,
    FinishReason,
    ModelInfo,
    ModelPrices,
    ThinkingPart,
    ToolCall,
    Usage,
)
from modelport.wire import _openai_shapes as _shapes
from modelport.wire._errors import (
    describe_body,
    error_for_status,
    excerpt,
    status_for_code,
    truncated_stream,
)
from modelport.wire._openai_request import build_request, effort_for_budget
from modelport.wire._sse import SSEEvent
from modelport.wire._sse_stream import SSEStreamDecoder

__all__ = [
    "StreamDecoder",
    "build_request",
    "decode_chat_response",
    "decode_completion",
    "decode_models",
    "decode_response",
    "effort_for_budget",
    "error_from_response",
    "finish_reason",
]

_U = TypeVar("_U", bound=Usage)

# --- finish reasons and in-band errors -----------------------------------------

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "refusal": "refusal",
}


def finish_reason(raw: str) -> FinishReason:
    """The canonical reason for a server's ``finish_reason`` (unknown words mean ``stop``)."""
    return _FINISH_REASONS.get(raw, "stop")


def _usage(usage: _shapes.Usage, kind: type[_U]) -> _U:
    """The counts as ``kind``: a :class:`UsageEvent` for a stream, a :class:`Usage` for an
    answer decoded straight into its response."""
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    cache_read = (prompt.cached_tokens if prompt is not None else None) or (
        usage.prompt_cache_hit_tokens or 0
    )
    return kind(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cache_read_tokens=cache_read,
        cache_write_tokens=(prompt.cache_write_tokens or 0) if prompt is not None else 0,
        reasoning_tokens=(completion.reasoning_tokens or 0) if completion is not None else 0,
        cost=usage.cost,
    )


def _arguments(function: _shapes.Function | None) -> str:
    if function is None or function.arguments is None:
        return ""
    if isinstance(function.arguments, str):
        return function.arguments
    # Some servers send the arguments as an object rather than its JSON text.
    return msgspec.json.encode(function.arguments).decode()


def _in_band_error(error: _shapes.ErrorDetail | str) -> ModelportError:
    if isinstance(error, str):
        return error_for_status(500, error or "The upstream reported an error")
    status, code = status_for_code(error.code, error.type)
    return error_for_status(status, _error_message(error), code=code)


def _error_message(error: _shapes.ErrorDetail) -> str:
    message = error.message or error.type or "The upstream reported an error"
    metadata = error.metadata
    if isinstance(metadata, dict):
        # OpenRouter wraps the real cause: "Provider returned error" + metadata.raw.
        raw, provider = metadata.get("raw"), metadata.get("provider_name")
        if isinstance(raw, str) and raw and raw not in message:
            source = f"{provider}: " if isinstance(provider, str) else ""
            message = f"{message} ({source}{excerpt(raw, 300)})"
    filtered = _filtered_categories(error.innererror)
    if filtered:
        message = f"{message} (Azure content filter: {filtered})"
    return message


def _filtered_categories(inner: object) -> str:
    """``hate (high), jailbreak`` from Azure's ``innererror.content_filter_result``."""
    result = inner.get("content_filter_result") if isinstance(inner, dict) else None
    if not isinstance(result, dict):
        return ""
    names = []
    for category, verdict in result.items():
        if isinstance(verdict, dict) and verdict.get("filtered") is True:
            severity = verdict.get("severity")
            shown = severity if isinstance(severity, str) and severity != "safe" else None
            names.append(f"{category} ({shown})" if shown else str(category))
    return ", ".join(names)


# --- streaming --------------------------------------------------------------


class _Call:
    __slots__ = ("id", "index", "name", "pending", "started")

    def __init__(self, index: int, id: str | None, name: str | None) -> None:
        self.index = index
        self.id = id
        self.name = name
        self.started = False
        self.pending: list[str] = []


class StreamDecoder(SSEStreamDecoder):
    """``chat.completion.chunk`` stream → canonical events.

    Feed raw body bytes with :meth:`feed` and end with :meth:`close`, or feed
    already-parsed chunk objects with :meth:`feed_json` and end with :meth:`end`
    (the plugin host's path). Any split of the bytes yields the same events.
    """

    def __init__(self) -> None:
        super().__init__()
        self._finished = False
        self._refused = False
        self._calls: dict[int, _Call] = {}
        self._used: set[int] = set()
        self._last_usage: UsageEvent | None = None

    def close(self) -> list[StreamEvent]:
        """End of the body. Raises ``NetworkError`` if the stream stopped before it finished."""
        out = self._close_tail()
        if not (self._done or self._finished):
            raise truncated_stream()
        self._check_calls_named()
        return out

    def _cut_short(self) -> bool:
        return not self._finished

    def feed_json(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        """The events of one already-parsed ``chat.completion.chunk`` object."""
        self._raise_deferred()
        try:
            parsed = msgspec.convert(chunk, _shapes.Chunk, strict=False)
        except msgspec.ValidationError as exc:
            raise ParseError(f"A chat.completion.chunk had an unexpected shape: {exc}") from exc
        out: list[StreamEvent] = []
        self._process(parsed, out)
        return out

    def end(self) -> list[StreamEvent]:
        """End of a :meth:`feed_json` stream; the caller's own protocol said it is complete."""
        self._raise_deferred()
        out: list[StreamEvent] = []
        self._check_calls_named()
        return out

    def _dispatch(self, events: list[SSEEvent], out: list[StreamEvent]) -> None:
        for sse in events:
            data = sse.data
            if data == "[DONE]":
                self._done = True
                return
            if not data or data.isspace():
                continue
            try:
                chunk = _decode_chunk(data)
                if sse.event == "error" and chunk.error is None:
                    raise error_for_status(500, excerpt(data, 300))
                self._process(chunk, out)
            except ModelportError as exc:
                self._defer(exc, out)
                return

    def _process(self, chunk: _shapes.Chunk, out: list[StreamEvent]) -> None:
        if chunk.error is not None:
            raise _in_band_error(chunk.error)
        if chunk.choices:
            for choice in chunk.choices:
                if not choice.index:  # 0, or null from a server that numbers nothing
                    self._choice(choice, out)
                    break
        usage = chunk.usage
        if usage is None and chunk.x_groq is not None:
            usage = chunk.x_groq.usage
        if usage is not None:
            event = _usage(usage, UsageEvent)
            if event != self._last_usage:
                self._last_usage = event
                out.append(event)

    def _choice(self, choice: _shapes.ChunkChoice, out: list[StreamEvent]) -> None:
        delta = choice.delta
        if delta is not None:
            reasoning = delta.reasoning_content or delta.reasoning
            if reasoning:
                out.append(ReasoningEvent(text=reasoning))
            if delta.reasoning_details:
                for detail in delta.reasoning_details:
                    if detail.signature:
                        out.append(ReasoningEvent(signature=detail.signature))
            if delta.content:
                out.append(TextEvent(text=delta.content))
            if delta.refusal:
                self._refused = True
                out.append(TextEvent(text=delta.refusal))
            if delta.tool_calls:
                self._tool_fragments(delta.tool_calls, out)
            elif delta.function_call is not None:
                self._tool_fragments([_shapes.ToolCallFragment(function=delta.function_call)], out)
        if choice.finish_reason is not None and not self._finished:
            self._finished = True
            self._check_calls_named()
            reason = finish_reason(choice.finish_reason)
            if reason == "stop" and self._calls:
                reason = "tool_calls"
            elif reason == "stop" and self._refused:
                reason = "refusal"
            out.append(FinishEvent(reason=reason))

    def _tool_fragments(
        self, fragments: list[_shapes.ToolCallFragment], out: list[StreamEvent]
    ) -> None:
        for position, fragment in enumerate(fragments):
            wire = fragment.index if fragment.index is not None else position
            function = fragment.function
            name = (function.name if function is not None else None) or None
            call_id = fragment.id or None
            call = self._calls.get(wire)
            if call is None or (call.started and name and call_id and call_id != call.id):
                index = wire if wire not in self._used else max(self._used) + 1
                call = _Call(index, call_id, name)
                self._calls[wire] = call
                self._used.add(index)
            elif not call.started:
                call.id = call.id or call_id
                call.name = call.name or name
            arguments = _arguments(function)
            if not call.started:
                if not call.name:
                    if arguments:
                        call.pending.append(arguments)
                    continue
                self._start(call, out)
            if arguments:
                out.append(ToolCallDeltaEvent(index=call.index, arguments=arguments))

    def _start(self, call: _Call, out: list[StreamEvent]) -> None:
        call.started = True
        out.append(
            ToolCallStartEvent(
                index=call.index, id=call.id or f"call_{call.index}", name=call.name or ""
            )
        )
        if call.pending:
            out.append(ToolCallDeltaEvent(index=call.index, arguments="".join(call.pending)))
            call.pending = []

    def _check_calls_named(self) -> None:
        for call in self._calls.values():
            if not call.started:
                raise ParseError(
                    f"The upstream streamed a tool call (index {call.index}) that never got a name"
                )


def _decode_chunk(data: str) -> _shapes.Chunk:
    try:
        return _shapes.CHUNK.decode(data)
    except msgspec.ValidationError as exc:
        raise ParseError(
            f"A chat.completion.chunk had an unexpected shape ({exc}): {excerpt(data, 200)}"
        ) from exc
    except msgspec.DecodeError as exc:
        raise ParseError(f"The stream sent data that is not JSON: {excerpt(data, 200)}") from exc


# --- non-streaming ----------------------------------------------------------


def decode_response(body: bytes) -> list[StreamEvent]:
    """The events of a non-streaming ``chat.completion`` body, in stream order."""
    return _completion_events(_decode_completion(body))


def decode_chat_response(body: bytes, *, model: str) -> ChatResponse:
    """A non-streaming ``chat.completion`` body, decoded once, straight into a response.

    The same response as :func:`~modelport.aggregate.aggregate` of
    :func:`decode_response`'s events with the body's ``id`` (a property test
    holds the two together over every recorded answer): a plain call needs no
    events, and building them only to fold them back cost a third of its
    decoding. ``model`` is the response's model (the address asked for).
    """
    completion = _decode_completion(body)
    choice, message = _first_choice(completion)
    calls = message.tool_calls or []
    if not calls and message.function_call is not None:
        calls = [_shapes.ToolCallFragment(function=message.function_call)]
    reason = _completion_finish(choice, message, calls)
    tool_calls: list[ToolCall] = []
    for index, call in enumerate(calls):
        function = call.function
        name = function.name if function is not None else None
        if not name:
            raise ParseError(f"The chat.completion has a tool call (index {index}) with no name")
        arguments = _arguments(function).strip() or "{}"
        if reason != "length":
            # As the aggregate checks a finished turn's calls (a cut-off one keeps its text).
            _check_arguments(name, arguments, model)
        tool_calls.append(ToolCall(id=call.id or f"call_{index}", name=name, arguments=arguments))
    reasoning = message.reasoning_content or message.reasoning or ""
    identifier = completion.id
    return ChatResponse(
        id=identifier if isinstance(identifier, str) and identifier else f"resp_{uuid4().hex}",
        model=model,
        content=(message.content or "") + (message.refusal or ""),
        reasoning=reasoning,
        thinking=[ThinkingPart(text=reasoning)] if reasoning else [],
        tool_calls=tool_calls,
        usage=_usage(completion.usage, Usage) if completion.usage is not None else Usage(),
        finish_reason=reason,
    )


def _check_arguments(name: str, arguments: str, model: str) -> None:
    try:
        msgspec.json.decode(arguments)
    except msgspec.DecodeError as exc:
        raise ParseError(
            f"Tool call {name!r} ended with arguments that are not valid JSON: {arguments[:200]!r}",
            model=model,
        ) from exc


def _decode_completion(body: bytes) -> _shapes.Completion:
    try:
        return _shapes.COMPLETION.decode(body)
    except msgspec.ValidationError as exc:
        raise ParseError(
            f"The chat.completion had an unexpected shape ({exc}): {excerpt(body, 200)}"
        ) from exc
    except msgspec.DecodeError as exc:
        raise ParseError(
            f"The upstream answered with data that is not JSON: {excerpt(body, 200)}"
        ) from exc


def decode_completion(obj: Mapping[str, Any]) -> list[StreamEvent]:
    """The events of an already-parsed ``chat.completion`` object (a plugin's reply)."""
    try:
        completion = msgspec.convert(obj, _shapes.Completion, strict=False)
    except msgspec.ValidationError as exc:
        raise ParseError(f"The chat.completion had an unexpected shape: {exc}") from exc
    return _completion_events(completion)


def _first_choice(
    completion: _shapes.Completion,
) -> tuple[_shapes.CompletionChoice, _shapes.ResponseMessage]:
    """The answer's choice at index 0 and its message (an in-band error raised)."""
    if completion.error is not None:
        raise _in_band_error(completion.error)
    for choice in completion.choices or ():
        if not choice.index:  # 0, or null from a server that numbers nothing
            break
    else:
        raise ParseError("The chat.completion has no choice at index 0")
    message = choice.message
    if message is None:
        raise ParseError(
            "The answer's choice has no message: it is not a chat.completion "
            "(a legacy /completions answer carries `text` instead)"
        )
    return choice, message


def _completion_finish(
    choice: _shapes.CompletionChoice,
    message: _shapes.ResponseMessage,
    calls: list[_shapes.ToolCallFragment],
) -> FinishReason:
    reason = finish_reason(choice.finish_reason or "stop")
    if reason == "stop" and calls:
        return "tool_calls"
    if reason == "stop" and message.refusal:
        return "refusal"
    return reason


def _completion_events(completion: _shapes.Completion) -> list[StreamEvent]:
    choice, message = _first_choice(completion)
    out: list[StreamEvent] = []
    reasoning = message.reasoning_content or message.reasoning
    if reasoning:
        out.append(ReasoningEvent(text=reasoning))
    if message.content:
        out.append(TextEvent(text=message.content))
    if message.refusal:
        out.append(TextEvent(text=message.refusal))
    calls = message.tool_calls or []
    if not calls and message.function_call is not None:
        calls = [_shapes.ToolCallFragment(function=message.function_call)]
    for index, call in enumerate(calls):
        name = call.function.name if call.function is not None else None
        if not name:
            raise ParseError(f"The chat.completion has a tool call (index {index}) with no name")
        out.append(ToolCallStartEvent(index=index, id=call.id or f"call_{index}", name=name))
        arguments = _arguments(call.function)
        if arguments:
            out.append(ToolCallDeltaEvent(index=index, arguments=arguments))
    if completion.usage is not None:
        out.append(_usage(completion.usage, UsageEvent))
    out.append(FinishEvent(reason=_completion_finish(choice, message, calls)))
    return out


# --- errors -----------------------------------------------------------------


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> ModelportError:
    """The error for a non-2xx answer, from any of the error bodies these servers send."""
    message, code = _error_fields(body)
    if not message:
        text = describe_body(body, 300)
        message = (
            f"The upstream answered HTTP {status}: {text}"
            if text
            else f"The upstream answered HTTP {status} with an empty body"
        )
    lowered = {key.lower(): value for key, value in headers.items()}
    return error_for_status(status, message, headers=lowered, body=body, code=code)


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    error = data.get("error")
    if isinstance(error, dict):
        try:
            detail = msgspec.convert(error, _shapes.ErrorDetail, strict=False)
        except msgspec.ValidationError:
            return None, None
        code = detail.code if isinstance(detail.code, str) and not detail.code.isdigit() else None
        return _error_message(detail), code
    if isinstance(error, str) and error:
        return error, None  # Ollama's /v1
    for key in ("message", "detail"):  # vLLM ({"object": "error", ...}), FastAPI servers
        value = data.get(key)
        if isinstance(value, str) and value:
            code = data.get("code")
            return value, code if isinstance(code, str) and not code.isdigit() else None
    return None, None


def decode_models(body: bytes, connection: str) -> list[ModelInfo]:
    """``GET /models`` → models; reads OpenRouter's, Groq's and vLLM's extra fields."""
    try:
        parsed = _shapes.MODELS.decode(body)
    except msgspec.DecodeError as exc:
        raise ParseError(
            f"The model list is not what /models returns ({exc}): {excerpt(body, 200)}"
        ) from exc
    entries = parsed if isinstance(parsed, list) else parsed.data
    return [_model_info(entry, connection) for entry in entries]


def _model_info(entry: _shapes.ModelEntry, connection: str) -> ModelInfo:
    top = entry.top_provider or _shapes.TopProvider()
    pricing = entry.pricing or _shapes.Pricing()
    parameters = entry.supported_parameters
    modalities = entry.architecture.input_modalities if entry.architecture else None
    return ModelInfo(
        id=entry.id,
        connection=connection,
        name=entry.name or entry.display_name,
        context_window=entry.context_length
        or entry.context_window
        or entry.max_model_len
        or entry.max_context_length
        or top.context_length,
        max_output_tokens=entry.max_completion_tokens or top.max_completion_tokens,
        prices=ModelPrices(
            input=_per_million(pricing.prompt),
            output=_per_million(pricing.completion),
            cache_read=_per_million(pricing.input_cache_read),
            cache_write=_per_million(pricing.input_cache_write),
        ),
        capabilities=Capabilities(
            tools=parameters is None or "tools" in parameters,
            vision=modalities is not None and "image" in modalities,
            reasoning=parameters is not None
            and ("reasoning" in parameters or "include_reasoning" in parameters),
            prompt_cache=pricing.input_cache_read is not None,
        ),
    )


def _per_million(per_token: str | float | None) -> float | None:
    """US dollars per token (OpenRouter sends strings) → per million; negative means unknown."""
    if per_token is None:
        return None
    try:
        value = Decimal(str(per_token)) * 1_000_000
    except InvalidOperation:
        return None
    return float(value) if value >= 0 else None
