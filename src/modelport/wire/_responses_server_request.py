"""A Responses API request → :class:`~modelport.types.ChatRequest` (server side).

:mod:`modelport.wire.openai_responses_server` re-exports :func:`parse_request`
and :class:`ToolNames`; its docstring lists the choices made here.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Literal

import msgspec

from modelport.errors import InvalidRequestError
from modelport.types import (
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    Reasoning,
    RedactedThinkingPart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from modelport.wire._json import convert_request, request_object, whole_number
from modelport.wire._limits import ModelName, Probability, Temperature, TokenCount
from modelport.wire._responses_request import VENDOR

__all__ = ["ITEM_KINDS", "REDACTED_PREFIX", "ROUTE_FIELDS", "ToolNames", "parse_request"]

logger = logging.getLogger("modelport.wire")

#: Marks a reasoning item's ``encrypted_content`` that holds an Anthropic
#: redacted-thinking block (the gateway's own encoding, never an upstream's).
REDACTED_PREFIX = "modelport-redacted:"

#: Fields the gateway itself acts on, never sent upstream.
ROUTE_FIELDS = frozenset(
    {"stream", "stream_options", "previous_response_id", "store", "background", "conversation"}
)
#: Fields with a canonical home (read here, not passed on as they are).
_CANONICAL = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "max_output_tokens",
        "metadata",
    }
)
_EFFORTS = ("minimal", "low", "medium", "high")
#: Responses-only fields that mean the same in Chat Completions.
_CHAT_FIELDS = ("user", "safety_identifier")
#: Flat tool names stay within what every API accepts (OpenAI Chat Completions: 64).
_MAX_NAME = 64

Kind = Literal["function", "custom"]


class ToolNames:
    """The function tools of a request, flattened, and the way back.

    A ``namespace`` tool groups functions: each becomes a function named
    ``<namespace>__<name>`` (shortened with a hash past 64 characters), and
    :meth:`original` gives the namespace and name back for the answer. A
    ``custom`` tool (free-form text input) becomes a function taking
    ``{"input": string}``; :meth:`original` says it was custom.
    """

    def __init__(self) -> None:
        self._originals: dict[str, tuple[str | None, str, Kind]] = {}
        self._flat: dict[tuple[str | None, str], str] = {}

    def add(self, namespace: str | None, name: str, kind: Kind) -> str:
        flat = name if namespace is None else f"{namespace}__{name}"
        if len(flat) > _MAX_NAME:
            digest = hashlib.sha256(flat.encode()).hexdigest()[:8]
            flat = f"{flat[: _MAX_NAME - 9]}_{digest}"
        self._originals[flat] = (namespace, name, kind)
        self._flat[(namespace, name)] = flat
        return flat

    def flat(self, namespace: str | None, name: str) -> str:
        """The canonical name of ``namespace``'s ``name`` (unknown ones: as a new tool would be)."""
        known = self._flat.get((namespace, name))
        if known is not None:
            return known
        return name if namespace is None else f"{namespace}__{name}"

    def original(self, flat: str) -> tuple[str | None, str, Kind]:
        """``(namespace, name, kind)`` of a canonical tool name; unknown ones are functions."""
        return self._originals.get(flat, (None, flat, "function"))

    @classmethod
    def of(cls, tools: Any) -> ToolNames:
        """The names of the function, custom and namespace tools in a request's ``tools``."""
        names = cls()
        for tool in tools if isinstance(tools, list) else ():
            if not isinstance(tool, dict):
                continue
            kind = tool.get("type")
            if kind in ("function", "custom") and isinstance(tool.get("name"), str):
                names.add(None, tool["name"], kind)
            elif kind == "namespace" and isinstance(tool.get("name"), str):
                for inner in tool.get("tools") or ():
                    if isinstance(inner, dict) and inner.get("type") in ("function", "custom"):
                        names.add(tool["name"], str(inner.get("name")), inner["type"])
        return names


