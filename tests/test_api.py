from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from keyring.backends import null

import modelport
from modelport import _api
from modelport.auth.keys import set_key
from modelport.config import Config, modelport_home, set_connection
from modelport.errors import AuthError, InvalidRequestError
from modelport.events import FinishEvent, TextEvent, UsageEvent
from modelport.plugin_host.host import PluginHost
from modelport.providers import BUILTIN_PROVIDERS, ConnectionSettings
from modelport.routing import Router, plugin_host
from modelport.testing import FakeProvider, FakeUpstream, Reply
from modelport.types import (
    ChatResponse,
    Message,
    Reasoning,
    ToolChoice,
    ToolDefinition,
)

HELLO = [TextEvent(text="Hel"), TextEvent(text="lo"), UsageEvent(input_tokens=2, output_tokens=1)]
MESSAGES = [Message(role="user", content="hi")]


def fake_router(*replies: object, name: str = "fake") -> tuple[Router, FakeProvider]:
    router = Router(Config(), env={})
    provider = FakeProvider(*replies)  # type: ignore[arg-type]
    router.register_provider(name, provider)
    return router, provider


@pytest.fixture(autouse=True)
def _fresh_background_loop() -> Iterator[None]:
    # The sync twins keep one loop (and one default router) per process; each test
    # gets its own, built from this test's MODELPORT_HOME.
    yield
    _api._background.shutdown()


#: Providers the "fake" compat built for default routers, through the real registry.
BUILT: list[FakeProvider] = []


def make_fake(settings: ConnectionSettings) -> FakeProvider:
    provider = FakeProvider(f"from {settings.name}", connection=settings.name)
    provider.settings = settings
    BUILT.append(provider)
    return provider


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> list[FakeProvider]:
    """A config.toml with connection ``f`` whose providers are FakeProviders."""
    monkeypatch.setitem(BUILTIN_PROVIDERS, "fake", f"{__name__}:make_fake")
    set_connection("f", {"compat": "fake", "base_url": "https://f.example"})
    BUILT.clear()
    return BUILT


# --- the async API -------------------------------------------------------------------


async def test_stream_yields_the_providers_events() -> None:
    router, provider = fake_router([*HELLO, FinishEvent(reason="stop")])
    events = [e async for e in modelport.stream("fake/m", MESSAGES, router=router)]
    assert events == [*HELLO, FinishEvent(reason="stop")]
    assert provider.history[0].model == "m"
    assert provider.history[0].messages == MESSAGES


async def test_complete_aggregates() -> None:
    router, _ = fake_router([*HELLO, FinishEvent(reason="stop")])
    response = await modelport.complete("fake/m", MESSAGES, router=router)
    assert isinstance(response, ChatResponse)
    assert (response.content, response.usage.output_tokens) == ("Hello", 1)
    assert response.finish_reason == "stop"


async def test_every_option_reaches_the_request() -> None:
    router, provider = fake_router("ok")
    tool = ToolDefinition(name="get_weather", parameters={"type": "object"})
    await modelport.complete(
        "fake/m",
        MESSAGES,
        tools=[tool],
        tool_choice=ToolChoice.tool("get_weather"),
        temperature=0.2,
        top_p=0.9,
        max_tokens=100,
        stop="END",
        response_format={"type": "json_object"},
        reasoning="high",
        metadata={"user": "u1"},
        extra={"seed": 1},
        router=router,
    )
    sent = provider.history[0]
    assert sent.tools == [tool]
    assert sent.tool_choice == ToolChoice(mode="tool", name="get_weather")
    assert (sent.temperature, sent.top_p, sent.max_tokens) == (0.2, 0.9, 100)
    assert sent.stop == ["END"]
    assert sent.response_format == {"type": "json_object"}
    assert sent.reasoning == Reasoning(effort="high")
    assert sent.metadata == {"user": "u1"}
    assert sent.extra == {"seed": 1}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ("low", Reasoning(effort="low")),
        (2048, Reasoning(budget_tokens=2048)),
        (Reasoning(effort="minimal"), Reasoning(effort="minimal")),
    ],
)
async def test_reasoning_forms(given: object, expected: Reasoning | None) -> None:
    router, provider = fake_router("ok")
    await modelport.complete("fake/m", MESSAGES, reasoning=given, router=router)  # type: ignore[arg-type]
    assert provider.history[0].reasoning == expected


