"""What :mod:`modelport.wire.openai_chat_server` reads from OpenAI clients.

Strict shapes (unlike the lenient upstream ones in ``_openai_shapes``): a field
of the wrong type is the client's mistake, reported as ``InvalidRequestError``.
Fields that are not declared are ignored here; ``parse_request`` passes them on
in ``vendor["openai"]``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from modelport.wire._limits import ModelName, Probability, Temperature, TokenBudget, TokenCount

#: A penalty (``presence_penalty``, ``frequency_penalty``): -2 to 2.
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
# Integers a JSON Schema ``integer`` may also write with a fraction (``5.0``).
Int64 = (
    Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
    | Annotated[float, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
)
Choices = Annotated[int, msgspec.Meta(ge=1, le=128)] | Annotated[float, msgspec.Meta(ge=1, le=128)]
TopLogprobs = (
    Annotated[int, msgspec.Meta(ge=0, le=20)] | Annotated[float, msgspec.Meta(ge=0, le=20)]
)


class Shape(msgspec.Struct, frozen=True):
    pass


class TextPartIn(Shape, tag="text", tag_field="type"):
    text: str


class ImageUrl(Shape):
    url: str
    detail: str | None = None


class ImagePartIn(Shape, tag="image_url", tag_field="type"):
    image_url: ImageUrl | str


class RefusalPartIn(Shape, tag="refusal", tag_field="type"):
    refusal: str


PartIn = TextPartIn | ImagePartIn | RefusalPartIn
ContentIn = str | list[PartIn]


class FunctionIn(Shape):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(Shape):
    id: str
    function: FunctionIn
    type: Literal["function"] = "function"


class SystemIn(Shape, tag="system", tag_field="role"):
    content: ContentIn
    name: str | None = None


class DeveloperIn(SystemIn, tag="developer", tag_field="role"):
    pass


class UserIn(Shape, tag="user", tag_field="role"):
    content: ContentIn
    name: str | None = None


class ThinkingBlockIn(Shape, tag="thinking", tag_field="type"):
    """A signed thinking block handed back (LiteLLM's ``thinking_blocks`` entry)."""

    thinking: str = ""
    signature: str | None = None


class RedactedThinkingBlockIn(Shape, tag="redacted_thinking", tag_field="type"):
    data: str


class AssistantIn(Shape, tag="assistant", tag_field="role"):
    content: ContentIn | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    function_call: FunctionIn | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    # The gateway's extension (LiteLLM's name and shape): signed blocks to send back.
    thinking_blocks: list[ThinkingBlockIn | RedactedThinkingBlockIn] | None = None


class ToolMessageIn(Shape, tag="tool", tag_field="role"):
    content: ContentIn
    tool_call_id: str


class FunctionMessageIn(Shape, tag="function", tag_field="role"):
    name: str
    content: str | None = None


MessageIn = SystemIn | DeveloperIn | UserIn | AssistantIn | ToolMessageIn | FunctionMessageIn


class FunctionDefIn(Shape):
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefIn(FunctionDefIn):
    """Both ``{"type": "function", "function": {...}}`` and the flat ``{"name", ...}``."""

    type: Literal["function"] | None = None
    function: FunctionDefIn | None = None


class ChoiceFunctionIn(Shape):
    name: str | None = None


class NamedChoiceIn(Shape):
    """``{"type": "function", "function": {"name": ...}}``, or the legacy ``{"name": ...}``."""

    type: Literal["function"] | None = None
    function: ChoiceFunctionIn | None = None
    name: str | None = None


class ReasoningIn(Shape):
    """OpenRouter's ``reasoning`` object."""

    effort: str | None = None
    max_tokens: TokenBudget | None = None


class StreamOptionsIn(Shape):
    include_usage: bool | None = None


class RequestIn(Shape):
    model: ModelName
    messages: list[MessageIn]
    tools: list[ToolDefIn] | None = None
    tool_choice: str | NamedChoiceIn | None = None
    functions: list[ToolDefIn] | None = None
    function_call: str | NamedChoiceIn | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    # Counts are ``int | float``: 1024.0 is read as 1024 (``_json.whole_number``).
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    reasoning: ReasoningIn | None = None
    metadata: dict[str, Any] | None = None
    stream: bool | None = None
    stream_options: StreamOptionsIn | None = None
    # Read only to check their ranges; they travel in ``vendor["openai"]`` as sent.
    seed: Int64 | None = None
    n: Choices | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    top_logprobs: TopLogprobs | None = None