# --- shapes --------------------------------------------------------------------


class _Function(msgspec.Struct, tag="function", tag_field="type"):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class _Custom(msgspec.Struct, tag="custom", tag_field="type"):
    name: str
    description: str | None = None


class _Namespace(msgspec.Struct, tag="namespace", tag_field="type"):
    name: str
    tools: list[_Function | _Custom]
    description: str | None = None


#: Item types that are read (or refused); any other names the record of a hosted tool's
#: call, dropped. The OpenAPI document lists them.
ITEM_KINDS = frozenset(
    {
        "message",
        "function_call",
        "custom_tool_call",
        "function_call_output",
        "custom_tool_call_output",
        "reasoning",
        "item_reference",
    }
)


class _Part(msgspec.Struct):
    type: str
    text: str | None = None
    refusal: str | None = None
    image_url: str | None = None


class _MessageItem(msgspec.Struct):
    role: str
    content: str | list[_Part]


class _CallItem(msgspec.Struct):
    call_id: str
    name: str
    arguments: str | None = None
    input: str | None = None
    namespace: str | None = None


class _OutputItem(msgspec.Struct):
    call_id: str
    output: str | list[_Part] | None = None


class _ReasoningItem(msgspec.Struct):
    summary: list[_Part] | None = None
    content: list[_Part] | None = None
    encrypted_content: str | None = None


class _Request(msgspec.Struct):
    model: ModelName
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    max_output_tokens: TokenCount | None = None
    metadata: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    # Read by the route; declared so that a value of the wrong type is refused here.
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    include: list[str] | None = None


# --- parsing --------------------------------------------------------------------


def parse_request(body: Any) -> ChatRequest:
    """A ``POST /v1/responses`` body (bytes, str or parsed) → a :class:`ChatRequest`.

    ``previous_response_id`` and ``store`` are the route's: the conversation
    they name is added by the gateway, not here.
    """
    data = request_object(body)
    request: _Request = convert_request(data, _Request)
    names = ToolNames.of(request.tools)
    tools, hosted = _tools(request.tools or [], names)
    if not request.input and request.previous_response_id is None:
        raise InvalidRequestError(
            "'input' must be a text or hold at least one item (or continue a response: "
            "previous_response_id)"
        )
    messages: list[Message] = []
    if request.instructions:
        messages.append(Message(role="system", content=request.instructions))
    if isinstance(request.input, str):
        if request.input:
            messages.append(Message(role="user", content=request.input))
    elif request.input:
        messages.extend(_items(request.input, names))

    passthrough = {
        key: value
        for key, value in data.items()
        if key not in ROUTE_FIELDS and key not in _CANONICAL and value is not None
    }
    chat: dict[str, Any] = {key: data[key] for key in _CHAT_FIELDS if data.get(key) is not None}
    if tools and request.parallel_tool_calls is not None:
        chat["parallel_tool_calls"] = request.parallel_tool_calls
    if hosted:
        passthrough["tools"] = hosted
    choice = _tool_choice(request.tool_choice, names)
    if choice is None and request.tool_choice is not None:
        passthrough["tool_choice"] = request.tool_choice  # allowed_tools, a hosted tool
    reasoning = _reasoning(request.reasoning, chat)
    max_tokens = whole_number(request.max_output_tokens, "max_output_tokens")
    vendor = {VENDOR: passthrough} if passthrough else {}
    if chat:
        vendor["openai"] = chat
    return ChatRequest(
        model=request.model,
        messages=messages,
        tools=tools,
        tool_choice=choice,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=max_tokens,
        response_format=_response_format(request.text),
        reasoning=reasoning,
        metadata=request.metadata,
        vendor=vendor,
    )


