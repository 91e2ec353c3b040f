"""Canonical request → Chat Completions body; :mod:`modelport.wire.openai_chat` re-exports it.

The choices made here are listed under **Request** in that module's docstring.
"""

from __future__ import annotations

from typing import Any

from modelport.errors import InvalidRequestError
from modelport.types import (
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    Reasoning,
    TextPart,
    ToolChoice,
    ToolDefinition,
)
from modelport.wire._vendor import note_unsent

__all__ = ["build_request", "effort_for_budget"]

_IMAGE_MAGIC = (
    ("iVBORw0KGgo", "image/png"),
    ("/9j/", "image/jpeg"),
    ("R0lGOD", "image/gif"),
    ("UklGR", "image/webp"),
)


def build_request(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The ``/chat/completions`` body for ``request`` (whose ``model`` is the bare id)."""
    note_unsent(request, "openai")
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(message) for message in request.messages],
    }
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.stop:
        body["stop"] = list(request.stop)
    if request.response_format is not None:
        body["response_format"] = request.response_format
    effort = _effort(request.reasoning)
    if effort is not None:
        body["reasoning_effort"] = effort
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    vendor = request.vendor.get("openai", {})
    if vendor.get("max_completion_tokens") is not None:
        # Reasoning models refuse max_tokens; a client that chose the new name keeps it.
        body.pop("max_tokens", None)
    body.update(vendor)
    body.update(request.extra)
    return body


def effort_for_budget(budget_tokens: int) -> str | None:
    """The ``reasoning_effort`` nearest a thinking budget; ``None`` for a budget of 0.

    The thresholds sit between the budgets the Anthropic adapter sends for each
    effort (2048, 8192, 16384), so low, medium and high survive the trip both
    ways. ``minimal`` is never chosen: several servers reject it.
    """
    if budget_tokens <= 0:
        return None
    if budget_tokens < 4096:
        return "low"
    if budget_tokens < 12288:
        return "medium"
    return "high"


def _effort(reasoning: Reasoning | None) -> str | None:
    if reasoning is None:
        return None
    if reasoning.effort is not None:
        return reasoning.effort
    if reasoning.budget_tokens is not None:
        return effort_for_budget(reasoning.budget_tokens)
    return None


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    content = _content(message.content)
    if message.role == "assistant" and message.tool_calls:
        out["content"] = content or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    else:
        out["content"] = content
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidRequestError(
                "A tool message needs the tool_call_id of the call it answers"
            )
        out["tool_call_id"] = message.tool_call_id
    elif message.name:
        out["name"] = message.name
    return out


def _content(content: str | list[ContentPart]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        match part:
            case TextPart(text=text):
                parts.append({"type": "text", "text": text})
            case ImagePart():
                parts.append({"type": "image_url", "image_url": {"url": _image_url(part)}})
            case _:
                # Thinking and redacted thinking: Chat Completions has no slot for them.
                continue
    if not parts:
        return ""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _image_url(part: ImagePart) -> str:
    if part.url is not None:
        return part.url
    if part.data is None:
        raise InvalidRequestError("An image part needs either a url or base64 data")
    media_type = part.media_type or next(
        (media for magic, media in _IMAGE_MAGIC if part.data.startswith(magic)), "image/png"
    )
    return f"data:{media_type};base64,{part.data}"


def _tool(tool: ToolDefinition) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode
