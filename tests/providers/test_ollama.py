"""What only the Ollama adapter does: its native wire, its base URL forms, its keyless
requests, its "pull the model" advice. The scenarios every adapter shares are in
`test_adapters.py`."""

from __future__ import annotations

import pytest

from modelport.aggregate import aggregate
from modelport.errors import ModelNotFoundError, NetworkError
from modelport.providers import ConnectionSettings
from modelport.providers.ollama import OllamaProvider
from modelport.testing import FakeUpstream, Reply
from tests.providers._adapters import OLLAMA, OLLAMA_STREAM, Adapter
from tests.providers.conftest import ProviderFactory, collect

CHAT = OLLAMA.chat_path
STREAM = OLLAMA_STREAM
_request = OLLAMA.request


@pytest.fixture
def adapter() -> Adapter:
    return OLLAMA


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "http://localhost:11434"),
        ("http://gpu-box:11434/", "http://gpu-box:11434"),
        ("http://localhost:11434/v1", "http://localhost:11434"),
        ("http://localhost:11434/v1/", "http://localhost:11434"),
        ("http://localhost:11434/api", "http://localhost:11434"),
    ],
)
def test_base_url(base_url: str | None, expected: str) -> None:
    provider = OllamaProvider(ConnectionSettings(name="o", compat="ollama", base_url=base_url))
    assert provider.chat_url() == f"{expected}/api/chat"
    assert provider.models_url() == f"{expected}/api/tags"


# --- success paths --------------------------------------------------------------


async def test_stream_of_a_tool_call(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fixture = "ollama/api-chat-stream-tools.docs-example.ndjson"
    upstream.route("POST", CHAT, Reply.fixture(fixture, chunks="random", split_seed=2))
    response = aggregate(await collect(make_provider().stream(_request())), model="llama3.2")
    [call] = response.tool_calls
    assert (call.name, call.parsed_arguments()) == ("get_weather", {"city": "Tokyo"})
    assert response.finish_reason == "tool_calls"


async def test_stream_sends_the_request_the_upstream_expects(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    # A key, sent as a bearer for a proxy in front of Ollama, and extra headers:
    # test_adapters.py::test_the_key_and_extra_headers_go_upstream.
    upstream.route("POST", CHAT, Reply.fixture(STREAM))
    await collect(make_provider().stream(_request()))
    [sent] = upstream.requests
    assert (sent.method, sent.path) == ("POST", CHAT)
    assert "authorization" not in sent.headers
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {
        "model": "llama3",
        "messages": [{"role": "user", "content": "Tell me a joke about OpenTelemetry"}],
        "stream": True,
        "options": {"temperature": 0.2},
    }


@pytest.mark.parametrize("path", ["stream", "complete"])
async def test_the_connections_options_go_with_every_request_under_the_requests_own(
    upstream: FakeUpstream, make_provider: ProviderFactory, path: str
) -> None:
    # num_ctx: Ollama's 2,048-token default silently truncates long agent prompts.
    upstream.route(
        "POST", CHAT, Reply.fixture(STREAM if path == "stream" else "ollama/api-chat.json")
    )
    provider = make_provider(options={"options": {"num_ctx": 32768, "temperature": 0.9}})
    if path == "stream":
        await collect(provider.stream(_request()))
    else:
        await provider.complete(_request())
    # The request's temperature (0.2) wins over the connection's.
    assert upstream.requests[0].json()["options"] == {"num_ctx": 32768, "temperature": 0.2}


async def test_complete_from_a_json_body(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture("ollama/api-chat.json"))
    response = await make_provider().complete(_request())
    assert response.content.startswith("A joke about OpenTelemetry!")
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (17, 66)
    assert upstream.requests[0].json()["stream"] is False


async def test_list_models(upstream: FakeUpstream, make_provider: ProviderFactory) -> None:
    upstream.route("GET", "/api/tags", Reply.fixture("ollama/api-tags.docs-example.json"))
    models = await make_provider().list_models()
    assert [(m.id, m.connection) for m in models] == [
        ("deepseek-r1:latest", "local"),
        ("llama3.2:latest", "local"),
    ]


# --- error statuses ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["stream", "complete"])
async def test_missing_model_says_to_pull_it(
    upstream: FakeUpstream, make_provider: ProviderFactory, path: str
) -> None:
    body = {"error": 'model "llama9" not found, try pulling it first'}
    upstream.route("POST", CHAT, Reply.json(body, 404))
    provider = make_provider()
    with pytest.raises(ModelNotFoundError) as caught:
        if path == "stream":
            await collect(provider.stream(_request("llama9")))
        else:
            await provider.complete(_request("llama9"))
    assert "ollama pull llama9" in str(caught.value)
    assert (caught.value.connection, caught.value.model, caught.value.status) == (
        "local",
        "llama9",
        404,
    )
    assert caught.value.url == f"{upstream.url}{CHAT}"


async def test_terse_404_still_names_the_requested_model(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route("POST", CHAT, Reply.json({"error": "not found"}, 404))
    with pytest.raises(ModelNotFoundError, match="ollama pull qwen2.5-coder:7b"):
        await collect(make_provider().stream(_request("qwen2.5-coder:7b")))


# --- the network -------------------------------------------------------------------


async def test_body_that_ends_without_done_is_not_complete(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    # A clean end of body (terminating chunk sent) but no "done": true line.
    truncated = b"".join(Reply.fixture(STREAM).body.splitlines(keepends=True)[:5])
    upstream.route("POST", CHAT, Reply(body=truncated, chunks=[64]))
    with pytest.raises(NetworkError):
        await collect(make_provider().stream(_request()))
