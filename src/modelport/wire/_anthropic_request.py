"""Canonical request → Messages API body; :mod:`modelport.wire.anthropic_messages` re-exports it.

The choices made here are listed in that module's docstring.
"""

from __future__ import annotations

from typing import Any

import msgspec

from modelport.errors import InvalidRequestError
from modelport.types import (
    ChatRequest,
    ImagePart,
    Message,
    RedactedThinkingPart,
    TextPart,
    ThinkingPart,
    ToolDefinition,
)
from modelport.wire._vendor import note_unsent

__all__ = ["DEFAULT_MAX_TOKENS", "EFFORT_BUDGETS", "build_request"]

#: ``max_tokens`` is required by the Messages API; this is what we send when unset.
DEFAULT_MAX_TOKENS = 4096

#: Thinking budget for each reasoning effort (1024 is the API's minimum).
EFFORT_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}

_EPHEMERAL = {"type": "ephemeral"}


def build_request(
    request: ChatRequest, *, stream: bool, system_in_place: bool = False
) -> dict[str, Any]:
    """The ``POST /v1/messages`` body for ``request`` (``request.model`` is the bare id).

    ``system_in_place`` keeps a system message that follows other messages where
    it is (``role: "system"`` in ``messages``), as the API does with the
    ``mid-conversation-system-2026-04-07`` beta; without it every system message
    joins the top-level ``system``.
    """
    note_unsent(request, "anthropic")
    vendor = dict(request.vendor.get("anthropic", {}))
    body: dict[str, Any] = {"model": request.model}
    leading = _leading_system(request.messages) if system_in_place else len(request.messages)
    system = _system(request.messages[:leading])
    if system is not None:
        body["system"] = system
    body["messages"] = _messages(request.messages, leading)
    max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
    # A client's own thinking object (adaptive, display …) or effort travels as sent: the
    # canonical reasoning was read from it, and adding a budget of ours would change it.
    own_effort = (
        isinstance(vendor.get("output_config"), dict) and "effort" in vendor["output_config"]
    )
    if request.reasoning is not None and "thinking" not in vendor and not own_effort:
        budget = request.reasoning.budget_tokens or EFFORT_BUDGETS.get(
            request.reasoning.effort or "medium", EFFORT_BUDGETS["medium"]
        )
        if max_tokens <= budget:
            max_tokens += budget
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    body["max_tokens"] = max_tokens
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
    if request.tool_choice is not None:
        choice = request.tool_choice
        if choice.mode == "tool":
            if not choice.name:
                raise InvalidRequestError("tool_choice 'tool' needs the name of a tool")
            body["tool_choice"] = {"type": "tool", "name": choice.name}
        else:
            body["tool_choice"] = {"type": "any" if choice.mode == "required" else choice.mode}
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.metadata and request.metadata.get("user_id") is not None:
        body["metadata"] = {"user_id": request.metadata["user_id"]}
    if stream:
        body["stream"] = True
    if "tools" in vendor and "tools" in body:
        # Server tools (code execution, web search) ride in vendor["anthropic"]["tools"];
        # they join the client's tools rather than replace them.
        body["tools"] = [*vendor.pop("tools"), *body["tools"]]
    body.update(vendor)
    body.update(request.extra)
    return body


def _leading_system(messages: list[Message]) -> int:
    """How many system messages open the conversation."""
    for position, message in enumerate(messages):
        if message.role != "system":
            return position
    return len(messages)


def _system(messages: list[Message]) -> str | list[dict[str, Any]] | None:
    blocks: list[dict[str, Any]] = []
    cached = False
    for message in messages:
        if message.role != "system":
            continue
        start = len(blocks)
        for part in message.parts:
            if isinstance(part, TextPart) and part.text:
                block: dict[str, Any] = {"type": "text", "text": part.text}
                if part.cache:
                    block["cache_control"] = _EPHEMERAL
                    cached = True
                blocks.append(block)
        if message.cache and len(blocks) > start:
            blocks[-1]["cache_control"] = _EPHEMERAL
            cached = True
    if not blocks:
        return None
    if cached:
        return blocks
    return "\n\n".join(block["text"] for block in blocks)


