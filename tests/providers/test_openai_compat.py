"""What only the OpenAI-compatible adapter does: its wire, its placeholder bearer, the
quirks of servers that speak the format loosely. The scenarios every adapter shares are
in `test_adapters.py`."""

from __future__ import annotations

import asyncio

import pytest

from modelport.aggregate import aggregate
from modelport.errors import ConfigError, ContextTooLongError, NetworkError, ParseError
from modelport.providers import ConnectionSettings
from modelport.providers._http import HttpClient
from modelport.providers._retry import RetryingProvider
from modelport.providers.openai_compat import OpenAICompatProvider
from modelport.testing import FakeUpstream, Reply, fixtures_dir
from tests.providers._adapters import OPENAI, OPENAI_CONTEXT, OPENAI_TEXT_STREAM, Adapter
from tests.providers.conftest import ProviderFactory, collect

CHAT = OPENAI.chat_path
KEY = OPENAI.key
TEXT_STREAM = OPENAI_TEXT_STREAM
_request = OPENAI.request


@pytest.fixture
def adapter() -> Adapter:
    return OPENAI


# --- success paths --------------------------------------------------------------


async def test_stream_says_which_events_came_with_more_in_the_same_read(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    from modelport._bursts import more_ready

    body = (fixtures_dir() / TEXT_STREAM).read_bytes()
    # The role chunk and two text chunks (the role chunk carries no event of its own).
    first_read = 0
    for _ in range(3):
        first_read = body.index(b"\n\n", first_read) + 2
    # A pause between the writes, so the provider sees two reads.
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM, chunks=[first_read], chunk_delay=0.2))
    flags = [more_ready.get() async for _event in make_provider().stream(_request())]
    # Each read's events but its last say "more ready"; nothing is left saying so.
    assert flags[:2] == [True, False]
    assert flags[2:] == [True] * (len(flags) - 3) + [False]
    assert not more_ready.get()


async def test_stream_of_split_tool_call_arguments(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    fixture = "openai/chat-stream-parallel-tool-calls-split-args.sse"
    upstream.route("POST", CHAT, Reply.fixture(fixture, chunks="random", split_seed=9))
    response = aggregate(await collect(make_provider().stream(_request())), model="gpt-4o")
    assert [(c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("get_weather", {"city": "Mexico City"}),
        ("get_product_name", {}),
    ]
    assert response.finish_reason == "tool_calls"


async def test_stream_sends_the_request_the_upstream_expects(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    # The key and extra headers: test_adapters.py::test_the_key_and_extra_headers_go_upstream.
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM))
    await collect(make_provider().stream(_request()))
    [sent] = upstream.requests
    assert (sent.method, sent.path) == ("POST", CHAT)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json() == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Weather in SF?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_keyless_server_gets_a_placeholder_bearer(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM))
    await collect(make_provider(api_key=None).stream(_request("llama3.1:8b")))
    assert upstream.requests[0].headers["authorization"] == "Bearer modelport"


async def test_complete_from_a_json_body(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture("openai/chat-completion-tool-call.json"))
    response = await make_provider().complete(_request())
    [call] = response.tool_calls
    assert (call.id, call.name, call.parsed_arguments()) == (
        "call_TTY8UFNo7rNCaOBUNtlRSvMG",
        "lookup_population",
        {"country": "Crumpet"},
    )
    assert response.finish_reason == "tool_calls"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (92, 17)
    assert response.model == "gpt-4o"
    assert response.id.startswith("chatcmpl-")
    body = upstream.requests[0].json()
    assert body.get("stream", False) is False
    assert "stream_options" not in body


async def test_list_models(upstream: FakeUpstream, make_provider: ProviderFactory) -> None:
    upstream.route(
        "GET",
        "/v1/models",
        Reply.json(
            {
                "object": "list",
                "data": [
                    {"id": "gpt-4o", "object": "model", "owned_by": "openai"},
                    {"id": "llama3.1:8b", "object": "model", "owned_by": "library"},
                ],
            }
        ),
    )
    models = await make_provider().list_models()
    assert [(m.id, m.connection) for m in models] == [("gpt-4o", "local"), ("llama3.1:8b", "local")]
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_no_base_url_is_a_config_error() -> None:
    provider = OpenAICompatProvider(ConnectionSettings(name="work", compat="openai"))
    with pytest.raises(ConfigError, match="base_url"):
        await collect(provider.stream(_request()))
    await provider.aclose()