@pytest.mark.parametrize("given", ["extreme", 0, -5, True, 1.5])
async def test_bad_reasoning_is_refused(given: object) -> None:
    router, provider = fake_router("ok")
    with pytest.raises(InvalidRequestError, match="reasoning"):
        await modelport.complete("fake/m", MESSAGES, reasoning=given, router=router)  # type: ignore[arg-type]
    assert provider.history == []


async def test_stop_as_a_list() -> None:
    router, provider = fake_router("ok")
    await modelport.complete("fake/m", MESSAGES, stop=("a", "b"), router=router)
    assert provider.history[0].stop == ["a", "b"]


@pytest.mark.parametrize("messages", ["hello", {"role": "user", "content": "hi"}, [42]])
async def test_messages_of_the_wrong_shape_are_refused(messages: object) -> None:
    router, _ = fake_router("ok")
    with pytest.raises(InvalidRequestError, match="message"):
        await modelport.complete("fake/m", messages, router=router)  # type: ignore[arg-type]


async def test_openai_shaped_dicts_are_accepted() -> None:
    router, provider = fake_router("ok")
    await modelport.complete(
        "fake/m",
        [
            {"role": "system", "content": "be brief"},
            Message(role="user", content="weather?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
        ],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather by city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        tool_choice="required",
        router=router,
    )
    sent = provider.history[0]
    assert [m.role for m in sent.messages] == ["system", "user", "assistant", "tool"]
    assert sent.messages[0].text == "be brief"
    assert sent.messages[1] == Message(role="user", content="weather?")
    assert sent.messages[2].tool_calls[0].name == "get_weather"
    assert sent.messages[2].tool_calls[0].arguments == '{"city":"Oslo"}'
    assert sent.messages[3].tool_call_id == "call_1"
    assert sent.tools[0].name == "get_weather"
    assert sent.tools[0].description == "Weather by city"
    assert sent.tool_choice == ToolChoice(mode="required")


async def test_openai_shaped_tool_choice_naming_a_function() -> None:
    router, provider = fake_router("ok")
    await modelport.complete(
        "fake/m",
        MESSAGES,
        tool_choice={"type": "function", "function": {"name": "f"}},
        router=router,
    )
    assert provider.history[0].tool_choice == ToolChoice.tool("f")


async def test_connection_overrides_reach_the_provider() -> None:
    router = Router(Config(), env={})
    built: list[ConnectionSettings] = []

    def factory(settings: ConnectionSettings) -> FakeProvider:
        built.append(settings)
        return FakeProvider("ok")

    router.register_provider("acme", factory)
    await modelport.complete(
        "acme/m",
        MESSAGES,
        api_key="sk-call",
        base_url="https://call.example/v1",
        timeout=3,
        max_retries=0,
        router=router,
    )
    assert built[0].api_key == "sk-call"
    assert built[0].base_url == "https://call.example/v1"
    assert (built[0].timeout, built[0].max_retries) == (3, 0)


async def test_list_models() -> None:
    router, _ = fake_router()
    models = await modelport.list_models(router=router)
    assert [m.address for m in models] == ["fake/fake-model"]
    assert [m.id for m in await modelport.list_models("fake", router=router)] == ["fake-model"]


async def test_breaking_out_of_stream_closes_the_upstream() -> None:
    router, provider = fake_router(["a", "b", "c"])
    events = modelport.stream("fake/m", MESSAGES, router=router)
    async for _ in events:
        break
    await events.aclose()  # type: ignore[attr-defined]
    assert provider.cancelled == 1


# --- the default router ------------------------------------------------------------------


async def test_the_default_router_comes_from_config_and_is_shared_within_a_loop(
    configured: list[FakeProvider],
) -> None:
    first = await modelport.complete("f/m", MESSAGES)
    second = await modelport.complete("f/m", MESSAGES)
    assert first.content == second.content == "from f"
    assert len(configured) == 1  # one pooled provider for both calls


def test_the_default_router_is_per_loop_and_closed_with_its_loop(
    configured: list[FakeProvider],
) -> None:
    assert asyncio.run(modelport.complete("f/m", MESSAGES)).content == "from f"
    assert asyncio.run(modelport.complete("f/m", MESSAGES)).content == "from f"
    # A client bound to the first loop is never reused on the second.
    assert len(configured) == 2
    assert all(provider.closed for provider in configured)


# --- the sync twins -----------------------------------------------------------------------


def test_complete_sync_matches_complete(configured: list[FakeProvider]) -> None:
    sync = modelport.complete_sync("f/m", MESSAGES)
    async_ = asyncio.run(modelport.complete("f/m", MESSAGES))
    assert (sync.content, sync.model, sync.finish_reason) == (
        async_.content,
        async_.model,
        async_.finish_reason,
    )


def test_stream_sync_matches_stream(configured: list[FakeProvider]) -> None:
    sync = list(modelport.stream_sync("f/m", MESSAGES))

    async def collect() -> list[object]:
        return [event async for event in modelport.stream("f/m", MESSAGES)]

    assert sync == asyncio.run(collect()) == [TextEvent(text="from f"), FinishEvent(reason="stop")]


def test_list_models_sync_matches_list_models(configured: list[FakeProvider]) -> None:
    assert modelport.list_models_sync() == asyncio.run(modelport.list_models())
    assert [m.address for m in modelport.list_models_sync("f")] == ["f/fake-model"]


def test_sync_calls_share_one_background_loop(configured: list[FakeProvider]) -> None:
    modelport.complete_sync("f/m", MESSAGES)
    modelport.complete_sync("f/m", MESSAGES)
    list(modelport.stream_sync("f/m", MESSAGES))
    assert len(configured) == 1


def test_sync_calls_work_inside_a_running_loop(configured: list[FakeProvider]) -> None:
    async def inside() -> str:
        return modelport.complete_sync("f/m", MESSAGES).content

    assert asyncio.run(inside()) == "from f"


def test_breaking_out_of_stream_sync_cancels_the_upstream() -> None:
    router, provider = fake_router(["a", "b", "c"])
    iterator = modelport.stream_sync("fake/m", MESSAGES, router=router)
    for event in iterator:
        assert event == TextEvent(text="a")
        break
    iterator.close()  # what the garbage collector does once the loop lets go
    assert provider.cancelled == 1


def test_stream_sync_raises_the_streams_error() -> None:
    router, _ = fake_router(AuthError("bad key"))
    with pytest.raises(AuthError, match="bad key"):
        list(modelport.stream_sync("fake/m", MESSAGES, router=router))


def test_complete_sync_raises_the_calls_error() -> None:
    router, _ = fake_router(AuthError("bad key"))
    with pytest.raises(AuthError):
        modelport.complete_sync("fake/m", MESSAGES, router=router)


def test_sync_twins_take_the_same_arguments() -> None:
    pairs = [
        (modelport.stream, modelport.stream_sync),
        (modelport.complete, modelport.complete_sync),
        (modelport.list_models, modelport.list_models_sync),
    ]
    for async_function, sync_function in pairs:
        async_params = inspect.signature(async_function).parameters
        sync_params = inspect.signature(sync_function).parameters
        assert list(async_params) == list(sync_params)
        for name, parameter in async_params.items():
            assert sync_params[name].default == parameter.default
            assert sync_params[name].kind == parameter.kind


def test_the_background_loop_runs_in_a_daemon_thread(configured: list[FakeProvider]) -> None:
    modelport.complete_sync("f/m", MESSAGES)
    threads = [t for t in threading.enumerate() if t.name == "modelport-sync"]
    assert len(threads) == 1
    assert threads[0].daemon
    _api._background.shutdown()
    assert not threads[0].is_alive()
    assert configured[0].closed  # the default router was closed on the way out


def test_a_sync_call_from_the_background_loop_is_refused_not_deadlocked() -> None:
    router, _ = fake_router("ok")

    async def nested() -> str:
        return modelport.complete_sync("fake/m", MESSAGES, router=router).content

    with pytest.raises(RuntimeError, match="await the async function"):
        _api._background.run(nested())


def test_leaving_a_stream_sync_loop_closes_the_stream_without_help() -> None:
    router, provider = fake_router(["a", "b", "c"])
    for event in modelport.stream_sync("fake/m", MESSAGES, router=router):
        assert event == TextEvent(text="a")
        break
    # CPython closes the dropped generator at once, which closes the upstream.
    assert provider.cancelled == 1


def test_breaking_out_of_stream_sync_closes_the_http_request() -> None:
    with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture(
                "openai/chat-stream-text-include-usage.sse", chunks=[400] * 50, chunk_delay=0.5
            ),
        )
        set_connection("up", {"compat": "openai", "base_url": f"{upstream.url}/v1"})
        for event in modelport.stream_sync("up/gpt-4o-mini", MESSAGES):
            assert isinstance(event, TextEvent)
            break
        assert upstream.requests[0].closed.wait(5)


