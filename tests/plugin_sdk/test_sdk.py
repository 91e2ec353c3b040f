"""The Python plugin SDK: a real plugin process built with it, run by the real host."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import modelport.plugin_sdk as sdk
from modelport.aggregate import aaggregate
from modelport.config import parse_config
from modelport.errors import AuthError, ModelNotFoundError, PluginError, RateLimitError
from modelport.events import FinishEvent, TextEvent, UsageEvent
from modelport.plugin_host.conformance import check_plugin
from modelport.plugin_host.discovery import PluginDir
from modelport.plugin_host.host import PluginHost
from modelport.plugin_sdk import ChunkAssembler
from modelport.routing import Router
from modelport.types import ChatRequest, Message

ECHO = Path(__file__).with_name("_echo_plugin.py")


def _write(parent: Path) -> Path:
    folder = parent / "echo"
    folder.mkdir(parents=True)
    (folder / "modelport-plugin.toml").write_text(
        'name = "echo"\nversion = "0.1.0"\ntype = "llm-provider"\n'
        f'command = ["python", "{ECHO}"]\ntriggers = ["startup"]\n'
    )
    return folder


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[PluginHost]:
    _write(tmp_path / "plugins")
    config = parse_config(
        '[connections.echo-bot]\ncompat = "plugin:echo-bot"\nprefix = "you said: "\n'
    )
    host = PluginHost(
        dirs=[PluginDir(tmp_path / "plugins", "home")],
        home=tmp_path / "home",
        config=config,
        shutdown_timeout=2.0,
    )
    await host.load()
    await host.start_startup_plugins()
    yield host
    await host.aclose()


def _ask(text: str, model: str = "echo-1") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content=text)])


async def test_registration_normalises_the_id_and_keeps_model_details(host: PluginHost) -> None:
    info = host.describe("echo", stderr=True)
    assert info["state"] == "running", info
    assert info["providers"][0]["id"] == "echo-bot"
    assert info["providers"][0]["models"] == ["echo-1", "tools-1"]
    assert host.models()[0].context_window == 4096
    assert "starting as echo" in info["stderr"]  # print() went to stderr, not the protocol


async def test_an_async_generator_streams_text_with_provider_config(host: PluginHost) -> None:
    events = [e async for e in host.providers["echo-bot"].stream(_ask("hello there"))]
    texts = [e.text for e in events if isinstance(e, TextEvent)]
    assert texts == ["you ", "said: ", "hello ", "there "]
    response = await aaggregate(_replay(events), model="echo-1")
    assert response.finish_reason == "stop" and response.usage.input_tokens == 4


async def _replay(events: list) -> AsyncIterator:
    for event in events:
        yield event


async def test_tool_calls_stream_out_of_order_and_aggregate_by_index(host: PluginHost) -> None:
    provider = host.providers["echo-bot"]
    response = await aaggregate(provider.stream(_ask("x", "tools-1")), model="tools-1")
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("a", "first", "{}"),
        ("b", "second", '{"x": 1}'),
    ]
    assert response.finish_reason == "tool_calls"


async def test_completion_handlers_return_or_send_chunks(host: PluginHost) -> None:
    provider = host.providers["echo-bot"]
    assert (await provider.complete(_ask("x", "echo-1"))).content == "sent chunks"
    explicit = await provider.complete(_ask("x", "tools-1"))
    assert explicit.content == "explicit" and explicit.finish_reason == "length"


async def test_send_reply_and_send_error(host: PluginHost) -> None:
    provider = host.providers["echo-bot"]
    assert (await provider.complete(_ask("manual"))).content == "answered by hand"
    with pytest.raises(AuthError) as caught:
        await provider.complete(_ask("manual error"))
    assert caught.value.status == 401 and caught.value.connection == "echo-bot"


async def test_send_reply_takes_the_guides_success_flag(host: PluginHost) -> None:
    with pytest.raises(PluginError, match="upstream said no"):
        await host.providers["echo-bot"].complete(_ask("failed reply"))


async def test_a_last_chunk_reply_is_answered_with_the_whole_response(host: PluginHost) -> None:
    response = await aaggregate(
        host.providers["echo-bot"].stream(_ask("last chunk reply")), model="echo-1"
    )
    assert response.content == "one two" and response.finish_reason == "stop"


async def test_options_carry_provider_config_as_sent(host: PluginHost) -> None:
    seen = json.loads((await host.providers["echo-bot"].complete(_ask("options"))).content)
    assert seen["providerConfig"] == {"prefix": "you said: "}
    assert "providerConfig" not in seen["body"] and seen["body"]["model"] == "echo-1"


async def test_a_raised_error_keeps_its_class(host: PluginHost) -> None:
    with pytest.raises(RateLimitError) as caught:
        [e async for e in host.providers["echo-bot"].stream(_ask("rate"))]
    assert caught.value.retry_after == 3 and caught.value.status == 429


async def test_a_cancelled_request_cancels_the_handler(host: PluginHost) -> None:
    stream = host.providers["echo-bot"].stream(_ask("wait"))
    assert await anext(stream) == TextEvent(text="waiting ")
    await stream.aclose()
    for _ in range(100):
        await asyncio.sleep(0.02)
        if any(
            "handler cancelled" in line for line in host.describe("echo", stderr=True)["stderr"]
        ):
            break
    else:
        raise AssertionError("the handler was not cancelled")
    events = [e async for e in host.providers["echo-bot"].stream(_ask("still here"))]
    assert any(isinstance(e, TextEvent) and e.text == "here " for e in events)


async def test_on_stop_runs_at_shutdown(host: PluginHost) -> None:
    await host.stop("echo")
    info = host.describe("echo", stderr=True)
    assert info["state"] == "stopped" and info["exit_code"] == 0
    assert "on_stop ran" in info["stderr"]


async def test_the_sdk_plugin_passes_the_conformance_checks(tmp_path: Path) -> None:
    results = await check_plugin(_write(tmp_path), timeout=10.0)
    assert [(r.name, r.ok) for r in results] == [
        ("manifest", True),
        ("initialize", True),
        ("register", True),
        ("stream", True),
        ("complete", True),
        ("cancel", True),
        ("errors", True),
        ("shutdown", True),
    ], results


def test_the_assembler_builds_the_whole_response() -> None:
    assembler = ChunkAssembler(model="m")
    for chunk in (
        {"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 2, "id": "z"}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "a"}]}}]},
        {"choices": [{"index": 1, "delta": {"content": "other choice"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
    ):
        assembler.add(chunk)
    result = assembler.result()
    message = result["choices"][0]["message"]
    assert message["content"] == "Hi" and message["reasoning_content"] == "hmm"
    assert [c["id"] for c in message["tool_calls"]] == ["a", "z"]
    assert result["choices"][0]["finish_reason"] == "tool_calls"
    assert result["usage"] == {"prompt_tokens": 1, "completion_tokens": 1}


def test_the_public_names() -> None:
    assert sorted(sdk.__all__) == sdk.__all__
    for name in (
        "plugin",
        "llm_provider",
        "send_chunk",
        "send_reply",
        "send_error",
        "unregister",
    ):
        assert hasattr(sdk, name)
    for name in ("on_start", "on_stop", "run"):
        assert callable(getattr(sdk.plugin, name))
    for name in ("register", "on_completion_request", "on_stream_request", "unregister"):
        assert callable(getattr(sdk.llm_provider, name))


async def test_unknown_providers_are_refused(host: PluginHost) -> None:
    process = host._live_process(host._plugins["echo"])  # the raw protocol, bypassing the host
    call = await process.call(
        "provider.complete",
        {"requestId": "r-x", "providerId": "nope", "options": {"model": "m", "messages": []}},
        request_id="r-x",
    )
    with pytest.raises(ModelNotFoundError, match="no provider 'nope'"):
        await process.next(call, 5.0)


def test_importing_the_sdk_stays_light() -> None:
    import subprocess

    code = (
        "import sys, modelport.plugin_sdk; "
        "heavy = ('httpx', 'aiohttp', 'starlette', 'modelport.plugin_host', 'modelport.routing'); "
        "print([m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_subclass_of_a_modelport_error_keeps_its_nearest_class(host: PluginHost) -> None:
    with pytest.raises(RateLimitError) as caught:
        [e async for e in host.providers["echo-bot"].stream(_ask("quota"))]
    assert caught.value.retry_after == 9 and caught.value.status == 429


ONE_HANDLER = Path(__file__).with_name("_one_handler_plugin.py")


@pytest.mark.parametrize(
    ("kind", "text"), [("complete", "whole answer"), ("stream", "streamed answer")]
)
async def test_one_handler_answers_both_stream_and_complete_through_the_router(
    tmp_path: Path, kind: str, text: str
) -> None:
    folder = tmp_path / "plugins" / "one"
    folder.mkdir(parents=True)
    (folder / "modelport-plugin.toml").write_text(
        'name = "one"\nversion = "0.1.0"\ntype = "llm-provider"\n'
        f'command = ["python", "{ONE_HANDLER}", "{kind}"]\ntriggers = ["startup"]\n'
    )
    config = parse_config("")
    router = Router(config, env={})
    host = PluginHost(
        router, dirs=[PluginDir(tmp_path / "plugins", "home")], home=tmp_path, config=config
    )
    request = ChatRequest(model=f"only-{kind}/m", messages=[Message(role="user", content="hi")])
    try:
        await host.load()
        await host.start_startup_plugins()
        events = [event async for event in router.stream(request)]
        assert "".join(e.text for e in events if isinstance(e, TextEvent)) == text
        finish = [e for e in events if isinstance(e, FinishEvent)]
        usage = [e for e in events if isinstance(e, UsageEvent)]
        assert [e.reason for e in finish] == ["length"]
        assert [(e.input_tokens, e.output_tokens) for e in usage] == [(5, 2)]
        completed = await router.complete(request)
        assert (completed.content, completed.finish_reason) == (text, "length")
        assert completed.usage.input_tokens == 5
    finally:
        await host.aclose()
        await router.aclose()
