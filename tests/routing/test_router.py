from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from keyring.backends import null

from modelport.auth.keys import set_key
from modelport.config import PRESETS, Config, ConnectionConfig, parse_config
from modelport.errors import (
    AuthError,
    ConfigError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    PluginError,
    UpstreamError,
)
from modelport.events import FinishEvent, StreamEvent, TextEvent, UsageEvent
from modelport.providers import BUILTIN_PROVIDERS, ConnectionSettings
from modelport.routing import ConnectionModels, Router, UsageTracker, is_local_url
from modelport.testing import FakeProvider, FakeReply, FakeUpstream, Reply
from modelport.types import ChatRequest, Message, ModelInfo, ModelPrices


def request(model: str = "fake/m") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="hi")])


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def router(text: str = "", env: dict[str, str] | None = None, **kwargs: Any) -> Router:
    return Router(parse_config(text), env=env if env is not None else {}, sleep=Sleeps(), **kwargs)


#: Providers the "fake" compat built, through the real load_factory registry.
BUILT: list[FakeProvider] = []


def make_fake(settings: ConnectionSettings) -> FakeProvider:
    provider = FakeProvider(connection=settings.name)
    provider.settings = settings
    BUILT.append(provider)
    return provider


@pytest.fixture
def fake_compat(monkeypatch: pytest.MonkeyPatch) -> list[FakeProvider]:
    monkeypatch.setitem(BUILTIN_PROVIDERS, "fake", f"{__name__}:make_fake")
    BUILT.clear()
    return BUILT


# --- settings: the precedence ladder ------------------------------------------------


def test_defaults_for_a_configured_connection() -> None:
    settings = router("[connections.work]\nbase_url = 'https://llm.example/v1'").settings_for(
        "work"
    )
    assert settings == ConnectionSettings(
        name="work", compat="openai", base_url="https://llm.example/v1", timeout=60.0, max_retries=2
    )


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8000/v1", "http://127.0.0.1:1234/v1", "http://[::1]:8080", "http://0.0.0.0"],
)
def test_local_servers_get_one_retry(url: str) -> None:
    settings = router(f"[connections.local]\nbase_url = '{url}'").settings_for("local")
    assert settings.max_retries == 1
    assert is_local_url(url)


def test_remote_urls_are_not_local() -> None:
    assert not is_local_url("https://api.openai.com/v1")
    assert not is_local_url("http://10.0.0.5:8000/v1")
    assert not is_local_url(None)


def test_the_ollama_preset_is_local() -> None:
    assert router().settings_for("ollama").max_retries == 1


def test_config_beats_preset_beats_environment() -> None:
    env = {"MODELPORT_BASE_URL": "http://env.example/v1"}
    configured = router("[connections.openrouter]\nbase_url = 'http://config/v1'", env)
    assert configured.settings_for("openrouter").base_url == "http://config/v1"
    # MODELPORT_BASE_URL never redirects a preset: only a connection with no URL gets it.
    assert router("", env).settings_for("openrouter").base_url == "https://openrouter.ai/api/v1"
    assert router("[connections.bare]", env).settings_for("bare").base_url == (
        "http://env.example/v1"
    )


def test_call_overrides_beat_everything() -> None:
    text = """
[connections.work]
base_url = "https://work/v1"
timeout = 10
max_retries = 4
headers = { "X-A" = "config", "X-B" = "config" }
"""
    settings = router(text).settings_for(
        "work",
        api_key="sk-call",
        base_url="https://call/v1",
        timeout=3,
        max_retries=0,
        headers={"X-B": "call"},
    )
    assert settings.api_key == "sk-call"
    assert settings.base_url == "https://call/v1"
    assert settings.timeout == 3
    assert settings.max_retries == 0
    assert settings.headers == {"X-A": "config", "X-B": "call"}


def test_config_values_reach_the_settings() -> None:
    text = """
[connections.work]
compat = "anthropic"
base_url = "https://work"
timeout = 10
max_retries = 0
retry_base_delay = 0.25
retry_max_delay = 3
temperature = 0.2
max_tokens = 4096
anthropic_version = "2024-01-01"
"""
    settings = router(text).settings_for("work")
    assert (settings.compat, settings.timeout, settings.max_retries) == ("anthropic", 10, 0)
    assert (settings.retry_base_delay, settings.retry_max_delay) == (0.25, 3.0)
    assert (settings.temperature, settings.max_tokens) == (0.2, 4096)
    assert settings.options == {"anthropic_version": "2024-01-01"}


def test_an_openai_compatible_connection_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match=r"no base_url.*\[connections.work\]"):
        router("[connections.work]\ncompat = 'openai'").settings_for("work")


def test_an_unknown_connection_lists_the_configured_ones() -> None:
    r = router(
        "[connections.alpha]\nbase_url='http://a/v1'\n[connections.beta]\nbase_url='http://b/v1'"
    )
    with pytest.raises(ModelNotFoundError) as caught:
        r.settings_for("gamma")
    message = str(caught.value)
    assert "'gamma'" in message
    assert "Configured: alpha, beta" in message
    assert "openrouter" in message  # the ready-made presets
    assert caught.value.connection == "gamma"


# --- settings: the key ladder ----------------------------------------------------------


def test_a_stored_key_is_used() -> None:
    set_key("work", "sk-stored", backend=null.Keyring())
    r = router(
        "[connections.work]\nbase_url = 'https://w/v1'\napi_key_env = 'WORK_KEY'",
        {"WORK_KEY": "sk-env", "MODELPORT_API_KEY": "sk-generic"},
    )
    assert r.settings_for("work").api_key == "sk-stored"
    assert r.settings_for("work", api_key="sk-call").api_key == "sk-call"


def test_api_key_env_comes_before_the_generic_variable() -> None:
    text = "[connections.work]\nbase_url = 'https://w/v1'\napi_key_env = 'WORK_KEY'"
    env = {"WORK_KEY": "sk-work", "MODELPORT_API_KEY": "sk-generic"}
    assert router(text, env).settings_for("work").api_key == "sk-work"
    assert router(text, {"MODELPORT_API_KEY": "sk-generic"}).settings_for("work").api_key == (
        "sk-generic"
    )
    assert router(text).settings_for("work").api_key is None