async def test_a_shared_client_is_not_closed_by_the_provider(upstream: FakeUpstream) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM))
    client = HttpClient(timeout=5)
    settings = ConnectionSettings(name="a", compat="openai", base_url=f"{upstream.url}/v1")
    provider = OpenAICompatProvider(settings, client=client)
    await collect(provider.stream(_request()))
    first = upstream.requests[0]
    await provider.aclose()
    # The pooled connection is still open: the provider did not own the client. (An
    # HttpClient opens a new pool when used after aclose(), so "still usable" alone
    # would pass either way; the connection is what tells.)
    await asyncio.sleep(0.2)
    assert not first.closed.is_set(), "the provider closed the client it was lent"
    await collect(OpenAICompatProvider(settings, client=client).stream(_request()))
    assert upstream.open_connections == 1  # the second request rode the same connection
    await client.aclose()
    assert await first.wait_closed()  # the owner's aclose() closes it


# --- error statuses ----------------------------------------------------------------


async def test_context_too_long_has_numbers(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route("POST", CHAT, Reply.json(OPENAI_CONTEXT, 400))
    with pytest.raises(ContextTooLongError) as caught:
        await collect(make_provider().stream(_request()))
    assert (caught.value.limit, caught.value.actual) == (8192, 9000)


# --- a 2xx answer that is not a stream ----------------------------------------------


async def test_a_json_answer_to_a_stream_request_is_decoded_once(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    # A server that ignores `stream: true` and answers with a chat.completion.
    upstream.route("POST", CHAT, Reply.fixture("openai/chat-completion-tool-call.json"))
    provider = RetryingProvider(make_provider(), max_retries=2)
    response = aggregate(await collect(provider.stream(_request())), model="gpt-4o")
    assert response.tool_calls[0].name == "lookup_population"
    assert response.finish_reason == "tool_calls"
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=utf-8", b"<!doctype html><title>Welcome to nginx</title>"),
        ("text/event-stream", b""),
        ("text/plain", b"Not Found\n"),
    ],
)
async def test_a_body_that_is_no_stream_is_a_parse_error_not_retried(
    upstream: FakeUpstream, make_provider: ProviderFactory, content_type: str, body: bytes
) -> None:
    upstream.route("POST", CHAT, Reply(body=body, content_type=content_type))
    provider = RetryingProvider(make_provider(), max_retries=2)
    with pytest.raises(ParseError) as caught:
        await collect(provider.stream(_request()))
    assert not caught.value.retryable
    assert "does it end in /v1?" in str(caught.value)
    if "html" in content_type:
        assert "HTML page" in str(caught.value)
    assert len(upstream.requests) == 1  # never re-sent (and billed) again


async def test_an_html_page_for_a_complete_says_what_to_check(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route("POST", CHAT, Reply(body=b"<html>login</html>", content_type="text/html"))
    with pytest.raises(ParseError, match="HTML page.*does it end in /v1"):
        await make_provider().complete(_request())


async def test_a_stream_answer_to_a_complete_is_decoded(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM))
    response = await make_provider().complete(_request())
    assert response.content == OPENAI.text


async def test_refused_on_ollamas_port_asks_whether_the_model_is_pulled(
    make_provider: ProviderFactory, closed_port: int
) -> None:
    hint = make_provider(base_url="http://127.0.0.1:11434/v1").hint_for("llama3.1:8b")
    assert "`ollama serve`" in hint
    assert "is the model pulled (`ollama pull llama3.1:8b`)?" in hint
    assert "ollama" not in make_provider().hint_for("llama3.1:8b")
    provider = make_provider(base_url=f"http://127.0.0.1:{closed_port}/v1")
    provider.hint_for = lambda model: hint  # type: ignore[method-assign]
    with pytest.raises(NetworkError) as caught:
        await provider.complete(_request("llama3.1:8b"))
    assert "connection refused" in str(caught.value)
    assert "is the model pulled (`ollama pull llama3.1:8b`)?" in str(caught.value)