def _messages(messages: list[Message], in_place_from: int) -> list[dict[str, Any]]:
    """Alternating user/assistant turns: tool results and same-role turns merge.

    System messages from ``in_place_from`` on stay where they are.
    """
    out: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        if message.role == "system":
            content = _system([message]) if position >= in_place_from else None
            if content is not None:
                out.append({"role": "system", "content": content})
            continue
        role = "assistant" if message.role == "assistant" else "user"
        content = _content(message)
        if not content:
            continue
        if out and out[-1]["role"] == role:
            previous = out[-1]
            if isinstance(previous["content"], str):
                previous["content"] = [{"type": "text", "text": previous["content"]}]
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            previous["content"].extend(content)
        else:
            out.append({"role": role, "content": content})
    return out


def _content(message: Message) -> str | list[dict[str, Any]]:
    if message.role == "tool":
        return [_tool_result(message)]
    if message.role == "user" and isinstance(message.content, str) and not message.cache:
        return message.content
    blocks: list[dict[str, Any]] = []
    if message.role == "assistant":
        # Thinking must come first, exactly as received, or Anthropic rejects the turn. It
        # also rejects thinking without a signature (another vendor's model wrote it): dropped.
        for part in message.parts:
            if isinstance(part, ThinkingPart):
                if part.signature:
                    blocks.append(
                        {"type": "thinking", "thinking": part.text, "signature": part.signature}
                    )
            elif isinstance(part, RedactedThinkingPart):
                blocks.append({"type": "redacted_thinking", "data": part.data})
    for part in message.parts:
        if isinstance(part, TextPart | ImagePart):
            block = _part(part)
            if block is not None:
                blocks.append(block)
    for call in message.tool_calls:
        try:
            arguments = call.parsed_arguments()
        except msgspec.DecodeError as exc:
            raise InvalidRequestError(
                f"The arguments of tool call {call.id!r} ({call.name}) are not valid JSON: "
                f"{call.arguments[:200]!r}"
            ) from exc
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    if message.cache and blocks:
        blocks[-1]["cache_control"] = _EPHEMERAL
    return blocks


def _part(part: TextPart | ImagePart) -> dict[str, Any] | None:
    block: dict[str, Any]
    if isinstance(part, TextPart):
        if not part.text:
            return None  # the API rejects empty text blocks
        block = {"type": "text", "text": part.text}
    elif part.data is not None:
        block = {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": part.media_type or "image/png",
                "data": part.data,
            },
        }
    elif part.url is not None:
        block = {"type": "image", "source": {"type": "url", "url": part.url}}
    else:
        raise InvalidRequestError("An image part needs either a url or base64 data")
    if part.cache:
        block["cache_control"] = _EPHEMERAL
    return block


def _tool_result(message: Message) -> dict[str, Any]:
    if not message.tool_call_id:
        raise InvalidRequestError("A tool message needs the tool_call_id of the call it answers")
    content: str | list[dict[str, Any]]
    if isinstance(message.content, str):
        content = message.content
    else:
        content = [
            block
            for part in message.content
            if isinstance(part, TextPart | ImagePart) and (block := _part(part)) is not None
        ]
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": message.tool_call_id,
        "content": content,
    }
    if message.cache:
        block["cache_control"] = _EPHEMERAL
    return block


def _tool(tool: ToolDefinition) -> dict[str, Any]:
    block: dict[str, Any] = {
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.parameters,
    }
    if tool.strict:
        # false is the API's default; leaving it out suits servers that do not know the key.
        block["strict"] = True
    if tool.cache:
        block["cache_control"] = _EPHEMERAL
    return block