def test_the_vendor_variable_is_used_for_the_vendor() -> None:
    env = {"OPENAI_API_KEY": "sk-openai", "ANTHROPIC_API_KEY": "sk-ant", "GROQ_API_KEY": "gsk"}
    r = router("", env)
    assert r.settings_for("openai").api_key == "sk-openai"
    assert r.settings_for("anthropic").api_key == "sk-ant"
    assert r.settings_for("groq").api_key == "gsk"
    configured = router("[connections.openai]\ntimeout = 5", env)
    assert configured.settings_for("openai").api_key == "sk-openai"


def test_the_vendor_variable_never_goes_to_another_url() -> None:
    env = {"OPENAI_API_KEY": "sk-openai", "MODELPORT_BASE_URL": "http://elsewhere/v1"}
    proxied = router("[connections.openai]\nbase_url = 'https://proxy.example/v1'", env)
    assert proxied.settings_for("openai").api_key is None
    # MODELPORT_BASE_URL does not apply to a preset, so the key goes to OpenAI's own URL.
    settings = router("", env).settings_for("openai")
    assert (settings.base_url, settings.api_key) == ("https://api.openai.com/v1", "sk-openai")
    assert (
        router("", {"OPENAI_API_KEY": "sk-openai"})
        .settings_for("openai", base_url="https://other/v1")
        .api_key
        is None
    )


def test_the_vendor_variable_never_goes_to_another_connection() -> None:
    env = {"OPENAI_API_KEY": "sk-openai"}
    r = router("[connections.mine]\nbase_url = 'https://api.openai.com/v1'", env)
    assert r.settings_for("mine").api_key is None
    assert r.settings_for("openrouter").api_key is None
    assert r.settings_for("lmstudio").api_key is None


def test_the_generic_key_never_goes_to_a_preset_url() -> None:
    env = {"MODELPORT_API_KEY": "sk-generic"}
    assert router("", env).settings_for("openrouter").api_key is None
    assert router("", env).settings_for("anthropic").api_key is None


def test_stored_keys_are_read_once_until_forgotten() -> None:
    r = router("[connections.work]\nbase_url = 'https://w/v1'")
    assert r.settings_for("work").api_key is None
    set_key("work", "sk-later", backend=null.Keyring())
    assert r.settings_for("work").api_key is None
    r.forget_keys()
    assert r.settings_for("work").api_key == "sk-later"


def test_settings_never_show_the_key() -> None:
    settings = router("", {"OPENAI_API_KEY": "sk-secret"}).settings_for("openai")
    assert "sk-secret" not in repr(settings)
    assert "api_key_env='OPENAI_API_KEY'" in repr(settings)  # a name, not a secret


def test_settings_name_the_variable_the_key_comes_from() -> None:
    text = "[connections.work]\nbase_url = 'https://w/v1'\napi_key_env = 'WORK_KEY'"
    r = router(text, {"MODELPORT_BASE_URL": "http://elsewhere/v1"})
    # Named whether or not the variable is set (a "no key" message says to set it).
    assert r.settings_for("work").api_key_env == "WORK_KEY"
    assert r.settings_for("work", api_key="sk-call").api_key_env == "WORK_KEY"
    # A per-call URL elsewhere reads no variable, so none is named.
    assert r.settings_for("work", base_url="https://other/v1").api_key_env is None
    assert r.settings_for("work", base_url="https://w/v1/").api_key_env == "WORK_KEY"
    # The vendor's variable, only for the vendor's connection and URL.
    assert r.settings_for("anthropic").api_key_env == "ANTHROPIC_API_KEY"
    assert r.settings_for("openai").api_key_env == "OPENAI_API_KEY"
    assert r.settings_for("openai", base_url="https://proxy/v1").api_key_env is None
    both = router("[connections.openai]\napi_key_env = 'MY_OPENAI'")
    assert both.settings_for("openai").api_key_env == "MY_OPENAI"
    assert r.settings_for("lmstudio").api_key_env is None  # a local server's preset has none
    # No URL of its own: MODELPORT_BASE_URL, whose key is MODELPORT_API_KEY, not a named one.
    bare = router("[connections.box]\ncompat = 'openai'", {"MODELPORT_BASE_URL": "http://b/v1"})
    assert bare.settings_for("box").api_key_env is None


# --- resolving and provider construction ------------------------------------------------


def test_resolve_builds_providers_through_the_registry(fake_compat: list[FakeProvider]) -> None:
    r = router("[connections.f]\ncompat = 'fake'\naliases_are = 'options'\n[aliases]\nx = 'f/m1'")
    route = r.resolve("x")
    assert (route.connection, route.model, route.address) == ("f", "m1", "f/m1")
    assert route.provider is fake_compat[0]
    assert route.settings.options == {"aliases_are": "options"}


def test_providers_are_cached_per_connection_and_settings(
    fake_compat: list[FakeProvider],
) -> None:
    r = router("[connections.f]\ncompat = 'fake'\n[connections.g]\ncompat = 'fake'")
    first = r.resolve("f/a").provider
    assert r.resolve("f/b").provider is first
    assert r.resolve("g/a").provider is not first
    assert r.resolve("f/a", timeout=5).provider is not first
    assert len(fake_compat) == 3


def test_an_unknown_compat_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Unknown compat 'nope'"):
        router("[connections.f]\ncompat = 'nope'").resolve("f/m")


def test_resolve_uses_the_default_model() -> None:
    r = router('default_model = "fake/m"')
    r.register_provider("fake", FakeProvider())
    assert r.resolve(None).address == "fake/m"


# --- registered providers ----------------------------------------------------------------


