"""What :mod:`modelport.wire.gemini` reads from the Gemini API (``v1beta``).

Only the fields the decoders use are declared; anything else (safety
ratings, citation metadata, grounding, ``modelVersion``) is ignored. Field
names are the API's camelCase JSON names. Decoders are lenient
(``strict=False``), so a count sent as ``"12"`` is still understood.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Shape(msgspec.Struct, frozen=True):
    pass


class PartialArg(Shape):
    """One streamed piece of a call's arguments (``streamFunctionCallArguments``)."""

    jsonPath: str = ""
    stringValue: str | None = None
    numberValue: int | float | None = None
    boolValue: bool | None = None
    # A JSON null is the only value Google sends here; presence is what counts.
    nullValue: Any = msgspec.UNSET
    willContinue: bool | None = None


class FunctionCall(Shape):
    id: str | None = None
    name: str | None = None
    # Raw keeps the arguments as the model wrote them; they are only passed through.
    # An empty Raw (falsy) means the part carried no ``args``.
    args: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    partialArgs: list[PartialArg] | None = None
    willContinue: bool | None = None


class Part(Shape):
    text: str | None = None
    thought: bool | None = None
    thoughtSignature: str | None = None
    functionCall: FunctionCall | None = None


class Content(Shape):
    parts: list[Part] | None = None
    role: str | None = None


class Candidate(Shape):
    content: Content | None = None
    finishReason: str | None = None
    finishMessage: str | None = None
    index: int | None = None


class UsageMetadata(Shape):
    promptTokenCount: int | None = None
    candidatesTokenCount: int | None = None
    cachedContentTokenCount: int | None = None
    thoughtsTokenCount: int | None = None
    toolUsePromptTokenCount: int | None = None


class PromptFeedback(Shape):
    blockReason: str | None = None
    blockReasonMessage: str | None = None


class ErrorDetail(Shape):
    code: int | None = None
    message: str | None = None
    status: str | None = None
    details: list[dict[str, Any]] | None = None


class Response(Shape):
    """One ``GenerateContentResponse``: a whole answer, or one chunk of a stream."""

    candidates: list[Candidate] | None = None
    usageMetadata: UsageMetadata | None = None
    promptFeedback: PromptFeedback | None = None
    responseId: str | None = None
    modelVersion: str | None = None
    error: ErrorDetail | None = None


class ErrorBody(Shape):
    error: ErrorDetail | None = None


# --- /v1beta/models --------------------------------------------------------------


class ModelEntry(Shape):
    name: str
    displayName: str | None = None
    inputTokenLimit: int | None = None
    outputTokenLimit: int | None = None
    supportedGenerationMethods: list[str] | None = None
    thinking: bool | None = None


class ModelList(Shape):
    models: list[ModelEntry] = msgspec.field(default_factory=list)
    nextPageToken: str | None = None


RESPONSE = msgspec.json.Decoder(Response, strict=False)
# ``generateContent`` answers one object; ``streamGenerateContent`` without
# ``alt=sse`` answers a JSON array of the same objects.
RESPONSES = msgspec.json.Decoder(Response | list[Response], strict=False)
ERROR_BODY = msgspec.json.Decoder(ErrorBody, strict=False)
MODELS = msgspec.json.Decoder(ModelList, strict=False)