def test_complete_sync_over_http() -> None:
    with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture("openai/chat-stream-text-include-usage.sse"),
        )
        set_connection("up", {"compat": "openai", "base_url": f"{upstream.url}/v1"})
        response = modelport.complete_sync("up/gpt-4o-mini", MESSAGES)
        assert response.content
        assert response.usage.output_tokens > 0
        assert response.model == "up/gpt-4o-mini"


# --- plugin models ------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "example-python"
PLUGIN_ID = "example-python"


def install_example_plugin(home: Path, upstream_url: str, *, key: str | None = "sk-plugin") -> Path:
    """The shipped Python example plugin in ``home/plugins``, pointed at ``upstream_url``.

    It needs no config.toml: its default base URL is rewritten to the fake
    upstream, and its key is stored the way ``modelport keys set`` stores it.
    """
    folder = home / "plugins" / PLUGIN_ID
    shutil.copytree(EXAMPLE, folder)
    plugin = folder / "plugin.py"
    text = plugin.read_text()
    assert 'DEFAULT_BASE_URL = "https://api.openai.com/v1"' in text
    plugin.write_text(text.replace("https://api.openai.com/v1", f"{upstream_url}/v1"))
    if key is not None:
        set_key(PLUGIN_ID, key, backend=null.Keyring())
    return folder


