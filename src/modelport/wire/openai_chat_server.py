"""The OpenAI Chat Completions format, server side: what the gateway says to OpenAI clients.

:func:`parse_request` reads a client's ``/v1/chat/completions`` body into a
:class:`~modelport.types.ChatRequest`; :class:`StreamEncoder`,
:func:`encode_response` and :func:`encode_error` answer in the shapes the
official SDKs parse. Choices made here:

* ``developer`` messages become ``system``; the legacy ``function`` role and
  ``functions``/``function_call`` become tools (the call id is ``call_<name>``).
* An assistant turn's ``reasoning_content`` or ``reasoning`` becomes a leading
  thinking part, so it is not lost on the way to a provider that reads it.
* Signed thinking (an Anthropic model's, which Anthropic wants back verbatim,
  signature and all, at the start of the assistant turn that called a tool)
  has no field in the OpenAI shape. The gateway adds one, in LiteLLM's shape:
  ``message.thinking_blocks``, a list of ``{"type": "thinking", "thinking",
  "signature"}`` and ``{"type": "redacted_thinking", "data"}``, on an answer
  and, as each block closes, in a stream's delta (with the ``index`` of the
  block, so the OpenAI SDK's stream helper assembles the list). An assistant
  message handed back with ``thinking_blocks`` gets exactly those blocks as
  its leading parts (its ``reasoning_content``, the same text, is then left out).
* ``max_completion_tokens`` sets ``max_tokens`` and is also kept in
  ``vendor["openai"]``, so an OpenAI upstream receives the name the client chose.
* A ``reasoning_effort`` outside minimal/low/medium/high (``none``, ``xhigh``)
  travels in ``vendor["openai"]`` untouched, as does every field that is not
  part of :class:`~modelport.types.ChatRequest` (``seed``, ``user``, ``n``,
  ``logprobs``, ``service_tier`` …). ``stream`` and ``stream_options`` belong
  to the route and are dropped; a field sent as ``null`` counts as unset.
* A count written with a fraction (``max_tokens: 1024.0``) is read as the
  integer it is, as JSON Schema and OpenAI do; ``1.5`` is refused.
* Tools, tool calls and a named ``tool_choice`` must be of type ``function``
  (or leave it out); the legacy ``functions`` and ``function_call`` are
  checked even when ``tools`` and ``tool_choice`` take precedence.
* With ``include_usage``, the usage chunk is always sent (zeros when the
  provider reported none), as the OpenAI API promises.
* ``refusal`` is not a finish reason OpenAI clients know: it is sent as
  ``stop`` (non-streaming answers also move the text into ``message.refusal``).
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

import msgspec

from modelport._redact import public_url
from modelport.errors import (
    AuthError,
    BudgetExceededError,
    ConfigError,
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
from modelport.wire import _openai_server_shapes as _shapes
from modelport.wire._json import convert_request, request_object, whole_number

__all__ = [
    "StreamEncoder",
    "encode_error",
    "encode_models",
    "encode_response",
    "parse_messages",
    "parse_request",
    "parse_tool_choice",
    "parse_tools",
]

_CANONICAL_FIELDS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "response_format",
        "reasoning",
        "metadata",
        "stream",
        "stream_options",
    }
)
_EFFORTS = ("minimal", "low", "medium", "high")
_TOOL_MODES = ("auto", "none", "required")

# --- parsing -------------------------------------------------------------------


def parse_request(body: Any) -> ChatRequest:
    """A client's ``/v1/chat/completions`` body (bytes, str or a parsed dict) → a request.

    Raises :class:`~modelport.errors.InvalidRequestError` naming the offending
    field when the body is not a valid Chat Completions request.
    """
    data = request_object(body)
    parsed = convert_request(data, _shapes.RequestIn)
    if not parsed.messages:
        raise InvalidRequestError("'messages' must hold at least one message")
    # null means "unset" throughout the OpenAI API; passing it on would only confuse upstreams.
    vendor = {
        key: value
        for key, value in data.items()
        if key not in _CANONICAL_FIELDS and value is not None
    }
    reasoning = _reasoning(parsed, data, vendor)
    # The legacy fields are checked even when the current ones win, so that no
    # malformed field is quietly accepted.
    tools = [_tool(tool) for tool in parsed.tools or ()]
    functions = [_tool(tool) for tool in parsed.functions or ()]
    choice = _tool_choice(parsed.tool_choice)
    function_call = _tool_choice(parsed.function_call)
    stop = [parsed.stop] if isinstance(parsed.stop, str) else parsed.stop
    max_tokens = whole_number(parsed.max_tokens, "max_tokens")
    max_completion_tokens = whole_number(parsed.max_completion_tokens, "max_completion_tokens")
    if max_completion_tokens is not None:
        vendor["max_completion_tokens"] = max_completion_tokens
    return ChatRequest(
        model=parsed.model,
        messages=[_message(message) for message in parsed.messages],
        tools=tools if parsed.tools is not None else functions,
        tool_choice=choice if choice is not None else function_call,
        temperature=parsed.temperature,
        top_p=parsed.top_p,
        max_tokens=max_tokens if max_tokens is not None else max_completion_tokens,
        stop=stop,
        response_format=parsed.response_format,
        reasoning=reasoning,
        metadata=parsed.metadata,
        vendor={"openai": vendor} if vendor else {},
    )


def parse_messages(messages: list[Any]) -> list[Message]:
    """OpenAI-shaped message dicts (or :class:`Message` values, kept as they are) → messages."""
    out: list[Message] = []
    for position, item in enumerate(messages):
        if isinstance(item, Message):
            out.append(item)
        else:
            parsed = convert_request(item, _shapes.MessageIn, f"messages[{position}]")  # type: ignore[arg-type]
            out.append(_message(parsed))
    return out


def parse_tools(tools: list[Any]) -> list[ToolDefinition]:
    """Tool dicts in the nested (``{"type": "function", "function": ...}``) or flat form."""
    out: list[ToolDefinition] = []
    for position, item in enumerate(tools):
        if isinstance(item, ToolDefinition):
            out.append(item)
        else:
            out.append(_tool(convert_request(item, _shapes.ToolDefIn, f"tools[{position}]")))
    return out


def parse_tool_choice(value: Any) -> ToolChoice | None:
    """``"auto"``, ``"none"``, ``"required"``, ``{"type": "function", "function": {"name"}}``."""
    if value is None or isinstance(value, ToolChoice):
        return value
    return _tool_choice(convert_request(value, str | _shapes.NamedChoiceIn, "tool_choice"))  # type: ignore[arg-type]


def _reasoning(
    parsed: _shapes.RequestIn, data: dict[str, Any], vendor: dict[str, Any]
) -> Reasoning | None:
    vendor.pop("reasoning_effort", None)
    effort = parsed.reasoning_effort
    budget = None
    if parsed.reasoning is not None:
        effort = effort or parsed.reasoning.effort
        budget = whole_number(parsed.reasoning.max_tokens, "reasoning.max_tokens")
    if effort is not None and effort in _EFFORTS:
        return Reasoning(effort=effort)  # type: ignore[arg-type]
    if budget is not None:
        return Reasoning(budget_tokens=budget)
    if effort is not None:
        vendor["reasoning_effort"] = effort
    if parsed.reasoning is not None:
        # An OpenRouter reasoning object with neither effort nor budget ({"enabled": true}).
        vendor["reasoning"] = data["reasoning"]
    return None


def _message(message: Any) -> Message:
    match message:
        case _shapes.SystemIn(content=content, name=name):
            return Message(role="system", content=_content(content), name=name)
        case _shapes.UserIn(content=content, name=name):
            return Message(role="user", content=_content(content), name=name)
        case _shapes.AssistantIn():
            return _assistant(message)
        case _shapes.ToolMessageIn(content=content, tool_call_id=tool_call_id):
            return Message(role="tool", content=_content(content), tool_call_id=tool_call_id)
        case _shapes.FunctionMessageIn(name=name, content=content):
            return Message(
                role="tool", content=content or "", tool_call_id=f"call_{name}", name=name
            )
    raise InvalidRequestError(f"Unsupported message: {message!r}")  # pragma: no cover


def _assistant(message: _shapes.AssistantIn) -> Message:
    content = _content(message.content) if message.content is not None else ""
    if not content and message.refusal:
        content = message.refusal
    blocks = _thinking_blocks(message.thinking_blocks)
    if not blocks:
        thinking = message.reasoning_content or message.reasoning
        blocks = [ThinkingPart(text=thinking)] if thinking else []
    if blocks:
        parts = [TextPart(text=content)] if isinstance(content, str) and content else content
        content = [*blocks, *parts]
    calls = [
        ToolCall(id=call.id, name=call.function.name, arguments=_arguments(call.function))
        for call in message.tool_calls or ()
    ]
    if not calls and message.function_call is not None:
        function = message.function_call
        calls = [
            ToolCall(id=f"call_{function.name}", name=function.name, arguments=_arguments(function))
        ]
    return Message(role="assistant", content=content, tool_calls=calls, name=message.name)


def _thinking_blocks(
    blocks: list[_shapes.ThinkingBlockIn | _shapes.RedactedThinkingBlockIn] | None,
) -> list[ContentPart]:
    parts: list[ContentPart] = []
    for block in blocks or ():
        if isinstance(block, _shapes.RedactedThinkingBlockIn):
            parts.append(RedactedThinkingPart(data=block.data))
        else:
            parts.append(ThinkingPart(text=block.thinking, signature=block.signature))
    return parts


def _arguments(function: _shapes.FunctionIn) -> str:
    if isinstance(function.arguments, str):
        return function.arguments
    return msgspec.json.encode(function.arguments).decode()


def _content(content: str | list[Any]) -> str | list[ContentPart]:
    if isinstance(content, str):
        return content
    parts: list[ContentPart] = []
    for part in content:
        match part:
            case _shapes.TextPartIn(text=text):
                parts.append(TextPart(text=text))
            case _shapes.RefusalPartIn(refusal=refusal):
                parts.append(TextPart(text=refusal))
            case _shapes.ImagePartIn(image_url=image_url):
                url = image_url if isinstance(image_url, str) else image_url.url
                parts.append(_image(url))
    return parts


def _image(url: str) -> ImagePart:
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        if comma and header.endswith(";base64"):
            return ImagePart(data=data, media_type=header[: -len(";base64")] or None)
    return ImagePart(url=url)


def _tool(tool: _shapes.ToolDefIn) -> ToolDefinition:
    spec = tool.function if tool.function is not None else tool
    if not spec.name:
        raise InvalidRequestError("Every tool needs a function name")
    if spec.parameters is None:
        return ToolDefinition(
            name=spec.name, description=spec.description or "", strict=spec.strict
        )
    return ToolDefinition(
        name=spec.name,
        description=spec.description or "",
        parameters=spec.parameters,
        strict=spec.strict,
    )


def _tool_choice(value: str | _shapes.NamedChoiceIn | None) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in _TOOL_MODES:
            raise InvalidRequestError(
                f"tool_choice must be one of 'auto', 'none', 'required' or a named function, "
                f"not {value!r}"
            )
        return ToolChoice(mode=value)  # type: ignore[arg-type]
    name = value.function.name if value.function is not None else value.name
    if not name:
        raise InvalidRequestError("A named tool_choice needs function.name")
    return ToolChoice.tool(name)


# --- streaming -------------------------------------------------------------------

_encode = msgspec.json.encode
_CLOSE = b'},"finish_reason":null}]}\n\n'
_DONE = b"data: [DONE]\n\n"
_WIRE_FINISH: dict[str, bytes] = {
    "stop": b"stop",
    "length": b"length",
    "tool_calls": b"tool_calls",
    "content_filter": b"content_filter",
    "refusal": b"stop",
}


class StreamEncoder:
    """Canonical events → ``chat.completion.chunk`` SSE frames for OpenAI clients.

    The bytes that every chunk of a stream shares are encoded once; each event
    only encodes its own text. Usage is held and sent by :meth:`finish` as the
    ``choices: []`` chunk when ``include_usage`` (the client's
    ``stream_options.include_usage``) asks for it.
    """

    def __init__(
        self,
        *,
        model: str,
        id: str | None = None,
        include_usage: bool = False,
        created: int | None = None,
    ) -> None:
        self.id = id or f"chatcmpl-{random.getrandbits(128):032x}"
        self.include_usage = include_usage
        stamp = int(time.time()) if created is None else created
        self._head = (
            b'data: {"id":'
            + _encode(self.id)
            + b',"object":"chat.completion.chunk","created":'
            + str(stamp).encode()
            + b',"model":'
            + _encode(model)
        )
        self._open = self._head + b',"choices":[{"index":0,"delta":{'
        self._first = True
        self._usage: Usage | None = None
        self._finished = False
        self._tool_calls = False
        # The thinking block being streamed (its text so far), and how many were sent whole.
        self._thinking: list[str] = []
        self._blocks = 0

    def start(self) -> bytes:
        """Nothing: an OpenAI stream has no prelude."""
        return b""

    def encode(self, event: StreamEvent) -> bytes:
        """The frame for one event; ``b""`` when it has no Chat Completions form."""
        match event:
            case TextEvent(text=text):
                return self._delta(b'"content":' + _encode(text)) if text else b""
            case ReasoningEvent(text=text, signature=None, redacted=None):
                if not text:
                    return b""
                self._thinking.append(text)
                return self._delta(b'"reasoning_content":' + _encode(text))
            case ReasoningEvent():
                return self._thinking_block(event)
            case ToolCallDeltaEvent(index=index, arguments=arguments):
                return self._delta(
                    b'"tool_calls":[{"index":%d,"function":{"arguments":%b}}]'
                    % (index, _encode(arguments))
                )
            case ToolCallStartEvent(index=index, id=call_id, name=name):
                self._tool_calls = True
                return self._delta(
                    b'"tool_calls":[{"index":%d,"id":%b,"type":"function",'
                    b'"function":{"name":%b,"arguments":""}}]'
                    % (index, _encode(call_id), _encode(name))
                )
            case UsageEvent():
                self._usage = event.to_usage()
                return b""
            case FinishEvent(reason=reason):
                return self._finish_chunk(_WIRE_FINISH[reason])
        raise TypeError(f"Not a stream event: {event!r}")  # pragma: no cover

    def finish(self) -> bytes:
        """The closing frames: a finish chunk if none was sent, usage if asked, ``[DONE]``."""
        out = b""
        if not self._finished:
            out += self._finish_chunk(b"tool_calls" if self._tool_calls else b"stop")
        if self.include_usage:
            usage = _usage_json(self._usage or Usage())
            out += self._head + b',"choices":[],"usage":' + _encode(usage) + b"}\n\n"
        return out + _DONE

    def error(self, exc: ModelportError) -> bytes:
        """The in-band error frame the OpenAI SDKs raise on; nothing may follow it."""
        return b"data: " + _encode({"error": _error_body(exc)[1]}) + b"\n\n"

    def _delta(self, body: bytes) -> bytes:
        if self._first:
            self._first = False
            return self._open + b'"role":"assistant",' + body + _CLOSE
        return self._open + body + _CLOSE

    def _thinking_block(self, event: ReasoningEvent) -> bytes:
        """A block that closed (signed) or came whole (redacted), as a ``thinking_blocks`` delta.

        The text went out as ``reasoning_content`` already; the block carries it
        once more, whole, with its signature, for the client to hand back.
        """
        head = b""
        if event.redacted is not None:
            self._thinking = []  # an unsigned block before it is closed, and not sent back
            block: dict[str, Any] = {"type": "redacted_thinking", "data": event.redacted}
        else:
            if event.text:
                head = b'"reasoning_content":' + _encode(event.text) + b","
                self._thinking.append(event.text)
            text, self._thinking = "".join(self._thinking), []
            block = {"type": "thinking", "thinking": text, "signature": event.signature}
        block["index"] = self._blocks
        self._blocks += 1
        return self._delta(head + b'"thinking_blocks":' + _encode([block]))

    def _finish_chunk(self, reason: bytes) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        role = b'"role":"assistant"' if self._first else b""
        self._first = False
        return self._open + role + b'},"finish_reason":"' + reason + b'"}]}\n\n'


def _usage_json(usage: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": usage.cache_read_tokens}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }
    if usage.cost is not None:
        out["cost"] = usage.cost  # OpenRouter's field; clients that don't know it ignore it
    return out


# --- non-streaming -----------------------------------------------------------------


def encode_response(response: ChatResponse) -> bytes:
    """A ``chat.completion`` body for a finished response."""
    refused = response.finish_reason == "refusal"
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if refused or (response.tool_calls and not response.content) else "",
        "refusal": response.content if refused else None,
    }
    if not refused and response.content:
        message["content"] = response.content
    if response.reasoning:
        message["reasoning_content"] = response.reasoning
    blocks = _signed_blocks(response.thinking)
    if blocks:
        message["thinking_blocks"] = blocks
    if response.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in response.tool_calls
        ]
    reason = response.finish_reason or ("tool_calls" if response.tool_calls else "stop")
    return _encode(
        {
            "id": response.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": response.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": _WIRE_FINISH[reason].decode(),
                    "logprobs": None,
                }
            ],
            "usage": _usage_json(response.usage),
        }
    )


def _signed_blocks(thinking: list[ThinkingPart | RedactedThinkingPart]) -> list[dict[str, Any]]:
    """The blocks a client must hand back: signed thinking and redacted thinking."""
    blocks: list[dict[str, Any]] = []
    for part in thinking:
        if isinstance(part, RedactedThinkingPart):
            blocks.append({"type": "redacted_thinking", "data": part.data})
        elif part.signature is not None:
            blocks.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
    return blocks


def encode_models(models: list[ModelInfo]) -> bytes:
    """A ``GET /v1/models`` list body: each model as ``connection/model``, owned by its connection.

    ``created`` is 0: connections do not say when their models were made.
    """
    return _encode(
        {
            "object": "list",
            "data": [
                {"id": info.address, "object": "model", "created": 0, "owned_by": info.connection}
                for info in models
            ],
        }
    )


# --- errors ----------------------------------------------------------------------

_ErrorType = Literal[
    "authentication_error",
    "permission_error",
    "rate_limit_error",
    "insufficient_quota",
    "invalid_request_error",
    "server_error",
    "api_error",
]


def encode_error(exc: ModelportError) -> tuple[int, bytes, dict[str, str]]:
    """Status, ``{"error": {...}}`` body and extra headers (``retry-after``) for an error.

    The status is the one each OpenAI SDK maps to the matching exception
    (401 → ``AuthenticationError``, 429 → ``RateLimitError``, 404 →
    ``NotFoundError``, 400 → ``BadRequestError``, 5xx → ``InternalServerError``).
    """
    status, body = _error_body(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        seconds = max(0.0, exc.retry_after)
        headers["retry-after"] = str(int(-(-seconds // 1)))
        headers["retry-after-ms"] = str(int(seconds * 1000))
    return status, _encode({"error": body}), headers


def _error_body(exc: ModelportError) -> tuple[int, dict[str, Any]]:
    status, kind, code, param = _classify(exc)
    message = _public_message(exc)
    if isinstance(exc, ContextTooLongError) and exc.limit and str(exc.limit) not in message:
        actual = f", but the request has {exc.actual} tokens" if exc.actual else ""
        message += f" (this model's maximum context length is {exc.limit} tokens{actual})"
    return status, {"message": message, "type": kind, "param": param, "code": code}


def _classify(exc: ModelportError) -> tuple[int, _ErrorType, str | None, str | None]:
    match exc:
        case AuthError() if exc.status == 403:
            return 403, "permission_error", "permission_denied", None
        case AuthError():
            return 401, "authentication_error", "invalid_api_key", None
        case BudgetExceededError():
            # OpenAI's own answer when an account's quota is spent.
            return 429, "insufficient_quota", "insufficient_quota", None
        case RateLimitError():
            return 429, "rate_limit_error", "rate_limit_exceeded", None
        case ContextTooLongError():
            return 400, "invalid_request_error", "context_length_exceeded", "messages"
        case InvalidRequestError():
            return 400, "invalid_request_error", None, None
        case ModelNotFoundError():
            return 404, "invalid_request_error", "model_not_found", "model"
        case UpstreamError():
            status = exc.status if exc.status is not None and 400 <= exc.status <= 599 else 502
            kind: _ErrorType = "invalid_request_error" if status < 500 else "server_error"
            return status, kind, "upstream_error", None
        case NetworkError():
            return 502, "server_error", "upstream_unreachable", None
        case ParseError():
            return 502, "server_error", "upstream_bad_response", None
        case PluginError():
            return 502, "server_error", "plugin_error", None
        case ConfigError():
            return 500, "server_error", "config_error", None
    return 500, "server_error", None, None


def _public_message(exc: ModelportError) -> str:
    """The message with its context; a URL loses credentials, query and fragment."""
    context = exc.context_parts(show_url=public_url, status=False)
    return f"{exc.message} ({', '.join(context)})" if context else exc.message