def test_a_registered_provider_is_addressable_without_config() -> None:
    r = router()
    provider = FakeProvider()
    r.register_provider("acme", provider)
    route = r.resolve("acme/model-1")
    assert route.provider is provider
    assert route.settings.compat == "plugin:acme"
    assert "acme" in r.connection_names()


def test_a_registered_factory_gets_the_connection_settings() -> None:
    r = router(
        "[connections.acme]\ncompat = 'plugin:acme'\nregion = 'eu'",
        {"MODELPORT_API_KEY": "sk-generic"},
    )
    built: list[ConnectionSettings] = []

    def factory(settings: ConnectionSettings) -> FakeProvider:
        built.append(settings)
        return FakeProvider()

    r.register_provider("acme", factory)
    first = r.resolve("acme/m").provider
    assert r.resolve("acme/n").provider is first
    assert built[0].options == {"region": "eu"}
    assert built[0].api_key == "sk-generic"


def test_a_connection_may_use_a_plugin_provider_under_its_own_name() -> None:
    r = router("[connections.work]\ncompat = 'plugin:acme'\ntenant = 't1'")
    built: list[ConnectionSettings] = []
    r.register_provider("acme", lambda s: built.append(s) or FakeProvider())
    assert r.resolve("work/m").connection == "work"
    assert built[0].name == "work"
    assert built[0].options == {"tenant": "t1"}


def test_unregistering_forgets_providers_built_for_other_connections() -> None:
    r = router("[connections.work]\ncompat = 'plugin:acme'")
    built: list[FakeProvider] = []
    r.register_provider("acme", lambda s: built.append(FakeProvider()) or built[-1])
    first = r.resolve("work/m").provider
    r.unregister_provider("acme")
    r.register_provider("acme", lambda s: built.append(FakeProvider()) or built[-1])
    assert r.resolve("work/m").provider is not first
    assert len(built) == 2


def test_a_plugin_connection_without_its_plugin_says_so() -> None:
    r = router("[connections.work]\ncompat = 'plugin:acme'")
    with pytest.raises(PluginError, match="no running plugin") as caught:
        r.resolve("work/m")
    assert caught.value.plugin == "acme"


def test_registering_over_a_configured_connection_is_refused() -> None:
    r = router("[connections.work]\nbase_url = 'http://w/v1'")
    with pytest.raises(ConfigError, match="shadow"):
        r.register_provider("work", FakeProvider())


def test_registering_a_name_twice_is_refused() -> None:
    r = router()
    r.register_provider("acme", FakeProvider())
    with pytest.raises(ConfigError, match="already registered"):
        r.register_provider("acme", FakeProvider())


def test_registering_an_unaddressable_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="contain '/'"):
        router().register_provider("a/b", FakeProvider())


@pytest.mark.parametrize("preset", ["openai", "openrouter", "groq", "lmstudio"])
def test_a_registered_provider_never_takes_over_a_preset(preset: str) -> None:
    r = router("", {"OPENROUTER_API_KEY": "sk-or", "OPENAI_API_KEY": "sk-openai"})
    with pytest.raises(ConfigError, match="ready-made connection"):
        r.register_provider(preset, FakeProvider())
    route = r.resolve(f"{preset}/m")
    assert not isinstance(route.provider, FakeProvider)
    assert route.settings.base_url == PRESETS[preset].base_url


def test_unregister_provider() -> None:
    r = router()
    r.register_provider("acme", lambda s: FakeProvider())
    r.resolve("acme/m")
    r.unregister_provider("acme")
    r.unregister_provider("acme")  # forgetting twice is harmless
    assert r._cache.providers == {}
    with pytest.raises(ModelNotFoundError, match="'acme'"):
        r.resolve("acme/m")


# --- streaming -------------------------------------------------------------------------


async def collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in events]


async def test_stream_sends_the_bare_model_id() -> None:
    r = router()
    provider = FakeProvider("hello")
    r.register_provider("fake", provider)
    events = await collect(r.stream(request("fake/org/model-1")))
    assert events == [TextEvent(text="hello"), FinishEvent(reason="stop")]
    assert provider.history[0].model == "org/model-1"
    assert provider.history[0].messages == request().messages


async def test_stream_retries_with_the_connection_retry_count() -> None:
    sleeps = Sleeps()
    config = parse_config("[connections.acme]\ncompat = 'plugin:acme'\nmax_retries = 3")
    r = Router(config, env={}, sleep=sleeps)
    provider = FakeProvider(NetworkError("down"))
    r.register_provider("acme", provider)
    with pytest.raises(NetworkError):
        await collect(r.stream(request("acme/m")))
    assert len(provider.history) == 4
    assert len(sleeps.delays) == 3


async def test_stream_override_of_max_retries() -> None:
    r = router()
    provider = FakeProvider(NetworkError("down"))
    r.register_provider("fake", provider)
    with pytest.raises(NetworkError):
        await collect(r.stream(request(), max_retries=0))
    assert len(provider.history) == 1


async def test_closing_a_stream_closes_the_provider_stream() -> None:
    r = router()
    provider = FakeProvider(["a", "b", "c"])
    r.register_provider("fake", provider)
    events = r.stream(request())
    assert await events.__anext__() == TextEvent(text="a")
    await events.aclose()  # type: ignore[attr-defined]
    assert provider.cancelled == 1


async def test_cancelling_the_consumer_cancels_the_provider_stream() -> None:
    r = router()
    provider = FakeProvider(["a", "b", "c"], event_delay=10)
    r.register_provider("fake", provider)
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in r.stream(request()):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert provider.cancelled == 1


