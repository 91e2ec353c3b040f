"""The Anthropic Messages API, server side: what the gateway says to Anthropic clients.

:func:`parse_request` reads a ``POST /v1/messages`` body into a
:class:`~modelport.types.ChatRequest`; :class:`StreamEncoder` writes canonical
events back as the server-sent events the official SDKs expect;
:func:`encode_response` and :func:`encode_error` do the same for whole bodies.

Choices this module makes where the API leaves room:

* ``tool_result`` blocks become ``tool`` messages, before any other content of
  the same user turn. ``is_error: true`` has no canonical field, so the result's
  text is prefixed with ``"Error: "``, which every model reads the same way.
* Settings only the Messages API knows (``top_k``, ``service_tier``,
  ``container``, ``mcp_servers``, ``context_management``, ``output_config``, a
  ``thinking`` that is more than a budget …) travel untouched in
  ``ChatRequest.vendor["anthropic"]``, so they reach an Anthropic upstream and
  no other (whose request builder says so at debug level).
* What has a meaning elsewhere is translated as well: a ``role: "system"``
  message in the middle of ``messages`` (the ``mid-conversation-system`` beta)
  is a system message in place; adaptive thinking and ``output_config.effort``
  are the canonical reasoning effort (``xhigh`` and ``max`` are ``high``;
  adaptive thinking without an effort is ``high``, the API's default);
  ``output_config.format`` (or the older ``output_format``) is a JSON-schema
  ``response_format``; ``metadata.user_id`` is OpenAI's ``user``.
* Anthropic-defined tools (a ``tools`` entry with a ``type`` such as
  ``web_search_20250305`` or ``bash_20250124``) go to ``vendor["anthropic"]``
  too, under ``tools``; a model behind any other API does not get them.
* Content blocks are read by their ``type``: each kind takes its own fields
  and ignores the rest (a ``data`` key on a text block is not an error), and
  a kind the canonical types cannot hold (``document``, ``search_result`` …)
  is refused by name. ``max_tokens: 1024.0`` is read as 1024.
* A thinking block that ends without a signature (the upstream was not
  Anthropic) is closed without a ``signature_delta``; its start carries
  ``"signature": ""`` as the SDKs require.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import msgspec

from modelport.errors import (
    AuthError,
    ContextTooLongError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    ParseError,
    PluginError,
    RateLimitError,
    UpstreamError,
)
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
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
    ImagePart,
    Message,
    ModelInfo,
    Reasoning,
    RedactedThinkingPart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    Usage,
)
from modelport.wire._json import convert_request, request_object, whole_number
from modelport.wire._limits import (
    MAX_TOKEN_COUNT,
    ModelName,
    Probability,
    TokenBudget,
    TokenCount,
    UnitTemperature,
)

__all__ = ["StreamEncoder", "encode_error", "encode_models", "encode_response", "parse_request"]


# --- request -------------------------------------------------------------


# Blocks are a union tagged by ``type``: each reads only its own fields, so a
# field that belongs to another kind of block is ignored like any unknown one.


class _Base64Source(msgspec.Struct, tag="base64", tag_field="type"):
    data: str
    media_type: str | None = None


class _UrlSource(msgspec.Struct, tag="url", tag_field="type"):
    url: str


class _Text(msgspec.Struct, tag="text", tag_field="type"):
    text: str
    cache_control: dict[str, Any] | None = None


class _Image(msgspec.Struct, tag="image", tag_field="type"):
    source: _Base64Source | _UrlSource
    cache_control: dict[str, Any] | None = None


class _Thinking(msgspec.Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str | None = None
    cache_control: dict[str, Any] | None = None


class _RedactedThinking(msgspec.Struct, tag="redacted_thinking", tag_field="type"):
    data: str
    cache_control: dict[str, Any] | None = None


class _ToolUse(msgspec.Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None


_Part = _Text | _Image | _Thinking | _RedactedThinking


class _ToolResult(msgspec.Struct, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[_Part] | None = None
    is_error: bool = False
    cache_control: dict[str, Any] | None = None


_Block = _Part | _ToolUse | _ToolResult


class _Message(msgspec.Struct):
    role: str
    content: str | list[_Block]


class _Tool(msgspec.Struct):
    name: str
    description: str = ""
    input_schema: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None
    type: str | None = None
    strict: bool | None = None


class _ToolChoice(msgspec.Struct):
    type: str
    name: str | None = None


class _Request(msgspec.Struct):
    model: ModelName
    max_tokens: TokenCount  # 1024.0 is read as 1024
    messages: list[_Message]
    system: str | list[_Text] | None = None
    tools: list[_Tool] | None = None
    tool_choice: _ToolChoice | None = None
    stop_sequences: list[str] | None = None
    temperature: UnitTemperature | None = None
    top_p: Probability | None = None
    thinking: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream: bool = False
    # Read only to check its range; it travels in ``vendor["anthropic"]`` as sent.
    top_k: TokenBudget | None = None


_KNOWN_FIELDS = frozenset(_Request.__struct_fields__) - {"top_k"}
_TOOL_CHOICES = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}
_EFFORTS: dict[str, Any] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}


def parse_request(body: Any) -> ChatRequest:
    """A Messages API request body (parsed JSON, or its bytes) → a :class:`ChatRequest`.

    Raises :class:`InvalidRequestError` with a message that names the bad field.
    ``stream`` is read by the route, not here.
    """
    body = request_object(body)
    request: _Request = convert_request(body, _Request)
    max_tokens = whole_number(request.max_tokens, "max_tokens")
    if max_tokens is None or max_tokens < 1:
        raise InvalidRequestError("max_tokens must be at least 1")
    if not request.messages:
        raise InvalidRequestError("messages must hold at least one message")

    vendor = {key: value for key, value in body.items() if key not in _KNOWN_FIELDS}
    budget = (request.thinking or {}).get("budget_tokens")
    if isinstance(budget, int) and not 0 <= budget <= MAX_TOKEN_COUNT:
        raise InvalidRequestError(f"thinking.budget_tokens must be between 0 and {MAX_TOKEN_COUNT}")
    reasoning = _reasoning(request.thinking, body.get("output_config"))
    if request.thinking is not None and not _plain_budget(request.thinking):
        # adaptive, disabled, a "display" key …: Anthropic gets the object as sent.
        vendor["thinking"] = request.thinking
    tools: list[ToolDefinition] = []
    anthropic_tools: list[Any] = []
    for position, tool in enumerate(request.tools or []):
        if tool.type in (None, "custom"):
            tools.append(_tool(tool))
        else:
            # Anthropic-defined tools (web search, code execution, computer use …).
            anthropic_tools.append(body["tools"][position])
    if anthropic_tools:
        vendor["tools"] = anthropic_tools

    messages = _system(request.system)
    for message in request.messages:
        messages.extend(_message(message))
    other: dict[str, dict[str, Any]] = {}
    user_id = (request.metadata or {}).get("user_id")
    if isinstance(user_id, str) and user_id:
        # The one metadata field OpenAI's APIs have a place for.
        other = {"openai": {"user": user_id}, "openai-responses": {"user": user_id}}
    return ChatRequest(
        model=request.model,
        messages=messages,
        tools=tools,
        tool_choice=_tool_choice(request.tool_choice),
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=max_tokens,
        stop=request.stop_sequences,
        response_format=_response_format(body.get("output_config"), body.get("output_format")),
        reasoning=reasoning,
        metadata=request.metadata,
        vendor={**other, "anthropic": vendor} if vendor else other,
    )


def _plain_budget(thinking: dict[str, Any]) -> bool:
    """``{"type": "enabled", "budget_tokens": N}``: what the canonical request says whole."""
    return (
        set(thinking) == {"type", "budget_tokens"}
        and thinking.get("type") == "enabled"
        and isinstance(thinking.get("budget_tokens"), int)
    )


def _reasoning(thinking: dict[str, Any] | None, output_config: Any) -> Reasoning | None:
    """Extended or adaptive thinking, and ``output_config.effort``, as a canonical reasoning.

    An effort beyond ``high`` (``xhigh``, ``max``) is ``high``; adaptive thinking
    without one is ``high``, the API's default. Both are ``adaptive``: a model
    that cannot think answers without thinking, as it would on Anthropic.
    """
    kind = thinking.get("type") if thinking is not None else None
    if kind == "disabled":
        return None
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    effort = _EFFORTS.get(effort) if isinstance(effort, str) else None
    budget = thinking.get("budget_tokens") if kind == "enabled" and thinking else None
    if isinstance(budget, int) and not isinstance(budget, bool):
        return Reasoning(budget_tokens=budget, effort=effort)
    if kind == "adaptive":
        return Reasoning(effort=effort or "high", adaptive=True)
    return Reasoning(effort=effort, adaptive=True) if effort is not None else None


def _response_format(output_config: Any, output_format: Any) -> dict[str, Any] | None:
    """Structured outputs (``output_config.format``, or the older ``output_format``) as a
    JSON-schema ``response_format`` for the APIs that take one."""
    fmt = output_config.get("format") if isinstance(output_config, dict) else None
    fmt = fmt if fmt is not None else output_format
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise InvalidRequestError("output_config.format of type json_schema needs a schema")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def _system(system: str | list[_Text] | None) -> list[Message]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [Message(role="system", content=system)]
    parts: list[ContentPart] = [
        TextPart(text=block.text, cache=block.cache_control is not None) for block in system
    ]
    return [Message(role="system", content=parts)]


def _message(message: _Message) -> list[Message]:
    if message.role == "system":
        return _system_in_place(message)
    if message.role not in ("user", "assistant"):
        raise InvalidRequestError(
            f"messages: role must be user, assistant or system, not {message.role!r}"
        )
    if isinstance(message.content, str):
        return [Message(role=message.role, content=message.content)]
    out: list[Message] = []
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    cache = False
    for block in message.content:
        match block:
            case _ToolResult():
                out.append(_tool_result(block))
            case _ToolUse():
                if not block.id or not block.name:
                    raise InvalidRequestError("A tool_use block needs an id and a name")
                arguments = msgspec.json.encode(block.input or {}).decode()
                calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
                cache = block.cache_control is not None
            case _:
                parts.append(_part(block))
    if parts or calls or not out:
        content: str | list[ContentPart] = parts
        out.append(Message(role=message.role, content=content, tool_calls=calls, cache=cache))
    return out


def _system_in_place(message: _Message) -> list[Message]:
    """A system message in the middle of ``messages`` (the ``mid-conversation-system`` beta)."""
    if isinstance(message.content, str):
        return [Message(role="system", content=message.content)]
    parts: list[ContentPart] = []
    for block in message.content:
        if not isinstance(block, _Text):
            raise InvalidRequestError("messages: a system message holds text blocks only")
        parts.append(TextPart(text=block.text, cache=block.cache_control is not None))
    return [Message(role="system", content=parts)]


def _part(block: _Part) -> ContentPart:
    cache = block.cache_control is not None
    match block:
        case _Text(text=text):
            return TextPart(text=text, cache=cache)
        case _Image(source=_Base64Source(data=data, media_type=media_type)):
            return ImagePart(data=data, media_type=media_type, cache=cache)
        case _Image(source=_UrlSource(url=url)):
            return ImagePart(url=url, cache=cache)
        case _Thinking(thinking=thinking, signature=signature):
            return ThinkingPart(text=thinking, signature=signature)
        case _RedactedThinking(data=data):
            return RedactedThinkingPart(data=data)
    raise TypeError(f"Not a content block: {block!r}")  # pragma: no cover


def _tool_result(block: _ToolResult) -> Message:
    if not block.tool_use_id:
        raise InvalidRequestError("A tool_result block needs a tool_use_id")
    content: str | list[ContentPart]
    if block.content is None or isinstance(block.content, str):
        content = block.content or ""
    else:
        content = [_part(inner) for inner in block.content]
    if block.is_error:
        if isinstance(content, str):
            content = f"Error: {content}"
        else:
            content = [TextPart(text="Error: "), *content]
    return Message(
        role="tool",
        content=content,
        tool_call_id=block.tool_use_id,
        cache=block.cache_control is not None,
    )


def _tool(tool: _Tool) -> ToolDefinition:
    if tool.input_schema is None:
        raise InvalidRequestError(f"Tool {tool.name!r} needs an input_schema")
    return ToolDefinition(
        name=tool.name,
        description=tool.description,
        parameters=tool.input_schema,
        strict=tool.strict,
        cache=tool.cache_control is not None,
    )


def _tool_choice(choice: _ToolChoice | None) -> ToolChoice | None:
    if choice is None:
        return None
    mode = _TOOL_CHOICES.get(choice.type)
    if mode is None:
        raise InvalidRequestError(
            f"tool_choice type {choice.type!r} is not one of auto, any, tool, none"
        )
    if mode == "tool" and not choice.name:
        raise InvalidRequestError("tool_choice of type 'tool' needs a name")
    return ToolChoice(mode=mode, name=choice.name if mode == "tool" else None)  # type: ignore[arg-type]


# --- errors ----------------------------------------------------------------


def _error_type(exc: ModelportError) -> tuple[int, str]:
    match exc:
        case AuthError():
            return (403, "permission_error") if exc.status == 403 else (401, "authentication_error")
        case RateLimitError():
            return 429, "rate_limit_error"
        case ContextTooLongError() | InvalidRequestError():
            # Anthropic labels its 413 "request_too_large", a type the SDKs' error models
            # do not list; they raise by status, so the 413 is kept under a type they know.
            return (413 if exc.status == 413 else 400), "invalid_request_error"
        case ModelNotFoundError():
            return 404, "not_found_error"
        case UpstreamError() if exc.status in (503, 529):
            return 529, "overloaded_error"
        case UpstreamError() if exc.status == 504:
            return 504, "timeout_error"
        case UpstreamError() if exc.status in (500, 502):
            return exc.status or 502, "api_error"
        case UpstreamError() | NetworkError() | ParseError() | PluginError():
            # The fault lies past the gateway: 502, which the SDKs retry like Anthropic's 5xx.
            return 502, "api_error"
        case _:
            return 500, "api_error"


def _error_body(exc: ModelportError) -> tuple[int, bytes]:
    status, kind = _error_type(exc)
    body = {"type": "error", "error": {"type": kind, "message": exc.message}}
    return status, msgspec.json.encode(body)


def encode_error(exc: ModelportError) -> tuple[int, bytes, dict[str, str]]:
    """The status, Anthropic error body and headers for ``exc``."""
    status, body = _error_body(exc)
    headers = {"content-type": "application/json"}
    if exc.retry_after is not None:
        headers["retry-after"] = str(math.ceil(exc.retry_after))
    return status, body, headers


# --- non-streaming ---------------------------------------------------------

_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
}


def _usage(usage: Usage) -> dict[str, int]:
    """Canonical usage → Anthropic's, whose ``input_tokens`` leaves the cache out."""
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(0, uncached),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