@pytest.fixture
def plugin_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            *[Reply.fixture("openai/chat-stream-text-include-usage.sse") for _ in range(4)],
        )
        yield upstream


async def test_complete_reaches_a_plugin_model_with_no_config(
    plugin_upstream: FakeUpstream,
) -> None:
    install_example_plugin(modelport_home(), plugin_upstream.url)
    router = Router(provider_source=plugin_host)
    try:
        response = await modelport.complete(f"{PLUGIN_ID}/gpt-4o-mini", MESSAGES, router=router)
        assert response.model == f"{PLUGIN_ID}/gpt-4o-mini"
        assert response.content.startswith("I'm unable to provide real-time weather")
        events = [
            e async for e in modelport.stream(f"{PLUGIN_ID}/gpt-4o-mini", MESSAGES, router=router)
        ]
        assert any(isinstance(e, TextEvent) for e in events)
        models = await modelport.list_models(router=router)
        assert [m.address for m in models] == [f"{PLUGIN_ID}/gpt-4o-mini"]
        host = router.provider_source
        assert isinstance(host, PluginHost)
        assert host.describe(PLUGIN_ID)["state"] == "running"
    finally:
        await router.aclose()
    assert host.describe(PLUGIN_ID)["state"] == "stopped"  # closed with the router
    sent = plugin_upstream.requests
    assert len(sent) == 2 and sent[0].headers["authorization"] == "Bearer sk-plugin"
    assert sent[0].json()["model"] == "gpt-4o-mini"


