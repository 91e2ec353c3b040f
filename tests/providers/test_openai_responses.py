"""What only the Responses API adapter does: its path, its body, its default URL.

The scenarios every adapter shares are in `test_adapters.py`.
"""

from __future__ import annotations

import pytest

from modelport.providers import ConnectionSettings
from modelport.providers.openai_responses import DEFAULT_BASE_URL, OpenAIResponsesProvider
from modelport.testing import FakeUpstream, Reply
from modelport.types import ChatRequest, Message, ToolCall, ToolDefinition
from tests.providers._adapters import OPENAI_RESPONSES, Adapter
from tests.providers.conftest import ProviderFactory


@pytest.fixture
def adapter() -> Adapter:
    return OPENAI_RESPONSES


async def test_a_tool_turn_goes_to_responses_and_comes_back_as_a_call(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route(
        "POST",
        "/v1/responses",
        Reply.fixture("openai/responses-stream-function-call.sse", chunks="random", split_seed=4),
    )
    tool = ToolDefinition(name="multiply", parameters={"type": "object"})
    request = ChatRequest(
        model="gpt-5.5",
        messages=[
            Message(role="user", content="What is 1231 * 2331?"),
            Message(role="assistant", tool_calls=[ToolCall(id="c0", name="multiply")]),
            Message(role="tool", tool_call_id="c0", content="try again"),
        ],
        tools=[tool],
    )
    response = await make_provider().complete(request)  # a stream answered: decoded as one
    assert [(c.id, c.parsed_arguments()) for c in response.tool_calls] == [
        ("call_sVidsfFJ6zlzRpelrPkTPlpd", {"a": 1231, "b": 2331})
    ]
    assert response.id == "resp_00d64fa806f333310169fab1be69d081a08f8285661855594c"
    [sent] = upstream.requests
    body = sent.json()
    assert (sent.path, body["model"], body["store"]) == ("/v1/responses", "gpt-5.5", False)
    assert body["input"][1:] == [
        {"type": "function_call", "call_id": "c0", "name": "multiply", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c0", "output": "try again"},
    ]
    assert body["tools"] == [
        {"type": "function", "name": "multiply", "parameters": {"type": "object"}, "strict": False}
    ]


async def test_a_non_streamed_answer(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route("POST", "/v1/responses", Reply.fixture(OPENAI_RESPONSES.complete_fixture))
    response = await make_provider().complete(OPENAI_RESPONSES.request())
    assert response.tool_calls[0].name == "multiply"
    assert response.id == "resp_00d64fa806f333310169fab1be69d081a08f8285661855594c"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (58, 23)
    assert "stream" not in upstream.requests[0].json()


async def test_models_are_listed_from_the_same_server(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route("GET", "/v1/models", Reply.json({"data": [{"id": "gpt-5.5-pro"}]}))
    models = await make_provider().list_models()
    assert [model.address for model in models] == ["openai/gpt-5.5-pro"]


def test_without_a_base_url_it_goes_to_openai() -> None:
    provider = OpenAIResponsesProvider(ConnectionSettings(name="o", compat="openai-responses"))
    assert provider.chat_url() == f"{DEFAULT_BASE_URL}/responses"
