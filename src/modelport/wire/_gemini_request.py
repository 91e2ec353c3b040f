"""Canonical request → ``generateContent`` body; :mod:`modelport.wire.gemini` re-exports it.

The choices made here are listed under **Request** in that module's docstring.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

import msgspec

from modelport.errors import InvalidRequestError
from modelport.types import (
    ChatRequest,
    ImagePart,
    Message,
    Reasoning,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolChoice,
)
from modelport.wire._openai_request import _IMAGE_MAGIC

__all__ = ["EFFORT_BUDGETS", "SKIP_SIGNATURE", "build_request"]

#: ``thinkingBudget`` for each reasoning effort (the thresholds of
#: :func:`~modelport.wire.openai_chat.effort_for_budget` map them back).
EFFORT_BUDGETS: dict[str, int] = {"minimal": 512, "low": 2048, "medium": 8192, "high": 16384}

#: The value Google documents for a function call whose signature was never
#: given (a call written by another model, or by a client that dropped it):
#: Gemini 3 then skips its check instead of refusing the request.
SKIP_SIGNATURE = "skip_thought_signature_validator"

_MAJOR_VERSION = re.compile(r"gemini-(\d+)")
_DATA_URL = re.compile(r"^data:([^;,]+);base64,(.*)$", re.DOTALL)


def build_request(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The body for ``request`` (``request.model`` is the bare id).

    The same body serves ``generateContent`` and ``streamGenerateContent``:
    Gemini says which in the URL, so ``stream`` changes nothing here.
    """
    body: dict[str, Any] = {}
    system = [message.text for message in request.messages if message.role == "system"]
    if any(system):
        body["systemInstruction"] = {"parts": [{"text": text} for text in system if text]}
    body["contents"] = _contents(request.messages, validated=_validates_signatures(request.model))
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_function(tool) for tool in request.tools]}]
    if request.tool_choice is not None:
        body["toolConfig"] = {"functionCallingConfig": _calling_config(request.tool_choice)}
    config = _generation_config(request)
    vendor = dict(request.vendor.get("gemini", {}))
    config.update(vendor.pop("generationConfig", None) or {})
    if config:
        body["generationConfig"] = config
    body.update(vendor)
    body.update(request.extra)
    return body


def _validates_signatures(model: str) -> bool:
    """Whether the model refuses function calls without their signature (Gemini 3 on)."""
    found = _MAJOR_VERSION.search(model)
    return found is not None and int(found.group(1)) >= 3


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.response_format is not None:
        config.update(_response_format(request.response_format))
    if request.reasoning is not None:
        config["thinkingConfig"] = _thinking(request.reasoning)
    return config


def _thinking(reasoning: Reasoning) -> dict[str, Any]:
    budget = reasoning.budget_tokens
    if budget is None:
        budget = EFFORT_BUDGETS.get(reasoning.effort or "medium", EFFORT_BUDGETS["medium"])
    # A budget of 0 turns thinking off; there are then no thoughts to include.
    return {"thinkingBudget": budget, "includeThoughts": budget != 0}


def _response_format(response_format: dict[str, Any]) -> dict[str, Any]:
    kind = response_format.get("type")
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema", spec) if isinstance(spec, dict) else spec
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    if kind in (None, "text"):
        return {}
    raise InvalidRequestError(f"Gemini cannot produce response_format {kind!r}")


def _function(tool: Any) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    # parametersJsonSchema takes JSON Schema as clients write it; `parameters`
    # takes only an OpenAPI subset and refuses additionalProperties, $defs …
    declaration["parametersJsonSchema"] = tool.parameters
    return declaration


def _calling_config(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "tool":
        if not choice.name:
            raise InvalidRequestError("tool_choice 'tool' needs the name of a tool")
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice.mode]}


# --- contents ----------------------------------------------------------------------


