"""The canonical values that flow through modelport.

Every provider speaks these and every wire format translates to and from them.
They are frozen, keyword-only ``msgspec.Struct`` classes: msgspec builds them
about seven times faster than frozen dataclasses (0.05 s against 0.36 s for a
million instances on the reference machine) and encodes them without a detour
through ``asdict``, which matters on the gateway's per-chunk hot path.

Each part carries a literal ``type`` tag so that encoders can ``match`` on it.

Token accounting follows one convention everywhere:

* ``input_tokens`` counts *all* input tokens, cached ones included;
  ``cache_read_tokens`` and ``cache_write_tokens`` are subsets of it.
  (Anthropic reports ``input_tokens`` without cache reads and writes; its
  decoder adds them back.)
* ``output_tokens`` counts all output tokens, ``reasoning_tokens`` included.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "ContentPart",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FinishReason",
    "ImagePart",
    "Message",
    "ModelInfo",
    "ModelPrices",
    "Reasoning",
    "RedactedThinkingPart",
    "Role",
    "TextPart",
    "ThinkingPart",
    "ToolCall",
    "ToolChoice",
    "ToolDefinition",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "refusal"]


class _Value(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base for canonical values: immutable, keyword-only, compact when encoded.

    msgspec applies ``kw_only`` to the fields of the class that declares it only,
    so every subclass repeats it.
    """


# --- content parts ---------------------------------------------------------


class TextPart(_Value, tag="text", tag_field="type", kw_only=True):
    """Plain text. ``cache`` asks providers that support it to cache up to here."""

    text: str
    cache: bool = False

    @property
    def type(self) -> Literal["text"]:
        return "text"


