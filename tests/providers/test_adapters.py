"""What every HTTP adapter does alike: OpenAI-compatible, Anthropic, Ollama, OpenAI Responses.

Each adapter is described once in `_adapters.py`; its own wire details and quirks are
tested in its own module. The upstream is a real `FakeUpstream` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from modelport.aggregate import aggregate
from modelport.errors import (
    ConfigError,
    ModelportError,
    NetworkError,
    RateLimitError,
    UpstreamError,
)
from modelport.events import StreamEvent
from modelport.providers import ConnectionSettings, load_factory
from modelport.providers._http import HttpClient
from modelport.testing import FakeUpstream, Reply
from tests.providers._adapters import ADAPTERS, Adapter, ErrorCase, per_adapter
from tests.providers.conftest import ProviderFactory, collect


@pytest.fixture(params=ADAPTERS, ids=str)
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return request.param


def _assert_no_secret(error: BaseException, adapter: Adapter) -> None:
    assert adapter.key not in str(error)
    assert adapter.key not in repr(error)
    assert adapter.key not in repr(getattr(error, "__dict__", {}))


def test_registered_under_its_compat_name(adapter: Adapter) -> None:
    assert load_factory(adapter.compat) is adapter.provider_class


# --- success paths --------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_stream_split_at_random_boundaries(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter, seed: int
) -> None:
    reply = Reply.fixture(adapter.text_stream, chunks="random", split_seed=seed)
    upstream.route("POST", adapter.chat_path, reply)
    events = await collect(make_provider().stream(adapter.request()))
    response = aggregate(events, model=adapter.model)
    assert (response.content, response.finish_reason) == (adapter.text, "stop")
    assert (response.usage.input_tokens, response.usage.output_tokens) == adapter.usage


async def test_the_key_and_extra_headers_go_upstream(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    upstream.route("POST", adapter.chat_path, Reply.fixture(adapter.text_stream))
    provider = make_provider(api_key=adapter.key, headers={"X-Team": "blue"})
    await collect(provider.stream(adapter.request()))
    [sent] = upstream.requests
    assert (sent.method, sent.path) == ("POST", adapter.chat_path)
    assert sent.headers[adapter.key_header] == adapter.key_value()
    assert sent.headers["x-team"] == "blue"
    assert sent.headers["content-type"] == "application/json"


async def test_another_spelling_of_the_base_url_reaches_the_same_path(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    upstream.route("POST", adapter.chat_path, Reply.fixture(adapter.text_stream))
    provider = make_provider(base_url=f"{upstream.url}{adapter.other_base_suffix}")
    await collect(provider.stream(adapter.request()))
    assert upstream.requests[0].path == adapter.chat_path


async def test_credentials_in_the_base_url_are_a_config_error(adapter: Adapter) -> None:
    settings = ConnectionSettings(
        name="local", compat=adapter.compat, base_url="http://u:pw-s3@h/v1"
    )
    with pytest.raises(ConfigError, match="'local'") as caught:
        adapter.provider_class(settings)
    assert "pw-s3" not in str(caught.value)


# --- error statuses ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["stream", "complete"])
@pytest.mark.parametrize(
    ("adapter", "case"), per_adapter(lambda a: [(c.id, c) for c in a.error_cases])
)
async def test_error_statuses(
    upstream: FakeUpstream,
    make_provider: ProviderFactory,
    adapter: Adapter,
    case: ErrorCase,
    path: str,
) -> None:
    upstream.route("POST", adapter.chat_path, case.reply)
    provider = make_provider(api_key=adapter.key)
    with pytest.raises(case.error_class) as caught:
        if path == "stream":
            await collect(provider.stream(adapter.request()))
        else:
            await provider.complete(adapter.request())
    error = caught.value
    assert error.status == case.status
    assert (error.connection, error.model) == (adapter.connection, adapter.model)
    assert error.url == f"{upstream.url}{adapter.chat_path}"
    _assert_no_secret(error, adapter)


async def test_rate_limit_carries_retry_after(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    upstream.route("POST", adapter.chat_path, adapter.rate_limit)
    with pytest.raises(RateLimitError) as caught:
        await collect(make_provider().stream(adapter.request()))
    assert caught.value.retry_after == adapter.retry_after
    assert caught.value.retryable


async def test_redirects_are_not_followed(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    elsewhere = Reply(status=307, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    upstream.route("POST", adapter.chat_path, elsewhere)
    with pytest.raises(UpstreamError, match="does not follow redirects") as caught:
        await collect(make_provider().stream(adapter.request()))
    assert caught.value.status == 307
    assert len(upstream.requests) == 1


async def test_in_band_error_mid_stream_gets_context(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    upstream.route("POST", adapter.chat_path, adapter.in_band_error)
    with pytest.raises(ModelportError, match=adapter.in_band_message) as caught:
        await collect(make_provider().stream(adapter.request()))
    assert (caught.value.connection, caught.value.model) == (adapter.connection, adapter.model)


# --- the network -------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["usual", "other"])
async def test_connection_refused_raises_on_first_anext(
    make_provider: ProviderFactory, adapter: Adapter, closed_port: int, spelling: str
) -> None:
    root = f"http://127.0.0.1:{closed_port}"
    suffix = adapter.base_suffix if spelling == "usual" else adapter.other_base_suffix
    provider = make_provider(base_url=f"{root}{suffix}", api_key=adapter.key)
    stream = provider.stream(adapter.request())  # nothing happens yet
    with pytest.raises(NetworkError) as caught:
        await anext(stream)
    message = str(caught.value)
    # The message names the base URL as the adapter reads it, whatever its spelling.
    assert f"Cannot reach {root}{adapter.base_suffix} (connection refused)" in message
    assert adapter.refused_hint in message
    assert (caught.value.connection, caught.value.model) == (adapter.connection, adapter.model)
    assert caught.value.url == f"{root}{adapter.chat_path}"
    _assert_no_secret(caught.value, adapter)


async def test_connection_refused_for_list_models(
    make_provider: ProviderFactory, adapter: Adapter, closed_port: int
) -> None:
    provider = make_provider(base_url=f"http://127.0.0.1:{closed_port}{adapter.base_suffix}")
    with pytest.raises(NetworkError, match="connection refused") as caught:
        await provider.list_models()
    assert adapter.refused_hint in str(caught.value)


@pytest.mark.parametrize(
    ("adapter", "drop_after"), per_adapter(lambda a: [(str(n), n) for n in a.drop_points])
)
async def test_dropped_connection_mid_stream(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter, drop_after: int
) -> None:
    reply = Reply.fixture(adapter.long_stream, chunks=[adapter.drop_write], drop_after=drop_after)
    upstream.route("POST", adapter.chat_path, reply)
    received: list[StreamEvent] = []
    with pytest.raises(NetworkError, match="closed mid-response") as caught:
        async for event in make_provider().stream(adapter.request()):
            received.append(event)
    assert not any(event.type == "finish" for event in received)
    assert caught.value.model == adapter.model


async def test_dropped_connection_of_a_complete(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    upstream.route(
        "POST", adapter.chat_path, Reply.fixture(adapter.complete_fixture, drop_after=50)
    )
    with pytest.raises(NetworkError, match="closed mid-response"):
        await make_provider().complete(adapter.request())


@pytest.mark.parametrize("path", ["stream", "complete"])
async def test_hang_times_out_naming_the_setting(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter, path: str
) -> None:
    upstream.route("POST", adapter.chat_path, Reply(hang=True))
    provider = make_provider(timeout=0.25, api_key=adapter.key)
    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        if path == "stream":
            await collect(provider.stream(adapter.request()))
        else:
            await provider.complete(adapter.request())
    assert time.monotonic() - started < 5
    assert "0.25 s" in str(caught.value) and "`timeout`" in str(caught.value)
    assert await upstream.requests[0].wait_closed(5)
    _assert_no_secret(caught.value, adapter)


async def test_stall_mid_stream_times_out(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    stalls = Reply.fixture(adapter.long_stream, chunks=[adapter.first_write], chunk_delay=2.0)
    upstream.route("POST", adapter.chat_path, stalls)
    received: list[StreamEvent] = []
    with pytest.raises(NetworkError, match="0.3 s"):
        async for event in make_provider(timeout=0.3).stream(adapter.request()):
            received.append(event)
    assert received  # the first piece arrived before the stall


async def test_cancelling_the_consumer_closes_the_upstream(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    upstream.route("POST", adapter.chat_path, adapter.slow())
    first = asyncio.Event()

    async def consume() -> None:
        async for _event in make_provider().stream(adapter.request()):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()
    assert await upstream.requests[0].wait_closed(2)
    assert time.monotonic() - started < 0.5


async def test_aclose_on_the_generator_closes_the_upstream(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    upstream.route("POST", adapter.chat_path, adapter.slow())
    stream = make_provider().stream(adapter.request())
    await anext(stream)
    started = time.monotonic()
    await stream.aclose()
    assert await upstream.requests[0].wait_closed(1)
    assert time.monotonic() - started < 0.5


async def test_cancelling_before_the_headers_closes_the_upstream(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    upstream.route("POST", adapter.chat_path, Reply(hang=True))
    task = asyncio.create_task(collect(make_provider().stream(adapter.request())))
    deadline = time.monotonic() + 5
    while not upstream.requests and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await upstream.requests[0].wait_closed(0.5)


async def test_finished_streams_reuse_the_connection(
    upstream: FakeUpstream, make_provider: ProviderFactory, adapter: Adapter
) -> None:
    reply = Reply.fixture(adapter.text_stream, chunks="random", split_seed=5)
    upstream.route("POST", adapter.chat_path, reply)
    provider = make_provider()
    for _ in range(3):
        await collect(provider.stream(adapter.request()))
    assert upstream.open_connections == 1


async def test_a_shared_client_honours_the_connection_timeout(
    upstream: FakeUpstream, adapter: Adapter
) -> None:
    upstream.route("POST", adapter.chat_path, Reply(hang=True))
    client = HttpClient(timeout=60)
    settings = ConnectionSettings(
        name="a",
        compat=adapter.compat,
        base_url=f"{upstream.url}{adapter.base_suffix}",
        api_key=adapter.key,
        timeout=0.2,
    )
    try:
        with pytest.raises(NetworkError, match="0.2 s"):
            await adapter.provider_class(settings, client=client).complete(adapter.request())
    finally:
        await client.aclose()
