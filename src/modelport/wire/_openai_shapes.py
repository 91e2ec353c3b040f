"""What :mod:`modelport.wire.openai_chat` reads from Chat Completions servers.

Only the fields the decoders use are declared; anything else is ignored. The
decoders are lenient (``strict=False``) so that a server sending ``"12"`` or
``12.0`` for a count is still understood.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Shape(msgspec.Struct, frozen=True):
    pass


class Function(Shape):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None


class ToolCallFragment(Shape):
    index: int | None = None
    id: str | None = None
    function: Function | None = None


class ReasoningDetail(Shape):
    signature: str | None = None


class ResponseMessage(Shape):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallFragment] | None = None
    function_call: Function | None = None


class Delta(ResponseMessage):
    """A streamed ``delta``: a message's fields, plus OpenRouter's ``reasoning_details``."""

    reasoning_details: list[ReasoningDetail] | None = None


class ChunkChoice(Shape):
    index: int | None = 0
    delta: Delta | None = None
    finish_reason: str | None = None


class TokenDetails(Shape):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


class Usage(Shape):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: TokenDetails | None = None
    completion_tokens_details: TokenDetails | None = None
    prompt_cache_hit_tokens: int | None = None
    cost: float | None = None


class ErrorDetail(Shape):
    message: str | None = None
    type: str | None = None
    code: int | str | None = None
    metadata: Any = None
    #: Azure OpenAI's detail: ``{"code": "ResponsibleAIPolicyViolation",
    #: "content_filter_result": {"hate": {"filtered": true, "severity": "high"}, …}}``.
    innererror: Any = None


class Groq(Shape):
    usage: Usage | None = None


class Chunk(Shape):
    choices: list[ChunkChoice] | None = None
    usage: Usage | None = None
    error: ErrorDetail | str | None = None
    x_groq: Groq | None = None


class CompletionChoice(Shape):
    index: int | None = 0
    message: ResponseMessage | None = None
    finish_reason: str | None = None


class Completion(Shape):
    #: Any JSON: only a non-empty string is the answer's id (a server sending a number has none).
    id: Any = None
    choices: list[CompletionChoice] | None = None
    usage: Usage | None = None
    error: ErrorDetail | str | None = None


# --- /models ------------------------------------------------------------------


class Pricing(Shape):
    prompt: str | float | None = None
    completion: str | float | None = None
    input_cache_read: str | float | None = None
    input_cache_write: str | float | None = None


class TopProvider(Shape):
    context_length: int | None = None
    max_completion_tokens: int | None = None


class Architecture(Shape):
    input_modalities: list[str] | None = None


class ModelEntry(Shape):
    id: str
    name: str | None = None
    display_name: str | None = None
    context_length: int | None = None
    context_window: int | None = None
    max_model_len: int | None = None
    max_context_length: int | None = None
    max_completion_tokens: int | None = None
    pricing: Pricing | None = None
    top_provider: TopProvider | None = None
    architecture: Architecture | None = None
    supported_parameters: list[str] | None = None


class ModelList(Shape):
    data: list[ModelEntry]


CHUNK = msgspec.json.Decoder(Chunk, strict=False)
COMPLETION = msgspec.json.Decoder(Completion, strict=False)
MODELS = msgspec.json.Decoder(ModelList | list[ModelEntry], strict=False)