class ImagePart(_Value, tag="image", tag_field="type", kw_only=True):
    """An image given either by ``url`` or as base64 ``data`` with its ``media_type``."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    cache: bool = False

    @property
    def type(self) -> Literal["image"]:
        return "image"


class ThinkingPart(_Value, tag="thinking", tag_field="type", kw_only=True):
    """Reasoning a model showed. ``signature`` must be sent back verbatim (Anthropic)."""

    text: str
    signature: str | None = None

    @property
    def type(self) -> Literal["thinking"]:
        return "thinking"


class RedactedThinkingPart(_Value, tag="redacted_thinking", tag_field="type", kw_only=True):
    """Reasoning the provider encrypted; opaque ``data`` to be sent back verbatim."""

    data: str

    @property
    def type(self) -> Literal["redacted_thinking"]:
        return "redacted_thinking"


ContentPart = TextPart | ImagePart | ThinkingPart | RedactedThinkingPart


# --- messages and tools ----------------------------------------------------


class ToolCall(_Value, kw_only=True):
    """A call the model made. ``arguments`` is the JSON text exactly as produced.

    ``signature`` is an opaque token some providers attach to the call itself
    (Gemini's ``thoughtSignature``) and require back, verbatim, on the same
    call in the next request; like a thinking part's signature, only the API
    that minted it reads it.
    """

    id: str
    name: str
    arguments: str = "{}"
    signature: str | None = None

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (raises ``msgspec.DecodeError`` if invalid)."""
        return msgspec.json.decode(self.arguments or "{}")


class Message(_Value, kw_only=True):
    """One turn of a conversation.

    ``content`` is a string or a list of parts. Assistant turns may carry
    ``tool_calls``; tool turns answer one call and name it in ``tool_call_id``.
    """

    role: Role
    content: str | list[ContentPart] = ""
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    cache: bool = False

    @property
    def parts(self) -> list[ContentPart]:
        """The content as a list of parts, whatever form it was given in."""
        if isinstance(self.content, str):
            return [TextPart(text=self.content)] if self.content else []
        return self.content

    @property
    def text(self) -> str:
        """The concatenated text parts (thinking and images left out)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


class ToolDefinition(_Value, kw_only=True):
    """A tool the model may call; ``parameters`` is a JSON Schema object.

    ``strict`` asks for arguments that follow the schema exactly, where the API
    supports it (OpenAI's strict function calling); ``None`` leaves it unsaid.
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None
    cache: bool = False


class ToolChoice(_Value, kw_only=True):
    """How the model should use tools: ``auto``, ``none``, ``required`` or one named ``tool``."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None

    @classmethod
    def tool(cls, name: str) -> ToolChoice:
        return cls(mode="tool", name=name)


class Reasoning(_Value, kw_only=True):
    """How much the model should think: an ``effort`` level or a token ``budget_tokens``.

    ``adaptive`` says the model may decide (Anthropic's adaptive thinking, an
    ``effort`` with no thinking asked for): where the upstream refuses
    reasoning for a model that cannot think, the call is made again without it
    rather than failing.
    """

    effort: Literal["minimal", "low", "medium", "high"] | None = None
    budget_tokens: int | None = None
    adaptive: bool = False


class ChatRequest(_Value, kw_only=True):
    """Everything a provider needs for one chat call.

    ``model`` is an address (``connection/model``) when given to the router and
    the bare model id once the router has picked the connection.

    ``vendor`` holds options only one API understands, keyed by its compat name
    (``{"openai": {"seed": 1}}``, ``{"anthropic": {"top_k": 5}}``): that API's
    request builder merges them, every other one ignores them, so a request from
    an OpenAI client can reach an Anthropic model without a stray ``seed``.
    ``extra`` is merged into *any* upstream body last and untouched.
    """

    model: str
    messages: list[Message]
    tools: list[ToolDefinition] = msgspec.field(default_factory=list)
    tool_choice: ToolChoice | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    response_format: dict[str, Any] | None = None
    reasoning: Reasoning | None = None
    metadata: dict[str, Any] | None = None
    vendor: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


# --- results ---------------------------------------------------------------


class Usage(_Value, kw_only=True):
    """Token counts for one call; see the module docstring for what each includes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None


class ChatResponse(_Value, kw_only=True):
    """What a stream aggregates to (see :func:`modelport.aggregate.aggregate`).

    ``thinking`` keeps reasoning blocks with their signatures so that
    :meth:`to_message` can send them back on the next turn.
    """

    id: str
    model: str
    content: str = ""
    reasoning: str = ""
    thinking: list[ThinkingPart | RedactedThinkingPart] = msgspec.field(default_factory=list)
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    usage: Usage = msgspec.field(default_factory=Usage)
    finish_reason: FinishReason | None = None

    def to_message(self) -> Message:
        """The assistant turn to append to the history for the next request."""
        parts: list[ContentPart] = [*self.thinking]
        if self.content:
            parts.append(TextPart(text=self.content))
        content: str | list[ContentPart] = parts if self.thinking else self.content
        return Message(role="assistant", content=content, tool_calls=list(self.tool_calls))


class EmbeddingRequest(_Value, kw_only=True):
    """Texts to turn into vectors.

    ``input`` holds strings, or token arrays where the API takes them
    (OpenAI's); ``model`` is an address, then the bare id, as in
    :class:`ChatRequest`. ``dimensions`` asks for shorter vectors where the
    model can give them. ``vendor`` and ``extra`` work as in :class:`ChatRequest`.
    """

    model: str
    input: list[str | list[int]]
    dimensions: int | None = None
    vendor: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


class EmbeddingResponse(_Value, kw_only=True):
    """One vector per input, in the order of the inputs; ``usage.input_tokens`` where known."""

    model: str
    embeddings: list[list[float]]
    usage: Usage = msgspec.field(default_factory=Usage)


class ModelPrices(_Value, kw_only=True):
    """Prices in US dollars per million tokens; ``None`` where unknown."""

    input: float | None = None
    output: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None


class Capabilities(_Value, kw_only=True):
    tools: bool = True
    vision: bool = False
    reasoning: bool = False
    prompt_cache: bool = False
    streaming: bool = True


class ModelInfo(_Value, kw_only=True):
    """A model one connection offers. Its address is ``connection/id``."""

    id: str
    connection: str
    name: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    prices: ModelPrices = msgspec.field(default_factory=ModelPrices)
    capabilities: Capabilities = msgspec.field(default_factory=Capabilities)

    @property
    def address(self) -> str:
        return f"{self.connection}/{self.id}"