def _contents(messages: list[Message], *, validated: bool) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            part = _function_response(message, names)
            previous = contents[-1] if contents else None
            if previous is not None and previous.get("answers"):
                # Answers to one turn's parallel calls go back together, in one content.
                previous["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part], "answers": True})
            continue
        if message.role == "assistant":
            names.update((call.id, call.name) for call in message.tool_calls)
            parts = _model_parts(message, validated=validated)
        else:
            parts = [_user_part(part) for part in message.parts]
        if parts:
            contents.append(
                {"role": "model" if message.role == "assistant" else "user", "parts": parts}
            )
    for content in contents:
        content.pop("answers", None)
    return contents


def _user_part(part: Any) -> dict[str, Any]:
    match part:
        case TextPart(text=text):
            return {"text": text}
        case ImagePart():
            return _image(part)
        case ThinkingPart(text=text):
            return {"text": text}
        case _:
            # Redacted thinking is another vendor's ciphertext; nothing here can read it.
            return {"text": ""}


def _image(part: ImagePart) -> dict[str, Any]:
    if part.data is not None:
        media_type = part.media_type or next(
            (media for magic, media in _IMAGE_MAGIC if part.data.startswith(magic)), "image/png"
        )
        return {"inlineData": {"mimeType": media_type, "data": part.data}}
    if part.url is None:
        raise InvalidRequestError("An image part needs either a url or base64 data")
    inline = _DATA_URL.match(part.url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline.group(1), "data": inline.group(2)}}
    media_type = part.media_type or mimetypes.guess_type(part.url)[0] or "image/jpeg"
    return {"fileData": {"mimeType": media_type, "fileUri": part.url}}


class _ModelParts:
    """An assistant turn's parts, each thinking signature on the part that follows it."""

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.pending: str | None = None

    def add(self, part: dict[str, Any], signature: str | None = None) -> None:
        if self.pending is not None and signature is not None:
            # Two signatures cannot share a part: the earlier keeps an empty one of its own.
            self.parts.append({"text": "", "thoughtSignature": self.pending})
            self.pending = None
        signature = signature or self.pending
        self.pending = None
        if signature is not None:
            part["thoughtSignature"] = signature
        self.parts.append(part)

    def end(self) -> list[dict[str, Any]]:
        if self.pending is not None:
            self.parts.append({"text": "", "thoughtSignature": self.pending})
        return self.parts


def _model_parts(message: Message, *, validated: bool) -> list[dict[str, Any]]:
    out = _ModelParts()
    for part in message.parts:
        match part:
            case ThinkingPart(text=text, signature=signature):
                if text:
                    out.add({"text": text, "thought": True})
                if signature:
                    if out.pending is not None:
                        out.add({"text": ""})
                    out.pending = signature
            case TextPart(text=text):
                out.add({"text": text})
            case ImagePart():
                out.add(_image(part))
            case _:
                continue  # redacted thinking: Anthropic's, unreadable here
    signed = out.pending is not None or any(call.signature for call in message.tool_calls)
    for position, call in enumerate(message.tool_calls):
        signature = call.signature
        if position == 0 and validated and not signed:
            signature = SKIP_SIGNATURE
        out.add({"functionCall": {"name": call.name, "args": _arguments(call)}}, signature)
    return out.end()


def _arguments(call: ToolCall) -> Any:
    try:
        return msgspec.json.decode(call.arguments or "{}")
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(
            f"The arguments of tool call {call.name!r} are not valid JSON: {call.arguments[:200]!r}"
        ) from exc


def _function_response(message: Message, names: dict[str, str]) -> dict[str, Any]:
    name = message.name or names.get(message.tool_call_id or "")
    if not name:
        raise InvalidRequestError(
            f"The tool message answering {message.tool_call_id!r} names no function, and no "
            "earlier assistant message made that call: Gemini needs the function's name"
        )
    text = message.text
    try:
        result = msgspec.json.decode(text) if text.lstrip().startswith("{") else None
    except msgspec.DecodeError:
        result = None
    # An object goes as it is; anything else is the documented {"output": ...}.
    response = result if isinstance(result, dict) else {"output": text}
    return {"functionResponse": {"name": name, "response": response}}
