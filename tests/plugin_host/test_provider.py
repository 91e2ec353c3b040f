"""Registration payloads, providerConfig resolution, and the real router."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelport.aggregate import aaggregate
from modelport.config import parse_config
from modelport.errors import (
    AuthError,
    ContextTooLongError,
    InvalidRequestError,
    RateLimitError,
    UpstreamError,
)
from modelport.plugin_host.discovery import PluginDir
from modelport.plugin_host.host import PluginHost
from modelport.plugin_host.provider import (
    normalise_provider_id,
    parse_registration,
    resolve_provider_config,
)
from modelport.routing import Router
from modelport.types import ChatRequest, Message
from tests.plugin_host.conftest import scripted, write_plugin

FIELDS = [
    {"key": "apiKey", "label": "API key", "type": "password", "required": True},
    {"key": "region", "label": "Region", "type": "text", "required": False},
]


def _registration(**overrides: object):
    params = {"providerId": "acme", "configFields": FIELDS, "requiresKey": True, "models": []}
    params.update(overrides)
    return parse_registration(params, plugin="acme-plugin")


def test_provider_ids_are_normalised_and_checked() -> None:
    assert normalise_provider_id("  My Cloud  ") == "my-cloud"
    assert normalise_provider_id("ACME") == "acme"
    for bad in ("", "   ", "a/b", None, 3, "-x"):
        with pytest.raises(InvalidRequestError):
            normalise_provider_id(bad)


def test_models_accept_camel_and_snake_case() -> None:
    registration = _registration(
        models=[
            {
                "id": "big",
                "name": "Big",
                "contextWindow": 100,
                "max_output_tokens": 10,
                "prices": {"input": 1.0, "cacheRead": 0.1},
                "capabilities": {"vision": True, "promptCache": True},
            }
        ],
        capabilities={"reasoning": True},
    )
    [model] = registration.models
    assert (model.address, model.name, model.context_window, model.max_output_tokens) == (
        "acme/big",
        "Big",
        100,
        10,
    )
    assert model.prices.input == 1.0 and model.prices.cache_read == 0.1
    assert model.capabilities.vision and model.capabilities.reasoning
    assert model.capabilities.prompt_cache and model.capabilities.tools


@pytest.mark.parametrize(
    "params",
    [
        {"models": [{"name": "no id"}]},
        {"models": [{"id": "a"}, {"id": "a"}]},
        {"models": "x"},
        {"configFields": [{"label": "no key"}]},
        {"capabilities": "chat"},
        {"capabilities": [["chat"]]},
        {"models": [{"id": "a", "capabilities": 3}]},
    ],
)
def test_bad_registrations_are_refused(params: dict) -> None:
    with pytest.raises(InvalidRequestError):
        _registration(**params)


def test_capabilities_as_a_list_of_strings() -> None:
    registration = _registration(
        capabilities=["chat", "streaming", "vision", "telepathy"],
        models=[{"id": "m"}, {"id": "r", "capabilities": ["reasoning", "prompt_cache"]}],
    )
    plain, reasoner = registration.models
    assert plain.capabilities.vision and plain.capabilities.streaming
    assert not plain.capabilities.tools  # a list says what there is; tools is not in it
    assert reasoner.capabilities.reasoning and reasoner.capabilities.prompt_cache
    assert not reasoner.capabilities.vision  # the model's own list replaces the provider's
    assert registration.warnings == (
        "provider 'acme': unknown capability 'telepathy' ignored (known: chat, completion, "
        "promptCache, reasoning, streaming, tools, vision)",
    )
    assert _registration(capabilities=[]).warnings == ()


def test_model_fields_of_the_wrong_type_are_refused_not_a_crash() -> None:
    for model in (
        {"id": "m", "prices": [1]},
        {"id": "m", "prices": {"input": "cheap"}},
        {"id": "m", "contextWindow": "big"},
        {"id": "m", "name": ["x"]},
    ):
        with pytest.raises(InvalidRequestError, match="model 'm'"):
            _registration(models=[model])


def test_password_fields_come_from_env_then_table_then_keyring() -> None:
    registration = _registration()
    keyring = {"acme": "from-keyring"}
    config = resolve_provider_config(
        registration,
        {"apiKey_env": "ACME_KEY", "region": "eu"},
        get_key=keyring.get,
        environ={"ACME_KEY": "from-env"},
    )
    assert config == {"apiKey": "from-env", "region": "eu"}
    config = resolve_provider_config(registration, {}, get_key=keyring.get, environ={})
    assert config == {"apiKey": "from-keyring"}
    config = resolve_provider_config(registration, {"apiKey": "inline"}, get_key=keyring.get)
    assert config == {"apiKey": "inline"}


def test_a_required_key_that_is_missing_says_what_to_fill() -> None:
    with pytest.raises(AuthError) as caught:
        resolve_provider_config(_registration(), {}, get_key=lambda name: None, environ={})
    message = str(caught.value)
    assert "modelport keys set acme" in message and 'api_key_env = "VAR"' in message
    assert "[connections.acme]" in message and caught.value.connection == "acme"


def test_a_required_text_field_that_is_missing() -> None:
    fields = [{"key": "endpoint", "type": "text", "required": True}]
    registration = _registration(configFields=fields, requiresKey=False)
    with pytest.raises(InvalidRequestError, match=r"needs endpoint.*\[connections.acme\]"):
        resolve_provider_config(registration, {}, get_key=lambda name: None)


async def test_the_router_reaches_plugin_models_by_address(tmp_path: Path) -> None:
    write_plugin(tmp_path / "plugins", "p", scripted("config", "acme"), triggers=["startup"])
    config = parse_config(
        '[connections.acme]\ncompat = "plugin:acme"\ngreeting = "hello"\n'
        '[connections.local]\ncompat = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    router = Router(config)
    host = PluginHost(
        router, dirs=[PluginDir(tmp_path / "plugins", "home")], home=tmp_path, config=config
    )
    try:
        await host.load()
        await host.start_startup_plugins()
        request = ChatRequest(model="acme/m1", messages=[Message(role="user", content="hi")])
        response = await router.complete(request)
        assert response.content == '{"greeting": "hello"}'  # configFields from the connection
        assert "acme/m1" in [m.address for m in await router.list_models("acme")]
        await host.stop("p")
        with pytest.raises(Exception, match="acme"):
            await router.complete(request)
    finally:
        await host.aclose()
        await router.aclose()


async def test_a_provider_may_not_shadow_a_configured_connection(tmp_path: Path) -> None:
    write_plugin(tmp_path / "plugins", "p", scripted("ok", "local"), triggers=["startup"])
    config = parse_config('[connections.local]\ncompat = "openai"\nbase_url = "http://x/v1"\n')
    host = PluginHost(
        Router(config),
        dirs=[PluginDir(tmp_path / "plugins", "home")],
        home=tmp_path,
        config=config,
    )
    try:
        await host.load()
        await host.start_startup_plugins()
        info = host.describe("p")
        assert info["providers"] == [] and "clashes with the connection" in info["problems"][0]
    finally:
        await host.aclose()


async def test_a_provider_may_not_take_a_preset_compat_or_package_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "site" / "mp_acme_pkg-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mp-acme-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[modelport.providers]\nacme-pkg = nowhere:Factory\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "evil", scripted("config", "OpenRouter"), triggers=["startup"])
    write_plugin(plugins, "raw", scripted("config", "raw"), triggers=["startup"])
    write_plugin(plugins, "pkg", scripted("config", "acme-pkg"), triggers=["startup"])
    config = parse_config(
        '[connections.work]\ncompat = "raw"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    router = Router(config, env={"OPENROUTER_API_KEY": "sk-or-env"})
    host = PluginHost(
        router,
        dirs=[PluginDir(plugins, "home")],
        home=tmp_path,
        config=config,
        get_key=lambda name: "sk-or-keyring",
    )
    try:
        await host.load()
        await host.start_startup_plugins()
        assert host.providers == {}
        problems = {name: host.describe(name)["problems"] for name in ("evil", "raw", "pkg")}
        assert "ready-made connection 'openrouter'" in problems["evil"][0]
        assert "compat = 'raw' by [connections.work]" in problems["raw"][0]
        assert "installed provider package" in problems["pkg"][0]
        route = router.resolve("openrouter/some-model")  # still the preset, not the plugin
        assert route.settings.compat == "openai"
        assert route.settings.base_url == "https://openrouter.ai/api/v1"
    finally:
        await host.aclose()
        await router.aclose()


async def test_error_fields_of_the_wrong_type_are_converted_not_a_crash(tmp_path: Path) -> None:
    write_plugin(tmp_path / "plugins", "p", scripted("string_fields"), triggers=["startup"])
    config = parse_config("")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    router = Router(config, env={}, sleep=sleep)
    host = PluginHost(
        router, dirs=[PluginDir(tmp_path / "plugins", "home")], home=tmp_path, config=config
    )

    def ask(text: str) -> ChatRequest:
        return ChatRequest(model="scripted/m1", messages=[Message(role="user", content=text)])

    try:
        await host.load()
        await host.start_startup_plugins()
        with pytest.raises(RateLimitError) as rate:
            await router.complete(ask("rate"))
        assert rate.value.status == 429 and rate.value.retry_after == 3.0
        assert slept and all(delay == 3.0 for delay in slept)  # the plugin's retry-after, honoured
        slept.clear()
        with pytest.raises(UpstreamError) as upstream:
            await router.complete(ask("upstream"))
        assert upstream.value.status == 503 and upstream.value.retry_after is None
        assert slept  # 503 is retryable once it is a number
        with pytest.raises(ContextTooLongError) as context:
            await router.complete(ask("context"))
        assert (context.value.limit, context.value.actual) == (None, None)
    finally:
        await host.aclose()
        await router.aclose()


async def test_a_capability_list_registers_and_an_unknown_name_is_a_warning(
    tmp_path: Path,
) -> None:
    write_plugin(tmp_path / "plugins", "p", scripted("capability_list"), triggers=["startup"])
    host = PluginHost(dirs=[PluginDir(tmp_path / "plugins", "home")], home=tmp_path)
    try:
        await host.load()
        await host.start_startup_plugins()
        info = host.describe("p")
        assert info["state"] == "running" and info["restarts"] == 0
        assert info["providers"][0]["models"] == ["m1"]
        assert info["providers"][0]["capabilities"] == ["chat", "streaming", "vision"]
        assert info["problems"] == [
            "provider.register: provider 'scripted': unknown capability 'telepathy' ignored "
            "(known: chat, completion, promptCache, reasoning, streaming, tools, vision)"
        ]
        [model] = host.models()
        assert model.capabilities.vision and not model.capabilities.tools
    finally:
        await host.aclose()


@pytest.mark.parametrize(
    ("mode", "finish", "output_tokens"),
    [
        ("final_last_chunk", "length", 0),
        ("final_empty", "length", 0),
        ("final_null", "length", 0),
        ("final_chunk_with_usage", "length", 2),
        ("final_thin", "stop", 0),
        ("ok", "stop", 2),
    ],
)
async def test_the_stream_is_built_from_its_chunks_whatever_the_final_answer(
    tmp_path: Path, mode: str, finish: str, output_tokens: int
) -> None:
    write_plugin(tmp_path / "plugins", "p", scripted(mode), triggers=["startup"])
    host = PluginHost(dirs=[PluginDir(tmp_path / "plugins", "home")], home=tmp_path)
    try:
        await host.load()
        await host.start_startup_plugins()
        request = ChatRequest(model="m1", messages=[Message(role="user", content="hi")])
        response = await aaggregate(host.providers["scripted"].stream(request), model="m1")
        assert response.content == "Hello" and response.finish_reason == finish
        assert response.usage.output_tokens == output_tokens
    finally:
        await host.aclose()


async def test_a_start_that_fails_on_a_refused_registration_is_not_retried(
    tmp_path: Path,
) -> None:
    write_plugin(tmp_path / "plugins", "p", scripted("fail_after_refusal"), triggers=["startup"])
    host = PluginHost(
        dirs=[PluginDir(tmp_path / "plugins", "home")], home=tmp_path, restart_backoff=0.01
    )
    try:
        await host.load()
        await host.start_startup_plugins()
        await asyncio.sleep(0.3)
        info = host.describe("p")
        assert info["state"] == "crashed" and info["restarts"] == 0
        assert "shadow the built-in 'openai'" in info["error"]
        assert "restarting cannot" in info["error"]
        assert host._plugins["p"].restart_task is None
    finally:
        await host.aclose()


async def test_requires_key_without_a_password_field_is_refused(tmp_path: Path) -> None:
    write_plugin(tmp_path / "plugins", "p", scripted("requires_key_no_field"), triggers=["startup"])
    host = PluginHost(dirs=[PluginDir(tmp_path / "plugins", "home")], home=tmp_path)
    try:
        await host.load()
        await host.start_startup_plugins()
        info = host.describe("p")
        assert info["state"] == "running" and info["providers"] == []
        assert "requiresKey but declares no password field" in info["problems"][0]
    finally:
        await host.aclose()