def _message_id(id: str | None) -> str:
    return id if id and id.startswith("msg_") else f"msg_{uuid.uuid4().hex[:24]}"


def encode_response(response: ChatResponse) -> bytes:
    """A Messages API ``Message`` body for a finished response."""
    content: list[dict[str, Any]] = []
    for part in response.thinking:
        if isinstance(part, ThinkingPart):
            content.append(
                {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
            )
        else:
            content.append({"type": "redacted_thinking", "data": part.data})
    if response.content:
        content.append({"type": "text", "text": response.content})
    for call in response.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": call.parsed_arguments(),
            }
        )
    finish = response.finish_reason or ("tool_calls" if response.tool_calls else "stop")
    return msgspec.json.encode(
        {
            "id": _message_id(response.id),
            "type": "message",
            "role": "assistant",
            "model": response.model,
            "content": content,
            "stop_reason": _STOP_REASONS[finish],
            "stop_sequence": None,
            "usage": _usage(response.usage),
        }
    )


def _model_info(info: ModelInfo) -> dict[str, Any]:
    model: dict[str, Any] = {
        "type": "model",
        "id": info.address,
        "display_name": info.name or info.id,
        # Connections do not say when a model was released; the API's stand-in is the epoch.
        "created_at": "1970-01-01T00:00:00Z",
        "lifecycle": "active",
    }
    if info.context_window is not None:
        model["max_input_tokens"] = info.context_window
    if info.max_output_tokens is not None:
        model["max_tokens"] = info.max_output_tokens
    return model