# --- local servers: "is it running? start it with …" ------------------------------------


@pytest.mark.parametrize(
    ("name", "url", "expected"),
    [
        ("local", "http://127.0.0.1:11434/v1", "is Ollama running? start it with `ollama serve`"),
        ("local", "http://localhost:1234/v1", "is LM Studio running? start it with `lms server"),
        ("lmstudio", "http://10.0.0.5:4321/v1", "is LM Studio running?"),
        ("local", "http://[::1]:8000/v1", "is vLLM running? start it with `vllm serve MODEL`"),
        ("vllm", "http://gpu-box:9000/v1", "is vLLM running?"),
        ("local", "http://127.0.0.1:8080/v1", "is llama.cpp's server running? start it with"),
        ("llamacpp", "http://gpu-box:80/v1", "`llama-server -m MODEL.gguf --port 8080`"),
    ],
)
def test_each_local_server_gets_its_own_hint(
    make_provider: ProviderFactory, name: str, url: str, expected: str
) -> None:
    assert expected in make_provider(name=name, base_url=url).hint_for("m")


def test_a_remote_server_on_a_local_servers_port_gets_the_general_hint(
    make_provider: ProviderFactory,
) -> None:
    hint = make_provider(name="work", base_url="https://llm.example:8000/v1").hint_for("m")
    assert hint == "is the server running? is the URL right?"


async def test_a_refused_lm_studio_says_how_to_start_it(
    make_provider: ProviderFactory, closed_port: int
) -> None:
    provider = make_provider(name="lmstudio", base_url=f"http://127.0.0.1:{closed_port}/v1")
    with pytest.raises(NetworkError) as caught:
        await collect(provider.stream(_request("qwen2.5-7b-instruct")))
    message = str(caught.value)
    assert "connection refused" in message
    assert "is LM Studio running? start it with `lms server start`" in message


# --- a base_url without /v1 -------------------------------------------------------------


@pytest.mark.parametrize("call", ["stream", "complete", "list_models"])
async def test_a_base_url_without_v1_that_the_server_does_not_answer_says_to_add_it(
    upstream: FakeUpstream, make_provider: ProviderFactory, call: str
) -> None:
    # The server answers under /v1 only (Ollama, vLLM, LM Studio); nothing at the bare root.
    upstream.route("POST", CHAT, Reply.fixture(TEXT_STREAM))
    provider = make_provider(base_url=upstream.url)
    with pytest.raises(ConfigError) as caught:
        if call == "stream":
            await collect(provider.stream(_request()))
        elif call == "complete":
            await provider.complete(_request())
        else:
            await provider.list_models()
    assert f'set base_url = "{upstream.url}/v1" under [connections.{OPENAI.connection}]' in str(
        caught.value
    )
    assert caught.value.status == 404
    assert not caught.value.retryable
    assert [r.path for r in upstream.requests][0] in ("/chat/completions", "/models")


async def test_a_base_url_without_v1_that_the_server_answers_is_used_as_it_is(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    # llama.cpp's server answers /chat/completions as well as /v1/chat/completions.
    upstream.route("POST", "/chat/completions", Reply.fixture(TEXT_STREAM))
    response = await make_provider(base_url=upstream.url).complete(_request())
    assert response.content == OPENAI.text


async def test_a_404_under_v1_is_still_a_missing_model(
    upstream: FakeUpstream, make_provider: ProviderFactory
) -> None:
    from modelport.errors import ModelNotFoundError

    upstream.route(
        "POST", CHAT, Reply.fixture("openai/error-404-model_not_found.sorted.json", status=404)
    )
    with pytest.raises(ModelNotFoundError):
        await make_provider().complete(_request())