class RecordingLedger:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.outcomes: list[str] = []
        self.attribution: list[tuple[str, str | None]] = []

    async def track(
        self,
        events: AsyncIterator[StreamEvent],
        *,
        connection: str,
        model: str,
        prices: ModelPrices | None,
        api: str = "python",
        request_id: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        self.calls.append({"connection": connection, "model": model, "prices": prices})
        self.attribution.append((api, request_id))
        try:
            async for event in events:
                yield event
        except ModelportError as error:
            self.outcomes.append(type(error).__name__)
            raise
        self.outcomes.append("ok")


async def test_the_ledger_sees_every_call_with_its_prices() -> None:
    ledger = RecordingLedger()
    assert isinstance(ledger, UsageTracker)
    r = router(
        '[connections.acme]\ncompat = "plugin:acme"\n[connections.acme.prices."m"]\ninput = 3.0',
        ledger=ledger,
    )
    r.register_provider("acme", FakeProvider("hi", AuthError("no")))
    await collect(r.stream(request("acme/m")))
    with pytest.raises(AuthError):
        await collect(r.stream(request("acme/other")))
    assert ledger.calls == [
        {"connection": "acme", "model": "m", "prices": ModelPrices(input=3.0)},
        {"connection": "acme", "model": "other", "prices": None},
    ]
    assert ledger.outcomes == ["ok", "AuthError"]


async def test_calls_are_attributed_to_their_front_end_and_request_id() -> None:
    ledger = RecordingLedger()
    r = router(ledger=ledger)
    r.register_provider("fake", FakeProvider("a", "b", "c"))
    await collect(r.stream(request()))
    await collect(r.stream(request(), api="openai", request_id="req-1"))
    await r.complete(request(), api="cli", request_id="req-2")
    assert ledger.attribution == [("python", None), ("openai", "req-1"), ("cli", "req-2")]


async def test_the_real_ledger_records_api_and_request_id(tmp_path: Path) -> None:
    from modelport.ledger import open_ledger

    ledger = open_ledger(url=f"sqlite:///{tmp_path / 'usage.db'}")
    try:
        r = router(ledger=ledger)
        r.register_provider("fake", FakeProvider("a", "b"))
        await r.complete(request(), api="anthropic", request_id="msg-42")
        await collect(r.stream(request()))
        assert await ledger.aflush(timeout=10)
        recent = await ledger.arecent()
    finally:
        await ledger.aclose()
    assert [(c.api, c.request_id, c.connection, c.model) for c in recent] == [
        ("python", None, "fake", "m"),
        ("anthropic", "msg-42", "fake", "m"),
    ]


async def test_a_retried_call_is_one_ledger_entry() -> None:
    ledger = RecordingLedger()
    r = router(ledger=ledger)
    r.register_provider("fake", FakeProvider(NetworkError("blip"), "ok"))
    await collect(r.stream(request()))
    assert ledger.outcomes == ["ok"]


# --- fallbacks -------------------------------------------------------------------------


FALLBACKS = """
[aliases]
main = "primary/m"
[fallbacks]
"primary/m" = ["second/m2", "third/m3"]
"""


def fallback_router(*replies: Any, **kwargs: Any) -> tuple[Router, list[FakeProvider]]:
    r = router(FALLBACKS, **kwargs)
    providers = [FakeProvider(reply) for reply in replies]
    for name, provider in zip(["primary", "second", "third"], providers, strict=False):
        r.register_provider(name, provider)
    return r, providers


async def test_no_fallback_without_configuration() -> None:
    r = router()
    r.register_provider("solo", FakeProvider(NetworkError("down")))
    r.register_provider("other", FakeProvider("never"))
    with pytest.raises(NetworkError):
        await collect(r.stream(request("solo/m"), max_retries=0))


async def test_a_retryable_failure_falls_back_in_order(caplog: pytest.LogCaptureFixture) -> None:
    r, (primary, second, third) = fallback_router(
        NetworkError("down"), UpstreamError("busy", status=503), "third answers"
    )
    events = await collect(r.stream(request("main"), max_retries=0))
    assert events[0] == TextEvent(text="third answers")
    assert [len(p.history) for p in (primary, second, third)] == [1, 1, 1]
    assert third.history[0].model == "m3"
    assert "falling back to second/m2" in caplog.text
    assert "falling back to third/m3" in caplog.text


async def test_fallbacks_apply_to_the_resolved_address_too() -> None:
    r, (primary, second) = fallback_router(NetworkError("down"), "second answers")
    response = await r.complete(request("primary/m"), max_retries=0)
    assert response.content == "second answers"
    assert response.model == "second/m2"


async def test_no_fallback_on_a_failure_that_is_not_retryable() -> None:
    r, (primary, second) = fallback_router(AuthError("bad key", status=401), "never")
    with pytest.raises(AuthError):
        await collect(r.stream(request("main")))
    assert second.history == []


async def test_no_fallback_once_an_event_reached_the_caller() -> None:
    r, (primary, second) = fallback_router(
        FakeReply(events=["partial"], error=NetworkError("dropped")), "never"
    )
    with pytest.raises(NetworkError, match="dropped"):
        await collect(r.stream(request("main")))
    assert second.history == []


async def test_the_last_fallback_failure_is_raised() -> None:
    r, _ = fallback_router(NetworkError("a"), NetworkError("b"), NetworkError("c"))
    with pytest.raises(NetworkError, match="c"):
        await collect(r.stream(request("main"), max_retries=0))


async def test_call_overrides_do_not_travel_to_a_fallback() -> None:
    r = router(FALLBACKS)
    built: dict[str, ConnectionSettings] = {}

    def factory(reply: Any) -> Any:
        def build(settings: ConnectionSettings) -> FakeProvider:
            built[settings.name] = settings
            return FakeProvider(reply)

        return build

    r.register_provider("primary", factory(NetworkError("down")))
    r.register_provider("second", factory("ok"))
    await collect(r.stream(request("main"), api_key="sk-for-primary", max_retries=0, timeout=7))
    assert built["primary"].api_key == "sk-for-primary"
    assert built["second"].api_key is None
    assert built["second"].timeout == 7


# --- complete --------------------------------------------------------------------------


async def test_complete_aggregates_the_stream() -> None:
    r = router()
    r.register_provider(
        "fake",
        FakeProvider(
            ["Hel", "lo", UsageEvent(input_tokens=3, output_tokens=2), FinishEvent(reason="stop")]
        ),
    )
    response = await r.complete(request("fake/m"))
    assert response.content == "Hello"
    assert response.usage.input_tokens == 3
    assert response.finish_reason == "stop"
    assert response.model == "fake/m"


async def test_complete_of_an_empty_stream() -> None:
    r = router()
    r.register_provider("fake", FakeProvider([]))
    response = await r.complete(request("fake/m"))
    assert (response.content, response.model, response.finish_reason) == ("", "fake/m", None)


async def test_complete_raises_what_the_stream_raises() -> None:
    r = router()
    r.register_provider("fake", FakeProvider(AuthError("bad key")))
    with pytest.raises(AuthError):
        await r.complete(request())


# --- models and prices -----------------------------------------------------------------


async def test_list_models_of_one_connection() -> None:
    r = router()
    r.register_provider("acme", FakeProvider(models=[ModelInfo(id="a", connection="acme")]))
    assert [m.address for m in await r.list_models("acme")] == ["acme/a"]


async def test_registered_models_are_listed_without_asking_the_provider() -> None:
    r = router()

    class Silent(FakeProvider):
        async def list_models(self) -> list[ModelInfo]:
            raise AssertionError("should not be asked")

    r.register_provider("acme", Silent(), models=[ModelInfo(id="x", connection="acme")])
    assert [m.id for m in await r.list_models("acme")] == ["x"]


async def test_list_models_report_covers_configured_and_registered_connections(
    fake_compat: list[FakeProvider],
) -> None:
    r = router("[connections.f]\ncompat = 'fake'")
    r.register_provider("acme", FakeProvider(models=["a1"], connection="acme"))
    r.register_provider("broken", FakeProvider(), models=None)
    r._cache.registered["broken"].provider = _Failing(UpstreamError("down", status=500))
    report = await r.list_models_report()
    by_name = {entry.connection: entry for entry in report}
    assert sorted(by_name) == ["acme", "broken", "f"]  # presets are not queried
    assert [m.id for m in by_name["acme"].models] == ["a1"]
    assert [m.id for m in by_name["f"].models] == ["fake-model"]
    assert isinstance(by_name["broken"].error, UpstreamError)
    assert by_name["broken"].models == []


class _Failing(FakeProvider):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    async def list_models(self) -> list[ModelInfo]:
        raise self.error


async def test_list_models_report_queries_concurrently() -> None:
    r = router()
    both_started = asyncio.Barrier(2)

    class Waiting(FakeProvider):
        async def list_models(self) -> list[ModelInfo]:
            await asyncio.wait_for(both_started.wait(), timeout=5)
            return await super().list_models()

    r.register_provider("a", Waiting(models=["x"], connection="a"))
    r.register_provider("b", Waiting(models=["y"], connection="b"))
    report = await r.list_models_report()
    assert [entry.error for entry in report] == [None, None]


async def test_a_bug_in_one_provider_does_not_hide_the_others() -> None:
    r = router()
    r.register_provider("buggy", _Failing(KeyError("oops")))
    r.register_provider("fine", FakeProvider(models=["m"], connection="fine"))
    report = await r.list_models_report()
    assert report[0].connection == "buggy"
    assert isinstance(report[0].error, ModelportError)
    assert "KeyError" in str(report[0].error)
    assert report[1] == ConnectionModels(connection="fine", models=report[1].models)


async def test_list_models_of_all_leaves_out_failures(caplog: pytest.LogCaptureFixture) -> None:
    r = router()
    r.register_provider("bad", _Failing(AuthError("no key")))
    r.register_provider("good", FakeProvider(models=["m"], connection="good"))
    assert [m.address for m in await r.list_models()] == ["good/m"]
    assert "bad" in caplog.text


async def test_list_models_raises_when_every_connection_fails() -> None:
    r = router()
    r.register_provider("bad", _Failing(AuthError("no key")))
    with pytest.raises(AuthError):
        await r.list_models()


async def test_list_models_of_nothing_is_empty() -> None:
    assert await router().list_models() == []


async def test_prices_come_from_config_then_registered_models_then_listings() -> None:
    r = router(
        '[connections.acme]\ncompat = "plugin:acme"\n[connections.acme.prices.m1]\noutput = 9.0'
    )
    r.register_provider(
        "acme",
        FakeProvider(),
        models=[ModelInfo(id="m2", connection="acme", prices=ModelPrices(input=1.0))],
    )
    r.register_provider(
        "listed",
        FakeProvider(
            models=[ModelInfo(id="m3", connection="listed", prices=ModelPrices(input=2.0))]
        ),
    )
    assert r.prices_for("acme", "m1") == ModelPrices(output=9.0)
    assert r.prices_for("acme", "m2") == ModelPrices(input=1.0)
    assert r.prices_for("listed", "m3") is None
    await r.list_models("listed")
    assert r.prices_for("listed", "m3") == ModelPrices(input=2.0)
    assert r.prices_for("nowhere", "x") is None


def test_connection_names_are_configured_and_registered_only() -> None:
    r = router(
        "[connections.b]\nbase_url = 'http://b/v1'\n[connections.a]\nbase_url = 'http://a/v1'"
    )
    r.register_provider("c", FakeProvider())
    assert r.connection_names() == ["a", "b", "c"]


# --- lifecycle -------------------------------------------------------------------------


async def test_aclose_closes_built_providers_but_not_registered_ones(
    fake_compat: list[FakeProvider],
) -> None:
    r = router("[connections.f]\ncompat = 'fake'")
    registered = FakeProvider()
    r.register_provider("acme", registered)
    r.resolve("f/m")
    r.resolve("acme/m")
    await r.aclose()
    assert fake_compat[0].closed
    assert not registered.closed
    assert r._cache.providers == {}


def test_router_loads_the_config_by_default() -> None:
    from modelport.config import set_connection

    set_connection("work", {"base_url": "http://w/v1"})
    assert Router().config.connections["work"] == ConnectionConfig(base_url="http://w/v1")


def test_router_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = Router(Config(connections={"bare": ConnectionConfig()}))
    monkeypatch.setenv("MODELPORT_BASE_URL", "http://process.example/v1")
    monkeypatch.setenv("MODELPORT_API_KEY", "sk-process")
    settings = r.settings_for("bare")
    assert (settings.base_url, settings.api_key) == ("http://process.example/v1", "sk-process")


async def test_one_failure_does_not_poison_the_next_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    r = router()
    provider = FakeProvider(AuthError("bad"), "fine")
    r.register_provider("fake", provider)
    with pytest.raises(AuthError):
        await r.complete(request())
    assert (await r.complete(request())).content == "fine"


# --- end to end over HTTP ------------------------------------------------------------------


async def test_a_configured_connection_streams_over_http_with_retries() -> None:
    async with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.json({"error": {"message": "overloaded"}}, status=503),
            Reply.fixture(
                "openai/chat-stream-text-include-usage.sse", chunks="random", split_seed=3
            ),
        )
        set_key("work", "sk-work-stored", backend=null.Keyring())
        r = router(f"[connections.work]\nbase_url = '{upstream.url}/v1'\nmax_retries = 1")
        try:
            events = await collect(r.stream(request("work/gpt-4o-mini")))
        finally:
            await r.aclose()
        # A stream, retried after the 503, that reached its end.
        assert [q.json()["stream"] for q in upstream.requests] == [True, True]
        assert "".join(e.text for e in events if isinstance(e, TextEvent))
        assert any(isinstance(e, FinishEvent) for e in events)
        assert upstream.requests[1].json()["model"] == "gpt-4o-mini"
        assert upstream.requests[1].headers["authorization"] == "Bearer sk-work-stored"