async def test_calls_that_need_no_plugin_never_start_the_host(
    configured: list[FakeProvider],
) -> None:
    (modelport_home() / "plugins" / "broken").mkdir(parents=True)
    (modelport_home() / "plugins" / "broken" / "modelport-plugin.toml").write_text("nonsense")
    router = Router(provider_source=plugin_host)
    try:
        assert (await modelport.complete("f/m", MESSAGES, router=router)).content == "from f"
        assert router.provider_source is None
    finally:
        await router.aclose()


def test_the_default_router_and_the_sync_twins_reach_plugin_models(
    plugin_upstream: FakeUpstream,
) -> None:
    install_example_plugin(modelport_home(), plugin_upstream.url)
    address = f"{PLUGIN_ID}/gpt-4o-mini"
    # asyncio.run cancels every task before the default router closes: the host
    # must still stop its child at once rather than wait for answers that never come.
    started = time.monotonic()
    assert asyncio.run(modelport.complete(address, MESSAGES)).model == address
    assert time.monotonic() - started < 8
    assert modelport.complete_sync(address, MESSAGES).model == address
    assert any(isinstance(e, TextEvent) for e in modelport.stream_sync(address, MESSAGES))
    assert [m.address for m in modelport.list_models_sync()] == [address]
    router = _api._routers[_api._background.loop()]
    host = router.provider_source
    _api._background.shutdown()
    assert isinstance(host, _api._LoopPlugins)
    assert [info["state"] for info in host.host.describe_all()] == ["stopped"]
    assert len(plugin_upstream.requests) == 3


def _open_pipes() -> set[str]:
    pipes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone
            if (target := os.readlink(f"/proc/self/fd/{fd}")).startswith("pipe:"):
                pipes.add(f"{fd} {target}")
    return pipes


def test_asyncio_run_leaves_no_pipe_of_a_killed_plugin_open(
    plugin_upstream: FakeUpstream,
) -> None:
    install_example_plugin(modelport_home(), plugin_upstream.url)
    before = _open_pipes()
    # asyncio.run cancels the tasks that would notice the child's exit and close its
    # pipes; the host kills the child then, and must close them itself.
    response = asyncio.run(modelport.complete(f"{PLUGIN_ID}/gpt-4o-mini", MESSAGES))
    assert response.model == f"{PLUGIN_ID}/gpt-4o-mini"
    assert _open_pipes() == before


# --- on_retry ----------------------------------------------------------------------


async def _no_pause(delay: float) -> None:
    return None


def _flaky_router() -> tuple[Router, FakeProvider]:
    from modelport.errors import NetworkError

    router = Router(Config(), env={}, sleep=_no_pause)
    provider = FakeProvider(NetworkError("down"), NetworkError("down"), "ok")
    router.register_provider("fake", provider)
    return router, provider


async def test_on_retry_hears_every_retry_of_a_stream_and_a_complete_call() -> None:
    heard: list[tuple[int, str, float]] = []

    def on_retry(attempt: int, error: modelport.ModelportError, delay: float) -> None:
        heard.append((attempt, type(error).__name__, delay))

    router, _ = _flaky_router()
    events = [
        e async for e in modelport.stream("fake/m", MESSAGES, on_retry=on_retry, router=router)
    ]
    assert TextEvent(text="ok") in events
    router, _ = _flaky_router()
    response = await modelport.complete("fake/m", MESSAGES, on_retry=on_retry, router=router)
    assert response.content == "ok"
    assert [(a, name) for a, name, _ in heard] == [(1, "NetworkError"), (2, "NetworkError")] * 2
    assert all(0 <= delay <= 1.0 for _, _, delay in heard)


def test_on_retry_works_with_the_sync_twins() -> None:
    heard: list[int] = []
    router, _ = _flaky_router()
    response = modelport.complete_sync(
        "fake/m",
        MESSAGES,
        on_retry=lambda attempt, error, delay: heard.append(attempt),
        router=router,
    )
    assert response.content == "ok"
    assert heard == [1, 2]
    assert "on_retry" in inspect.signature(modelport.stream_sync).parameters