def _reasoning(reasoning: dict[str, Any] | None, chat: dict[str, Any]) -> Reasoning | None:
    effort = (reasoning or {}).get("effort")
    if effort in _EFFORTS:
        return Reasoning(effort=effort)
    if isinstance(effort, str):
        chat["reasoning_effort"] = effort  # "none", "xhigh": Chat Completions knows them
    return None


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format")
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_schema":
        schema = {key: value for key, value in fmt.items() if key != "type"}
        return {"type": "json_schema", "json_schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def _tools(
    tools: list[dict[str, Any]], names: ToolNames
) -> tuple[list[ToolDefinition], list[dict[str, Any]]]:
    out: list[ToolDefinition] = []
    hosted: list[dict[str, Any]] = []
    for position, tool in enumerate(tools):
        kind = tool.get("type")
        where = f"tools[{position}]"
        if not isinstance(kind, str) or not kind:
            raise InvalidRequestError(
                f"Invalid request: every tool needs a `type` - at `$.{where}`"
            )
        if kind == "function":
            out.append(_function(convert_request(tool, _Function, where), None, names))
        elif kind == "custom":
            out.append(_custom(convert_request(tool, _Custom, where), None, names))
        elif kind == "namespace":
            group: _Namespace = convert_request(tool, _Namespace, where)
            if not group.name:
                raise InvalidRequestError(
                    f"Invalid request: a namespace needs a name - at `$.{where}`"
                )
            for inner in group.tools:
                if isinstance(inner, _Function):
                    out.append(_function(inner, group.name, names))
                else:
                    out.append(_custom(inner, group.name, names))
        else:
            # A hosted tool (web_search, file_search, mcp …): only a Responses upstream runs it.
            hosted.append(tool)
    return out, hosted


def _function(tool: _Function, namespace: str | None, names: ToolNames) -> ToolDefinition:
    if not tool.name:
        raise InvalidRequestError("Every function tool needs a name")
    fields: dict[str, Any] = {"description": tool.description or "", "strict": tool.strict}
    if tool.parameters is not None:
        fields["parameters"] = tool.parameters
    return ToolDefinition(name=names.flat(namespace, tool.name), **fields)


def _custom(tool: _Custom, namespace: str | None, names: ToolNames) -> ToolDefinition:
    if not tool.name:
        raise InvalidRequestError("Every custom tool needs a name")
    return ToolDefinition(
        name=names.flat(namespace, tool.name),
        description=tool.description or "",
        parameters={
            "type": "object",
            "properties": {"input": {"type": "string", "description": "The tool's input text."}},
            "required": ["input"],
        },
    )


def _tool_choice(value: str | dict[str, Any] | None, names: ToolNames) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise InvalidRequestError(
                f"tool_choice must be auto, none, required or a tool, not {value!r}"
            )
        return ToolChoice(mode=value)  # type: ignore[arg-type]
    if value.get("type") in ("function", "custom") and isinstance(value.get("name"), str):
        return ToolChoice.tool(names.flat(value.get("namespace"), value["name"]))
    return None


# --- input items ---------------------------------------------------------------


def _items(items: list[dict[str, Any]], names: ToolNames) -> list[Message]:
    """Input items → messages; an assistant's reasoning, text and calls join one turn."""
    out: list[Message] = []
    turn: _Turn | None = None
    for position, item in enumerate(items):
        where = f"input[{position}]"
        if not isinstance(item, dict):
            raise InvalidRequestError(f"Invalid request: Expected `object` - at `$.{where}`")
        kind = item["type"] if "type" in item else ("message" if "role" in item else None)
        if not isinstance(kind, str) or not kind:
            raise InvalidRequestError(
                f"Invalid request: an input item needs a `type` (or a `role`) - at `$.{where}`"
            )
        if kind == "message" and item.get("role") == "assistant":
            turn = turn or _Turn()
            turn.text(convert_request(item, _MessageItem, where), where)
        elif kind in ("function_call", "custom_tool_call"):
            turn = turn or _Turn()
            turn.call(convert_request(item, _CallItem, where), names)
        elif kind == "reasoning":
            if turn is not None and (turn.texts or turn.calls):
                out.append(turn.message())  # reasoning begins the next step of the turn
                turn = None
            turn = turn or _Turn()
            turn.reasoning(convert_request(item, _ReasoningItem, where))
        else:
            if turn is not None:
                out.append(turn.message())
                turn = None
            message = _other_item(kind, item, where)
            if message is not None:
                out.append(message)
    if turn is not None:
        out.append(turn.message())
    return out