async def test_the_openai_key_does_not_follow_a_changed_url_over_http() -> None:
    async with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture("openai/chat-stream-text-include-usage.sse"),
        )
        r = router(
            f"[connections.openai]\nbase_url = '{upstream.url}/v1'",
            {"OPENAI_API_KEY": "sk-real-openai-key"},
        )
        try:
            await r.complete(request("openai/gpt-4o-mini"))
        finally:
            await r.aclose()
        assert "sk-real-openai-key" not in upstream.requests[0].headers["authorization"]


# --- the provider source (run-time providers such as plugins) -------------------------


class CountingSource:
    """A provider source that registers ``plug`` (and counts its starts and closes)."""

    def __init__(self, router: Router, *, delay: float = 0.0) -> None:
        self.router = router
        self.delay = delay
        self.starts = 0
        self.closed = 0

    async def ensure_started(self) -> None:
        self.starts += 1
        await asyncio.sleep(self.delay)
        self.router.register_provider(
            "plug",
            FakeProvider("from plug", "again", "more"),
            [ModelInfo(id="p1", connection="plug")],
        )

    async def aclose(self) -> None:
        self.closed += 1
        self.router.unregister_provider("plug")


class SourceFactory:
    def __init__(self, **options: Any) -> None:
        self.options = options
        self.built: list[CountingSource] = []

    def __call__(self, router: Router) -> CountingSource:
        source = CountingSource(router, **self.options)
        self.built.append(source)
        return source


