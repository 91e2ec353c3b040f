"""The HTTP adapters, each described once for the tests they share.

`test_adapters.py` runs every scenario the adapters have in common over all of them;
`test_openai_compat.py`, `test_anthropic.py` and `test_ollama.py` keep what only one
of them does (its wire details and quirks) and pick their own description through an
``adapter`` fixture. Every upstream is a real `FakeUpstream` on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from modelport.errors import (
    AuthError,
    ContextTooLongError,
    ModelNotFoundError,
    ModelportError,
    UpstreamError,
)
from modelport.providers import ConnectionSettings
from modelport.providers._http import HttpProvider
from modelport.providers.anthropic import AnthropicProvider
from modelport.providers.ollama import OllamaProvider
from modelport.providers.openai_compat import OpenAICompatProvider
from modelport.providers.openai_responses import OpenAIResponsesProvider
from modelport.testing import Reply
from modelport.types import ChatRequest, Message
from tests._fixtures import fixture_bytes

__all__ = [
    "ADAPTERS",
    "ANTHROPIC",
    "OLLAMA",
    "OPENAI",
    "OPENAI_RESPONSES",
    "Adapter",
    "ErrorCase",
    "per_adapter",
]


@dataclass(frozen=True)
class ErrorCase:
    """An error answer and the error it must become."""

    id: str
    reply: Reply
    error_class: type[ModelportError]
    status: int


@dataclass(frozen=True)
class Adapter:
    """What the shared scenarios need to know about one adapter."""

    #: The compat name it is registered under, and the tests' id.
    compat: str
    provider_class: type[HttpProvider]
    #: The connection name its providers get, as errors name it.
    connection: str
    model: str
    #: The ChatRequest's other fields (its messages and sampling settings).
    request_fields: dict[str, Any]
    #: Appended to the upstream's root to make the base URL a user would write.
    base_suffix: str
    #: Another spelling of the base URL that must reach the same paths.
    other_base_suffix: str
    chat_path: str
    #: A secret, given as the key where a test looks for it in errors.
    key: str
    #: Whether its providers get ``key`` unless a test says otherwise.
    keyed_by_default: bool
    #: The header that carries the key, and the key as that header spells it.
    key_header: str
    key_template: str
    #: What a refused connection tells the user to check.
    refused_hint: str
    #: A recorded text stream, the text it folds to and its (input, output) tokens.
    text_stream: str
    text: str
    usage: tuple[int, int]
    #: A stream long enough to interrupt, and how many of its bytes hold the first events.
    long_stream: str
    first_write: int
    #: Write size and the byte counts after which the upstream drops the long stream.
    drop_write: int
    drop_points: tuple[int, ...]
    #: A recorded non-streamed answer.
    complete_fixture: str
    error_cases: tuple[ErrorCase, ...]
    rate_limit: Reply
    retry_after: float
    #: A stream that carries an error in band, and what its message says.
    in_band_error: Reply
    in_band_message: str

    def __str__(self) -> str:
        return self.compat

    def request(self, model: str | None = None) -> ChatRequest:
        return ChatRequest(model=model or self.model, **self.request_fields)

    def key_value(self) -> str:
        return self.key_template.format(key=self.key)

    def provider(self, root: str, **overrides: Any) -> HttpProvider:
        """A provider for the upstream at ``root`` (``http://127.0.0.1:port``)."""
        fields: dict[str, Any] = {
            "name": self.connection,
            "compat": self.compat,
            "base_url": f"{root}{self.base_suffix}",
        }
        if self.keyed_by_default:
            fields["api_key"] = self.key
        fields.update(overrides)
        return self.provider_class(ConnectionSettings(**fields))

    def slow(self) -> Reply:
        """The long stream: its first events at once, then one more piece a second."""
        chunks = [self.first_write] + [100] * 60
        return Reply.fixture(self.long_stream, chunks=chunks, chunk_delay=1.0)


def _openai_error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


#: OpenAI's answer for a prompt over the context window.
OPENAI_CONTEXT = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, your "
        "messages resulted in 9000 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}

OPENAI_TEXT_STREAM = "openai/chat-stream-text-include-usage.sse"

OPENAI = Adapter(
    compat="openai",
    provider_class=OpenAICompatProvider,
    connection="local",
    model="gpt-4o",
    request_fields={"messages": [Message(role="user", content="Weather in SF?")]},
    base_suffix="/v1",
    other_base_suffix="/v1/",
    chat_path="/v1/chat/completions",
    key="sk-test-secret-0123456789",
    keyed_by_default=True,
    key_header="authorization",
    key_template="Bearer {key}",
    refused_hint="is the server running? is the URL right?",
    text_stream=OPENAI_TEXT_STREAM,
    text=(
        "I'm unable to provide real-time weather updates. To get the current weather in "
        "San Francisco, I recommend checking a reliable weather website or a weather app."
    ),
    usage=(14, 30),
    long_stream=OPENAI_TEXT_STREAM,
    first_write=700,
    drop_write=100,
    drop_points=(0, 700, 1500),
    complete_fixture="openai/chat-completion-tool-call.json",
    error_cases=(
        ErrorCase(
            "401",
            Reply.json(_openai_error("Incorrect API key", "invalid_request_error"), 401),
            AuthError,
            401,
        ),
        ErrorCase(
            "404",
            Reply.json(
                _openai_error("The model `gpt-9` does not exist", "invalid_request_error"), 404
            ),
            ModelNotFoundError,
            404,
        ),
        ErrorCase("400-context", Reply.json(OPENAI_CONTEXT, 400), ContextTooLongError, 400),
        ErrorCase(
            "500", Reply.json(_openai_error("boom", "server_error"), 500), UpstreamError, 500
        ),
        ErrorCase(
            "502-html", Reply(status=502, body=b"<html>Bad Gateway</html>"), UpstreamError, 502
        ),
    ),
    rate_limit=Reply.json(
        _openai_error("Rate limit reached", "requests", "rate_limit_exceeded"),
        429,
        headers={"Retry-After": "7"},
    ),
    retry_after=7.0,
    in_band_error=Reply.fixture("openrouter/chat-stream-midstream-error.sse"),
    in_band_message="Token limit reached",
)

ANTHROPIC = Adapter(
    compat="anthropic",
    provider_class=AnthropicProvider,
    connection="anthropic",
    model="claude-haiku-4-5",
    request_fields={
        "messages": [
            Message(role="system", content="Be brief."),
            Message(role="user", content="Hello"),
        ],
        "max_tokens": 100,
    },
    base_suffix="",
    other_base_suffix="/v1/",
    chat_path="/v1/messages",
    key="sk-ant-test-secret-0123456789",
    keyed_by_default=True,
    key_header="x-api-key",
    key_template="{key}",
    refused_hint="is the server running? is the URL right?",
    text_stream="anthropic/messages-stream-text.sse",
    text="Hello",
    usage=(10, 4),
    long_stream="anthropic/messages-stream-thinking-long.sse",
    first_write=800,
    drop_write=300,
    drop_points=(0, 500, 5000),
    complete_fixture="anthropic/message-text.json",
    error_cases=(
        ErrorCase(
            "401",
            Reply.json(_anthropic_error("authentication_error", "invalid x-api-key"), 401),
            AuthError,
            401,
        ),
        ErrorCase(
            "404",
            Reply.fixture("anthropic/error-404-not_found_error.sorted.json", status=404),
            ModelNotFoundError,
            404,
        ),
        ErrorCase(
            "400-context",
            Reply.json(
                _anthropic_error(
                    "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"
                ),
                400,
            ),
            ContextTooLongError,
            400,
        ),
        ErrorCase(
            "500",
            Reply.json(_anthropic_error("api_error", "Internal server error"), 500),
            UpstreamError,
            500,
        ),
        ErrorCase(
            "529-overloaded",
            Reply.json(_anthropic_error("overloaded_error", "Overloaded"), 529),
            UpstreamError,
            529,
        ),
    ),
    rate_limit=Reply.json(
        _anthropic_error("rate_limit_error", "slow down"), 429, headers={"retry-after": "12"}
    ),
    retry_after=12.0,
    in_band_error=Reply(
        body=(
            b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
            b'"type":"message","role":"assistant","content":[],"model":"m","usage":'
            b'{"input_tokens":1,"output_tokens":1}}}\n\n'
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
            b'"message":"Overloaded"}}\n\n'
        ),
        content_type="text/event-stream",
        chunks=[7],
    ),
    in_band_message="Overloaded",
)

OLLAMA_STREAM = "ollama/api-chat-stream.ndjson"

OLLAMA = Adapter(
    compat="ollama",
    provider_class=OllamaProvider,
    connection="local",
    model="llama3",
    request_fields={
        "messages": [Message(role="user", content="Tell me a joke about OpenTelemetry")],
        "temperature": 0.2,
    },
    base_suffix="",
    other_base_suffix="/v1",
    chat_path="/api/chat",
    key="ollama-proxy-secret-0123456789",
    # Ollama wants no key; one is sent only where a proxy in front of it asks.
    keyed_by_default=False,
    key_header="authorization",
    key_template="Bearer {key}",
    refused_hint="is Ollama running? start it with `ollama serve`; is the URL right?",
    text_stream=OLLAMA_STREAM,
    text=(
        "Why did the OpenTelemetry agent go to therapy?\n\nBecause it was feeling traced out "
        "and needed some instrumentation in its life!\n\n(Sorry, I know it's a bit of a "
        "stretch, but I hope it brought a smile to your face!)"
    ),
    usage=(17, 50),
    long_stream=OLLAMA_STREAM,
    first_write=400,
    drop_write=150,
    drop_points=(0, 200, 3000),
    complete_fixture="ollama/api-chat.json",
    error_cases=(
        ErrorCase("401", Reply.json({"error": "unauthorized"}, 401), AuthError, 401),
        ErrorCase(
            "400-context",
            Reply.json({"error": "input length exceeds the context length (4096 tokens)"}, 400),
            ContextTooLongError,
            400,
        ),
        ErrorCase(
            "500",
            Reply.json({"error": "llama runner process has terminated"}, 500),
            UpstreamError,
            500,
        ),
        ErrorCase("503-text", Reply(status=503, body=b"server busy"), UpstreamError, 503),
    ),
    rate_limit=Reply.json({"error": "too many requests"}, 429, headers={"Retry-After": "3"}),
    retry_after=3.0,
    in_band_error=Reply(
        body=(
            b'{"model":"llama3","message":{"role":"assistant","content":"Hi"},"done":false}\n'
            b'{"error":"an unknown error was encountered while running the model"}\n'
        ),
        chunks=[20],
    ),
    in_band_message="unknown error",
)

OPENAI_RESPONSES = Adapter(
    compat="openai-responses",
    provider_class=OpenAIResponsesProvider,
    connection="openai",
    model="gpt-5.5",
    request_fields={"messages": [Message(role="user", content="Reply with exactly: pong")]},
    base_suffix="/v1",
    other_base_suffix="/v1/",
    chat_path="/v1/responses",
    key="sk-test-secret-0123456789",
    keyed_by_default=True,
    key_header="authorization",
    key_template="Bearer {key}",
    refused_hint="is the server running? is the URL right?",
    text_stream="openai/responses-stream-text.sse",
    text="pong",
    usage=(11, 5),
    long_stream="openai/responses-stream-function-call.sse",
    first_write=2800,  # through the first arguments delta
    drop_write=100,
    drop_points=(0, 2300, 5000),
    complete_fixture="openai/responses-function-call.from-stream.json",
    # The same error bodies as Chat Completions: it is the same server.
    error_cases=OPENAI.error_cases,
    rate_limit=OPENAI.rate_limit,
    retry_after=7.0,
    in_band_error=Reply(
        body=(
            b"data: "
            + fixture_bytes("openai/responses-stream-error-insufficient_quota.jsonl").splitlines()[
                2
            ]
            + b"\n\n"
        ),
        content_type="text/event-stream",
        chunks=[7],
    ),
    in_band_message="exceeded your current quota",
)

ADAPTERS = (OPENAI, ANTHROPIC, OLLAMA, OPENAI_RESPONSES)


def per_adapter(cases: Callable[[Adapter], Iterable[tuple[str, Any]]]) -> list[Any]:
    """``(adapter, case)`` parameters: each adapter with each of its own cases."""
    return [
        pytest.param(adapter, case, id=f"{adapter.compat}-{case_id}")
        for adapter in ADAPTERS
        for case_id, case in cases(adapter)
    ]
