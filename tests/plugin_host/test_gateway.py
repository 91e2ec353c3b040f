"""The gateway, driven by the official ``openai`` SDK, through a plugin's models."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import openai
import pytest

from modelport.config import parse_config
from modelport.plugin_host.scaffold import install_sdk
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.plugin_host.conftest import scripted, write_garbage_plugins, write_plugin
from tests.server.conftest import Gateway, GatewayFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"


def _wait_running(gateway: Gateway, name: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = httpx.get(f"{gateway.url}/plugins/{name}").json()
        if info["state"] == "running" or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


@pytest.fixture
def plugins_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "gateway-home"
    (home / "plugins").mkdir(parents=True)
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # no project folder above
    return home


def test_openai_sdk_streams_and_completes_through_a_plugin(
    gateway_factory: GatewayFactory, plugins_home: Path
) -> None:
    write_plugin(plugins_home / "plugins", "p", scripted("ok", "Scripted"), triggers=["startup"])
    write_plugin(plugins_home / "plugins", "dies", scripted("crash_mid_stream", "dies"))
    gateway = gateway_factory(create_app(parse_config(""), ledger=False))
    assert _wait_running(gateway, "p")["state"] == "running"
    with gateway.openai() as client:
        assert "scripted/m1" in [model.id for model in client.models.list()]

        stream = client.chat.completions.create(
            model="scripted/m1", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == "Hello"

        completion = client.chat.completions.create(
            model="scripted/m1", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content == "Hello"
        assert completion.usage is not None and completion.usage.prompt_tokens == 3

        # A plugin that crashes mid-stream ends the stream with an error, never as complete.
        assert httpx.post(f"{gateway.url}/plugins/dies/start").status_code == 200
        stream = client.chat.completions.create(
            model="dies/m1", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match="exit code 5"):
            for _ in stream:
                pass
        info = httpx.get(f"{gateway.url}/plugins/dies").json()
        assert info["state"] == "crashed" and "dying mid-stream" in info["stderr"]
        # ...and the other plugin carries on.
        completion = client.chat.completions.create(
            model="scripted/m1", messages=[{"role": "user", "content": "again"}]
        )
        assert completion.choices[0].message.content == "Hello"


def test_admin_routes_list_start_stop_and_rescan(
    gateway_factory: GatewayFactory, plugins_home: Path
) -> None:
    write_plugin(plugins_home / "plugins", "p", scripted("ok"))
    gateway = gateway_factory(create_app(parse_config(""), ledger=False))
    listed = httpx.get(f"{gateway.url}/plugins").json()["plugins"]
    assert [(p["name"], p["state"]) for p in listed] == [("p", "loaded")]
    assert httpx.get(f"{gateway.url}/plugins/nope").status_code == 404

    started = httpx.post(f"{gateway.url}/plugins/p/start").json()
    assert started["state"] == "running" and started["pid"]
    assert started["providers"][0]["models"] == ["m1"]
    assert "scripted plugin starting in mode ok" in started["stderr"]

    stopped = httpx.post(f"{gateway.url}/plugins/p/stop").json()
    assert stopped["state"] == "stopped" and stopped["pid"] is None

    write_plugin(plugins_home / "plugins", "q", scripted("ok", "q"), triggers=["startup"])
    rescanned = httpx.post(f"{gateway.url}/plugins/load").json()["plugins"]
    assert {p["name"] for p in rescanned} == {"p", "q"}
    assert _wait_running(gateway, "q")["state"] == "running"

    write_plugin(plugins_home / "plugins", "bad", ["definitely-not-a-program-xyz"])
    httpx.post(f"{gateway.url}/plugins/load")
    failed = httpx.post(f"{gateway.url}/plugins/bad/start")
    assert failed.status_code == 409  # its manifest's fault, found before anything ran
    message = failed.json()["error"]["message"]
    assert "'definitely-not-a-program-xyz' is not installed or not on PATH" in message


def test_openai_sdk_gets_tool_calls_from_the_node_example(
    gateway_factory: GatewayFactory,
    plugins_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shutil.copytree(EXAMPLES / "example-node", plugins_home / "plugins" / "example-node")
    install_sdk(plugins_home / "plugins" / "example-node")
    monkeypatch.setenv("NODE_EXAMPLE_KEY", "sk-node")
    with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture("openai/chat-stream-parallel-tool-calls.sse", chunks="random"),
        )
        config = parse_config(
            "[connections.example-node]\n"
            'compat = "plugin:example-node"\n'
            f'baseUrl = "{upstream.url}/v1"\n'
            'api_key_env = "NODE_EXAMPLE_KEY"\n'
        )
        gateway = gateway_factory(create_app(config, ledger=False))
        assert _wait_running(gateway, "example-node")["state"] == "running"
        with gateway.openai() as client:
            stream = client.chat.completions.create(
                model="example-node/gpt-4o-mini",
                messages=[{"role": "user", "content": "weather and stocks?"}],
                tools=[{"type": "function", "function": {"name": "GetWeatherArgs"}}],
                stream=True,
            )
            names: dict[int, str] = {}
            finish = None
            for chunk in stream:
                for choice in chunk.choices:
                    for call in choice.delta.tool_calls or []:
                        if call.function and call.function.name:
                            names[call.index] = call.function.name
                    finish = choice.finish_reason or finish
            assert names == {0: "GetWeatherArgs", 1: "get_stock_price"}
            assert finish == "tool_calls"
        assert upstream.requests[0].headers["authorization"] == "Bearer sk-node"


def test_a_running_plugins_models_survive_a_config_reload(
    gateway_factory: GatewayFactory, plugins_home: Path
) -> None:
    from modelport.config import load_config
    from modelport.server._reload import ConfigReloader

    config_file = plugins_home / "config.toml"
    config_file.write_text("")
    write_plugin(plugins_home / "plugins", "p", scripted("ok", "Scripted"), triggers=["startup"])
    reloader = ConfigReloader(load_config)
    gateway = gateway_factory(create_app(load_config(), ledger=False, reloader=reloader))
    assert _wait_running(gateway, "p")["state"] == "running"
    before = gateway.app.state.router

    # A default for the plugin's connection: the reload applies it to the plugin's calls.
    config_file.write_text('[connections.scripted]\ncompat = "plugin:scripted"\nmax_tokens = 77\n')
    assert httpx.post(f"{gateway.url}/admin/reload").status_code == 200

    assert gateway.app.state.router is not before
    with gateway.openai() as client:
        assert "scripted/m1" in [model.id for model in client.models.list()]
        completion = client.chat.completions.create(
            model="scripted/m1", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == "Hello"
    assert httpx.get(f"{gateway.url}/plugins/p").json()["problems"] == []


def test_admin_posts_with_an_empty_body_take_any_content_type(
    gateway_factory: GatewayFactory, plugins_home: Path
) -> None:
    # Python's urllib sends `application/x-www-form-urlencoded` with any body, even b"".
    import urllib.error
    import urllib.request

    write_plugin(plugins_home / "plugins", "p", scripted("ok"))
    gateway = gateway_factory(create_app(parse_config(""), ledger=False))

    def post(path: str, **headers: str) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{gateway.url}{path}", data=b"", method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, started = post("/plugins/p/start")
    assert status == 200 and started["state"] == "running"
    status, stopped = post("/plugins/p/stop", **{"Content-Type": "text/plain"})
    assert status == 200 and stopped["state"] == "stopped"
    assert post("/plugins/load")[0] == 200
    # A page on another site is still refused, with or without a body.
    assert post("/plugins/p/start", Origin="http://evil.example")[0] == 403
    form = httpx.post(
        f"{gateway.url}/plugins/p/start",
        content=b"a=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    assert httpx.get(f"{gateway.url}/plugins/p").json()["state"] == "stopped"


def test_garbage_manifests_beside_a_plugin_change_nothing_for_it(
    gateway_factory: GatewayFactory, plugins_home: Path
) -> None:
    write_garbage_plugins(plugins_home / "plugins")
    write_plugin(plugins_home / "plugins", "p", scripted("ok", "Scripted"), triggers=["startup"])
    gateway = gateway_factory(create_app(parse_config(""), ledger=False))
    assert _wait_running(gateway, "p")["state"] == "running"
    with gateway.openai() as client:
        completion = client.chat.completions.create(
            model="scripted/m1", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content == "Hello"
    listing = httpx.get(f"{gateway.url}/plugins").json()
    states = {p["name"]: p["state"] for p in listing["plugins"]}
    assert states.pop("p") == "running"
    assert set(states.values()) == {"invalid"} and len(states) == 8
    assert all(p["problems"] for p in listing["plugins"] if p["name"] != "p")
    assert [s["dir"].rsplit("/", 1)[1] for s in listing["skipped"]] == ["a-library"]
    started = httpx.post(f"{gateway.url}/plugins/objects/start")
    assert started.status_code == 409 and "'triggers' must be" in started.text


def test_the_responses_api_through_a_plugin(
    gateway_factory: GatewayFactory, plugins_home: Path
) -> None:
    write_plugin(plugins_home / "plugins", "p", scripted("tools"), triggers=["startup"])
    gateway = gateway_factory(create_app(parse_config(""), ledger=False))
    assert _wait_running(gateway, "p")["state"] == "running"
    shell = {
        "type": "function",
        "name": "shell",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
    with gateway.openai() as client:
        with client.responses.stream(model="scripted/m1", input="hi") as stream:
            assert stream.get_final_response().output_text == "pong"
        assert client.responses.create(model="scripted/m1", input="hi").output_text == "pong"

        # A function-tool turn, streamed, then its result by previous_response_id ...
        events = list(
            client.responses.create(
                model="scripted/m1", input="RUN: echo hi", tools=[shell], stream=True
            )
        )
        [call] = [e.item for e in events if e.type == "response.output_item.done"]
        assert call.type == "function_call" and call.name == "shell"
        assert json.loads(call.arguments)["command"] == "echo hi"
        completed = events[-1].response
        result = {"type": "function_call_output", "call_id": call.call_id, "output": "hi"}
        answer = client.responses.create(
            model="scripted/m1", input=[result], previous_response_id=completed.id, tools=[shell]
        )
        assert answer.output_text == "tool said: hi"
        # ... and by sending the items back.
        answer = client.responses.create(
            model="scripted/m1",
            input=[
                {"role": "user", "content": "RUN: echo hi"},
                call.model_dump(exclude_none=True),
                result,
            ],
            tools=[shell],
            store=False,
        )
        assert answer.output_text == "tool said: hi"