async def test_calls_to_configured_and_preset_connections_never_start_the_source() -> None:
    factory = SourceFactory()
    r = router("[connections.local]\nbase_url = 'http://127.0.0.1:9/v1'", provider_source=factory)
    r.register_provider("fake", FakeProvider("hi"))
    assert not r.needs_provider_source("local")
    assert not r.needs_provider_source("openai")  # a preset
    assert not r.needs_provider_source("fake")  # already registered
    assert r.needs_provider_source("plug")
    await collect(r.stream(request("fake/m")))
    await r.load_providers("local")
    assert factory.built == [] and r.provider_source is None
    await r.aclose()


async def test_an_unknown_connection_starts_the_source_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = SourceFactory(delay=0.05)
    r = router(provider_source=factory)
    first, second = await asyncio.gather(
        r.complete(request("plug/p1")), r.complete(request("plug/p1"))
    )
    assert {first.content, second.content} == {"from plug", "again"}
    assert first.model == "plug/p1"
    await r.complete(request("plug/p1"))
    assert len(factory.built) == 1 and factory.built[0].starts == 1
    assert r.provider_source is factory.built[0]
    with pytest.raises(ModelNotFoundError, match="No running plugin registered it"):
        await r.complete(request("nowhere/m"))
    assert factory.built[0].starts == 1  # started once per router, not per call

    await r.aclose()
    assert factory.built[0].closed == 1 and r.provider_source is None
    assert "plug" not in r.connection_names()


async def test_a_plugin_compat_connection_starts_the_source() -> None:
    factory = SourceFactory()
    r = router('[connections.mine]\ncompat = "plugin:plug"', provider_source=factory)
    assert r.needs_provider_source("mine")
    response = await r.complete(request("mine/p1"))
    assert response.content == "from plug" and factory.built[0].starts == 1
    assert not r.needs_provider_source("mine")
    await r.aclose()


async def test_listing_every_model_starts_the_source() -> None:
    factory = SourceFactory()
    r = router(provider_source=factory)
    r.register_provider("fake", FakeProvider(), [ModelInfo(id="f1", connection="fake")])
    assert [m.address for m in await r.list_models()] == ["fake/f1", "plug/p1"]
    assert [m.address for m in await r.list_models("plug")] == ["plug/p1"]
    assert factory.built[0].starts == 1
    await r.aclose()


async def test_without_a_source_an_unknown_connection_is_just_unknown() -> None:
    r = router()
    with pytest.raises(ModelNotFoundError) as caught:
        await r.complete(request("plug/p1"))
    assert "plugin" not in str(caught.value)
    await r.load_providers()  # nothing to start