class _Turn:
    """One assistant turn being gathered from consecutive output items."""

    def __init__(self) -> None:
        self.thinking: list[ContentPart] = []
        self.texts: list[str] = []
        self.calls: list[ToolCall] = []

    def text(self, item: _MessageItem, where: str) -> None:
        content = _content(item.content, where)
        if isinstance(content, str):
            self.texts.append(content)
            return
        self.texts.extend(part.text for part in content if isinstance(part, TextPart))

    def call(self, item: _CallItem, names: ToolNames) -> None:
        if item.input is not None and item.arguments is None:  # a custom tool's call
            arguments = msgspec.json.encode({"input": item.input}).decode()
        else:
            arguments = item.arguments or "{}"
        name = names.flat(item.namespace, item.name)
        self.calls.append(ToolCall(id=item.call_id, name=name, arguments=arguments))

    def reasoning(self, item: _ReasoningItem) -> None:
        encrypted = item.encrypted_content
        if encrypted is not None and encrypted.startswith(REDACTED_PREFIX):
            self.thinking.append(RedactedThinkingPart(data=encrypted[len(REDACTED_PREFIX) :]))
            return
        text = "\n\n".join(p.text for p in (item.summary or item.content or []) if p.text)
        if text or encrypted:
            self.thinking.append(ThinkingPart(text=text, signature=encrypted))

    def message(self) -> Message:
        text = "".join(self.texts)
        content: str | list[ContentPart] = text
        if self.thinking:
            content = [*self.thinking, *([TextPart(text=text)] if text else [])]
        return Message(role="assistant", content=content, tool_calls=self.calls)


def _other_item(kind: str | None, item: dict[str, Any], where: str) -> Message | None:
    if kind == "message":
        message: _MessageItem = convert_request(item, _MessageItem, where)
        role = message.role
        if role == "developer":
            role = "system"
        if role not in ("system", "user"):
            raise InvalidRequestError(
                f"{where}: role must be user, assistant, system or developer, not {role!r}"
            )
        return Message(role=role, content=_content(message.content, where))  # type: ignore[arg-type]
    if kind in ("function_call_output", "custom_tool_call_output"):
        output: _OutputItem = convert_request(item, _OutputItem, where)
        content = "" if output.output is None else _content(output.output, where)
        return Message(role="tool", tool_call_id=output.call_id, content=content)
    if kind == "item_reference":
        raise InvalidRequestError(
            f"{where}: item_reference needs items this gateway does not keep; send the items "
            "themselves, or continue with previous_response_id"
        )
    # The record of a hosted tool's call (web_search_call …): it has no canonical form.
    logger.debug("Responses input: dropped a %r item, which has no meaning here", kind)
    return None


def _content(content: str | list[_Part], where: str) -> str | list[ContentPart]:
    if isinstance(content, str):
        return content
    parts: list[ContentPart] = []
    for part in content:
        if part.type in ("input_text", "output_text", "text", "summary_text"):
            parts.append(TextPart(text=part.text or ""))
        elif part.type == "refusal":
            parts.append(TextPart(text=part.refusal or ""))
        elif part.type == "input_image":
            if not part.image_url:
                raise InvalidRequestError(f"{where}: an input_image needs an image_url")
            parts.append(_image(part.image_url))
        else:
            raise InvalidRequestError(
                f"{where}: content of type {part.type!r} is not supported by this gateway"
            )
    return parts


def _image(url: str) -> ImagePart:
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        if comma and header.endswith(";base64"):
            return ImagePart(data=data, media_type=header[: -len(";base64")] or None)
    return ImagePart(url=url)
