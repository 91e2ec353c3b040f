"""Canonical request → Responses API body; :mod:`modelport.wire.openai_responses` re-exports it.

Choices made here:

* Messages become input items in place: ``system`` messages stay where they
  are (``role: "system"``), a user's images become ``input_image`` parts, an
  assistant turn becomes its reasoning items, then its text, then one
  ``function_call`` item per call; a ``tool`` message becomes a
  ``function_call_output``.
* A thinking part goes back only with a signature: that is the reasoning
  item's ``encrypted_content`` this API sent (the id is left out, as it must
  be with ``store: false``). Unsigned and redacted thinking came from another
  vendor's model and has no form here.
* ``store`` is ``false`` and ``include`` asks for
  ``reasoning.encrypted_content``: the conversation lives with the caller,
  and reasoning round-trips through the signature. ``vendor["openai-responses"]``
  (what a Responses client sent that has no canonical field: ``include``,
  ``store``, ``prompt_cache_key``, ``reasoning`` with its ``summary`` …)
  replaces these defaults; its ``tools`` (hosted tools such as
  ``web_search``) join the function tools.
* Function tools say ``strict`` explicitly: the Responses API makes them
  strict unless told otherwise, which refuses most hand-written schemas.
* ``response_format`` becomes ``text.format`` (its ``json_schema`` object
  flattened into it); a token budget alone becomes the nearest effort.
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
    ThinkingPart,
    ToolChoice,
    ToolDefinition,
)
from modelport.wire._openai_request import effort_for_budget
from modelport.wire._vendor import note_unsent

__all__ = ["VENDOR", "build_request"]

#: The key of ``ChatRequest.vendor`` this format reads (its compat name).
VENDOR = "openai-responses"


def build_request(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The ``POST /responses`` body for ``request`` (whose ``model`` is the bare id)."""
    note_unsent(request, VENDOR)
    body: dict[str, Any] = {"model": request.model, "input": _input(request.messages)}
    vendor = dict(request.vendor.get(VENDOR, {}))
    tools = [_tool(tool) for tool in request.tools]
    hosted = vendor.pop("tools", None)
    if isinstance(hosted, list):
        tools.extend(hosted)
    if tools:
        body["tools"] = tools
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    effort = _effort(request.reasoning)
    if effort is not None:
        body["reasoning"] = {"effort": effort}
    if request.response_format is not None:
        body["text"] = {"format": _text_format(request.response_format)}
    body["store"] = False
    body["include"] = ["reasoning.encrypted_content"]
    if stream:
        body["stream"] = True
    body.update(vendor)
    body.update(request.extra)
    return body


def _effort(reasoning: Reasoning | None) -> str | None:
    if reasoning is None:
        return None
    if reasoning.effort is not None:
        return reasoning.effort
    if reasoning.budget_tokens is not None:
        return effort_for_budget(reasoning.budget_tokens)
    return None


def _text_format(response_format: dict[str, Any]) -> dict[str, Any]:
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema")
        if isinstance(schema, dict):
            return {"type": "json_schema", **schema}
    return dict(response_format)


def _input(messages: list[Message]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            items.append(_tool_output(message))
        elif message.role == "assistant":
            items.extend(_assistant(message))
        else:
            items.append({"role": message.role, "content": _content(message.content)})
    return items


def _content(content: str | list[ContentPart]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "input_text", "text": part.text})
        elif isinstance(part, ImagePart):
            parts.append({"type": "input_image", "image_url": _image_url(part)})
    if len(parts) == 1 and parts[0]["type"] == "input_text":
        return str(parts[0]["text"])
    return parts


def _image_url(part: ImagePart) -> str:
    if part.url is not None:
        return part.url
    if part.data is None:
        raise InvalidRequestError("An image part needs either a url or base64 data")
    return f"data:{part.media_type or 'image/png'};base64,{part.data}"


def _assistant(message: Message) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ThinkingPart) and part.signature:
            summary = [{"type": "summary_text", "text": part.text}] if part.text else []
            items.append(
                {"type": "reasoning", "summary": summary, "encrypted_content": part.signature}
            )
    text = message.text
    if text:
        items.append({"role": "assistant", "content": text})
    for call in message.tool_calls:
        items.append(
            {
                "type": "function_call",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
            }
        )
    return items


def _tool_output(message: Message) -> dict[str, Any]:
    if not message.tool_call_id:
        raise InvalidRequestError("A tool message needs the tool_call_id of the call it answers")
    content = _content(message.content)
    return {"type": "function_call_output", "call_id": message.tool_call_id, "output": content}


def _tool(tool: ToolDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["parameters"] = tool.parameters
    out["strict"] = bool(tool.strict)
    return out


def _tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.mode == "tool":
        return {"type": "function", "name": choice.name}
    return choice.mode