def test_a_compat_name_never_reaches_a_provider_registered_under_it() -> None:
    r = router("[connections.work]\ncompat = 'raw'\nbase_url = 'http://w/v1'")
    r.register_provider("raw", FakeProvider())
    with pytest.raises(ConfigError, match="Unknown compat 'raw'"):
        r.resolve("work/m")
    plugin = router("[connections.work]\ncompat = 'plugin:raw'")
    provider = FakeProvider()
    plugin.register_provider("raw", provider)
    assert plugin.resolve("work/m").provider is provider  # only compat = "plugin:<id>" does


# --- keys go only to the URL they were paired with -----------------------------------------


def test_modelport_base_url_never_redirects_a_preset() -> None:
    env = {"MODELPORT_BASE_URL": "http://attacker.example/v1"}
    for preset in ("openai", "anthropic", "openrouter", "ollama", "lmstudio"):
        assert router("", env).settings_for(preset).base_url == PRESETS[preset].base_url
    configured = router("[connections.anthropic]\ntimeout = 5", env)
    assert configured.settings_for("anthropic").base_url == "https://api.anthropic.com"


def test_a_stored_key_does_not_follow_a_call_base_url() -> None:
    set_key("work", "sk-stored", backend=null.Keyring())
    text = "[connections.work]\nbase_url = 'https://w/v1'\napi_key_env = 'WORK_KEY'"
    r = router(text, {"WORK_KEY": "sk-env", "MODELPORT_API_KEY": "sk-generic"})
    assert r.settings_for("work", base_url="https://elsewhere/v1").api_key is None
    # Back to its own URL (trailing slash or not), the key goes with it.
    assert r.settings_for("work", base_url="https://w/v1/").api_key == "sk-stored"
    set_key("anthropic", "sk-ant-stored", backend=null.Keyring())
    assert router().settings_for("anthropic", base_url="http://evil/v1").api_key is None
    assert router().settings_for("anthropic").api_key == "sk-ant-stored"


def test_the_generic_key_pairs_with_the_generic_url() -> None:
    env = {"MODELPORT_BASE_URL": "http://local:8000/v1", "MODELPORT_API_KEY": "sk-generic"}
    set_key("bare", "sk-bare-stored", backend=null.Keyring())
    bare = router("[connections.bare]", env).settings_for("bare")
    # The stored key belongs to no URL this connection has; the generic pair goes together.
    assert (bare.base_url, bare.api_key) == ("http://local:8000/v1", "sk-generic")
    # A connection whose URL is configured explicitly may use it when it has no key of its own.
    work = router("[connections.work]\nbase_url = 'https://w/v1'", env).settings_for("work")
    assert work.api_key == "sk-generic"
    # Never to a per-call URL, a preset's URL, or a built-in adapter's default (a vendor's).
    assert (
        router("[connections.work]\nbase_url = 'https://w/v1'", env)
        .settings_for("work", base_url="https://other/v1")
        .api_key
        is None
    )
    assert router("", env).settings_for("groq").api_key is None
    claude = router("[connections.claude]\ncompat = 'anthropic'", {"MODELPORT_API_KEY": "sk-g"})
    assert claude.settings_for("claude").api_key is None


async def test_a_stored_key_never_reaches_a_per_call_url_over_http() -> None:
    async with FakeUpstream() as own, FakeUpstream() as other:
        for upstream in (own, other):
            upstream.route(
                "POST",
                "/v1/chat/completions",
                Reply.fixture("openai/chat-stream-text-include-usage.sse"),
            )
        set_key("work", "sk-work-stored", backend=null.Keyring())
        r = router(
            f"[connections.work]\nbase_url = '{own.url}/v1'",
            {"MODELPORT_API_KEY": "sk-generic"},
        )
        try:
            await collect(r.stream(request("work/m")))
            await collect(r.stream(request("work/m"), base_url=f"{other.url}/v1"))
        finally:
            await r.aclose()
        assert own.requests[0].headers["authorization"] == "Bearer sk-work-stored"
        sent = other.requests[0].headers["authorization"]
        assert "sk-work-stored" not in sent and "sk-generic" not in sent


async def test_modelport_base_url_gets_no_stored_key_over_http() -> None:
    async with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture("openai/chat-stream-text-include-usage.sse"),
        )
        set_key("bare", "sk-bare-stored", backend=null.Keyring())
        r = router("[connections.bare]", {"MODELPORT_BASE_URL": f"{upstream.url}/v1"})
        try:
            await collect(r.stream(request("bare/m")))
        finally:
            await r.aclose()
        assert "sk-bare-stored" not in upstream.requests[0].headers["authorization"]


@pytest.mark.parametrize("url", ["http://[::1/v1", "ftp://host/v1", "http://user:pw@host/v1"])
def test_a_bad_call_base_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="'work'") as caught:
        router("[connections.work]\nbase_url = 'https://w/v1'").settings_for("work", base_url=url)
    assert "pw" not in str(caught.value)


def test_is_local_url_survives_a_malformed_url() -> None:
    assert not is_local_url("http://[::1/v1")


# --- per-call credentials, remembered routes, keys off the loop -----------------------------


async def test_per_call_keys_build_no_lasting_providers(fake_compat: list[FakeProvider]) -> None:
    r = router("[connections.f]\ncompat = 'fake'")
    for n in range(5):
        await collect(r.stream(request("f/m"), api_key=f"sk-call-{n}"))
        await r.complete(request("f/m"), headers={"X-Tenant": str(n)})
    assert len(fake_compat) == 10
    assert all(provider.closed for provider in fake_compat)  # closed right after the call
    assert [p.settings.api_key for p in fake_compat[::2]] == [f"sk-call-{n}" for n in range(5)]
    assert r._cache.providers == {}
    route = r.resolve("f/m", api_key="sk-x")
    assert route.ephemeral
    assert not r.resolve("f/m").ephemeral