def encode_models(models: list[ModelInfo]) -> bytes:
    """A ``GET /v1/models`` page holding every model, addressed as ``connection/model``."""
    data = [_model_info(info) for info in models]
    return msgspec.json.encode(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


# --- streaming -------------------------------------------------------------

_json = msgspec.json.encode
_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT_DELTA = b',"delta":{"type":"text_delta","text":'
_THINKING_DELTA = b',"delta":{"type":"thinking_delta","thinking":'
_SIGNATURE_DELTA = b',"delta":{"type":"signature_delta","signature":'
_JSON_DELTA = b',"delta":{"type":"input_json_delta","partial_json":'
_DELTA_END = b"}}\n\n"
_START = b'event: content_block_start\ndata: {"type":"content_block_start","index":'
_TEXT_BLOCK = b',"content_block":{"type":"text","text":""}}\n\n'
_THINKING_BLOCK = b',"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'
_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
_STOP_END = b"}\n\n"
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

_NONE, _TEXT, _THINKING, _TOOL = 0, 1, 2, 3


class StreamEncoder:
    """Canonical events → the SSE frames of a streaming Messages API answer.

    Blocks open and close as the kind of event changes; tool calls each get a
    ``tool_use`` block, found again by the call's index when its fragments come.
    Usage and finish may come in either order; both are sent by :meth:`finish`.
    """

    def __init__(
        self, *, model: str, id: str | None = None, input_tokens: int | None = None
    ) -> None:
        self.model = model
        self.id = _message_id(id)
        self._input_tokens = input_tokens or 0
        self._index = -1
        self._open = _NONE
        self._open_bytes = b""
        self._tool_blocks: dict[int, bytes] = {}
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None

    def start(self) -> bytes:
        """The ``message_start`` frame."""
        message = {
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                # The gateway calls start() once the first event that produces
                # output has been encoded, so a leading usage snapshot is known.
                "usage": _usage(self._usage)
                if self._usage is not None
                else {"input_tokens": self._input_tokens, "output_tokens": 0},
            },
        }
        return b"event: message_start\ndata: " + _json(message) + b"\n\n"

    def _close(self) -> bytes:
        if self._open == _NONE:
            return b""
        self._open = _NONE
        return _STOP + self._open_bytes + _STOP_END

    def _begin(self, kind: int, block: bytes) -> bytes:
        closing = self._close()
        self._index += 1
        self._open = kind
        self._open_bytes = str(self._index).encode()
        return closing + _START + self._open_bytes + block

    def encode(self, event: StreamEvent) -> bytes:
        """The frames for one event (``b""`` when nothing is due yet)."""
        match event:
            case TextEvent(text=text):
                if not text:
                    return b""
                head = b"" if self._open == _TEXT else self._begin(_TEXT, _TEXT_BLOCK)
                return head + _DELTA + self._open_bytes + _TEXT_DELTA + _json(text) + _DELTA_END
            case ReasoningEvent(text=text, signature=signature, redacted=redacted):
                if redacted is not None:
                    block = {"type": "redacted_thinking", "data": redacted}
                    opened = self._begin(_THINKING, b',"content_block":' + _json(block) + b"}\n\n")
                    return opened + self._close()
                out = b""
                if self._open != _THINKING and (text or signature is not None):
                    out = self._begin(_THINKING, _THINKING_BLOCK)
                if text:
                    out += _DELTA + self._open_bytes + _THINKING_DELTA + _json(text) + _DELTA_END
                if signature is not None:
                    out += _DELTA + self._open_bytes + _SIGNATURE_DELTA + _json(signature)
                    out += _DELTA_END + self._close()
                return out
            case ToolCallStartEvent(index=index, id=id, name=name):
                block = {"type": "tool_use", "id": id, "name": name, "input": {}}
                out = self._begin(_TOOL, b',"content_block":' + _json(block) + b"}\n\n")
                self._tool_blocks[index] = self._open_bytes
                return out
            case ToolCallDeltaEvent(index=index, arguments=arguments):
                block_index = self._tool_blocks.get(index)
                if block_index is None or not arguments:
                    return b""
                return _DELTA + block_index + _JSON_DELTA + _json(arguments) + _DELTA_END
            case UsageEvent():
                self._usage = event.to_usage()
                return b""
            case FinishEvent(reason=reason):
                self._finish = reason
                return b""
        raise TypeError(f"StreamEncoder cannot encode {event!r}")

    def finish(self) -> bytes:
        """Close the open block, then ``message_delta`` and ``message_stop``."""
        finish = self._finish or ("tool_calls" if self._tool_blocks else "stop")
        usage = self._usage or Usage(input_tokens=self._input_tokens)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _STOP_REASONS[finish], "stop_sequence": None},
            "usage": _usage(usage),
        }
        return (
            self._close() + b"event: message_delta\ndata: " + _json(delta) + b"\n\n" + _MESSAGE_STOP
        )

    def error(self, exc: ModelportError) -> bytes:
        """The ``error`` frame that makes the SDKs raise; nothing may follow it."""
        return b"event: error\ndata: " + _error_body(exc)[1] + b"\n\n"