async def test_per_call_keys_share_one_http_pool_per_connection() -> None:
    async with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture("openai/chat-stream-text-include-usage.sse"),
        )
        r = router(f"[connections.work]\nbase_url = '{upstream.url}/v1'")
        try:
            for n in range(3):
                await collect(r.stream(request("work/m"), api_key=f"sk-call-{n}"))
            assert r._cache.providers == {}
            assert list(r._cache.clients) == ["work"]
        finally:
            await r.aclose()
        assert [q.headers["authorization"] for q in upstream.requests] == [
            "Bearer sk-call-0",
            "Bearer sk-call-1",
            "Bearer sk-call-2",
        ]
        # One pooled connection carried all three, and aclose closed it.
        assert upstream.open_connections <= 1
        assert await upstream.requests[-1].wait_closed()


def test_routes_are_remembered_until_what_they_read_changes(
    fake_compat: list[FakeProvider],
) -> None:
    env = {"F_KEY": "sk-1"}
    r = router("[connections.f]\ncompat = 'fake'\napi_key_env = 'F_KEY'", env)
    first = r.resolve("f/m")
    assert r.resolve("f/m") is first
    env["F_KEY"] = "sk-2"
    second = r.resolve("f/m")
    assert second is not first and second.settings.api_key == "sk-2"
    set_key("f", "sk-stored", backend=null.Keyring())
    assert r.resolve("f/m") is second  # stored keys are read once …
    r.forget_keys()
    assert r.resolve("f/m").settings.api_key == "sk-stored"  # … until forgotten
    r.config = parse_config("[connections.f]\ncompat = 'fake'\ntimeout = 3")
    assert r.resolve("f/m").settings.timeout == 3


def test_remembered_routes_follow_the_process_environment(
    fake_compat: list[FakeProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    # env=None reads os.environ, whose stamp is read from its raw dict (env_stamp).
    monkeypatch.setenv("MODELPORT_TEST_F_KEY", "sk-1")
    monkeypatch.delenv("MODELPORT_API_KEY", raising=False)
    r = Router(
        parse_config("[connections.f]\ncompat = 'fake'\napi_key_env = 'MODELPORT_TEST_F_KEY'"),
        sleep=Sleeps(),
    )
    first = r.resolve("f/m")
    assert r.resolve("f/m") is first
    monkeypatch.setenv("MODELPORT_TEST_F_KEY", "sk-2")
    second = r.resolve("f/m")
    assert second is not first and second.settings.api_key == "sk-2"
    assert r.resolve("f/m") is second
    monkeypatch.setenv("MODELPORT_API_KEY", "sk-everywhere")  # unset before: a change too
    third = r.resolve("f/m")
    assert third is not second and r.resolve("f/m") is third
    monkeypatch.delenv("MODELPORT_TEST_F_KEY")
    assert r.resolve("f/m") is not third


def test_remembered_routes_are_bounded_and_only_resolvable_ones_kept(
    fake_compat: list[FakeProvider],
) -> None:
    from modelport.routing._route_cache import MAX_REMEMBERED_ROUTES

    r = router("[connections.f]\ncompat = 'fake'")
    # A client inventing a model name per request: every one resolves.
    for n in range(3 * MAX_REMEMBERED_ROUTES):
        r.resolve(f"f/invented-{n}")
    assert len(r._cache._routes) == MAX_REMEMBERED_ROUTES
    newest = r.resolve(f"f/invented-{3 * MAX_REMEMBERED_ROUTES - 1}")
    assert r.resolve(f"f/invented-{3 * MAX_REMEMBERED_ROUTES - 1}") is newest
    assert "f/invented-0" not in r._cache._routes  # the oldest went first
    assert len(fake_compat) == 1  # one kept provider served them all
    for n in range(10):
        with pytest.raises(ModelNotFoundError):
            r.resolve(f"nowhere-{n}/m")
    assert not any(str(a).startswith("nowhere") for a in r._cache._routes)


async def test_stored_keys_are_read_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import modelport.auth.keys

    loop_thread = threading.get_ident()
    readers: list[int] = []

    def get_key(name: str, **kwargs: Any) -> str | None:
        readers.append(threading.get_ident())
        return None

    monkeypatch.setattr(modelport.auth.keys, "get_key", get_key)
    r = router()
    r.register_provider("fake", FakeProvider("a", "b", "c"))
    await collect(r.stream(request()))
    await r.complete(request())
    await r.list_models("fake")
    assert readers and loop_thread not in readers
    assert len(readers) == 1  # once per connection


# --- complete() makes a non-streaming upstream request -------------------------------------


async def test_complete_uses_the_providers_complete_over_http() -> None:
    async with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.json({"error": {"message": "overloaded"}}, status=503),
            Reply.fixture("openai/chat-completion-tool-call.json"),
        )
        ledger = RecordingLedger()
        r = router(
            f"[connections.work]\nbase_url = '{upstream.url}/v1'\nmax_retries = 1", ledger=ledger
        )
        try:
            response = await r.complete(request("work/gpt-4o"), api="openai", request_id="r-1")
        finally:
            await r.aclose()
    assert [q.json().get("stream", False) for q in upstream.requests] == [False, False]
    assert response.model == "work/gpt-4o"
    assert response.id.startswith("chatcmpl-")  # the upstream's id, carried through
    assert response.tool_calls[0].name == "lookup_population"
    assert ledger.calls == [{"connection": "work", "model": "gpt-4o", "prices": None}]
    assert ledger.attribution == [("openai", "r-1")]
    assert ledger.outcomes == ["ok"]


async def test_complete_records_usage_in_the_real_ledger(tmp_path: Path) -> None:
    from modelport.ledger import open_ledger

    ledger = open_ledger(url=f"sqlite:///{tmp_path / 'usage.db'}")
    try:
        r = router(ledger=ledger)
        r.register_provider(
            "fake",
            FakeProvider(["hi", UsageEvent(input_tokens=7, output_tokens=2), "!"]),
        )
        response = await r.complete(request())
        assert await ledger.aflush(timeout=10)
        [recorded] = await ledger.arecent()
    finally:
        await ledger.aclose()
    assert response.usage.input_tokens == 7
    assert (recorded.input_tokens, recorded.output_tokens) == (7, 2)
