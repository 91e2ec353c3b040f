"""The most common provider-plugin guide's example, ported, run through ``modelport serve``.

``examples/plugins/my-llm-provider`` is that guide's plugin with two changes: the import
line and the manifest (a ``"modelport"`` section in ``package.json``). It registers
``capabilities`` as a list, declares object triggers, answers a stream with its last
chunk and calls ``sendReply(id, response, true)``. Here it runs in the gateway beside a
folder of broken manifests, and the official ``openai`` SDK uses it, streaming and not.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from modelport.config import parse_config
from modelport.plugin_host.scaffold import install_sdk
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply, fixtures_dir
from tests._node import build
from tests.plugin_host.conftest import write_garbage_plugins
from tests.server.conftest import GatewayFactory

GUIDE = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "my-llm-provider"
STREAM = "openai/chat-stream-text-include-usage.sse"
COMPLETION = "openai/chat-completion-cached-tokens.json"


def _streamed_text() -> str:
    text = ""
    for line in (fixtures_dir() / STREAM).read_text().splitlines():
        data = line.removeprefix("data:").strip()
        if line.startswith("data:") and data != "[DONE]":
            for choice in json.loads(data)["choices"]:
                text += choice["delta"].get("content") or ""
    return text


def test_the_guides_plugin_serves_the_openai_sdk_beside_broken_manifests(
    gateway_factory: GatewayFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    plugins = home / "plugins"
    shutil.copytree(GUIDE, plugins / "my-llm-provider")
    install_sdk(plugins / "my-llm-provider")
    build(plugins / "my-llm-provider")  # npm run build
    write_garbage_plugins(plugins)
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    monkeypatch.setenv("MY_PROVIDER_KEY", "sk-guide")
    monkeypatch.chdir(tmp_path)
    with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture(STREAM, chunks="random", split_seed=5),
            Reply.fixture(COMPLETION),
        )
        config = parse_config(
            "[connections.my-provider]\n"
            'compat = "plugin:my-provider"\n'
            f'apiUrl = "{upstream.url}/v1"\n'
            'api_key_env = "MY_PROVIDER_KEY"\n'
        )
        gateway = gateway_factory(create_app(config, ledger=False))
        deadline = time.monotonic() + 20
        while httpx.get(f"{gateway.url}/plugins/my-llm-provider").json()["state"] != "running":
            assert time.monotonic() < deadline, httpx.get(f"{gateway.url}/plugins").text
            time.sleep(0.05)
        with gateway.openai() as client:
            models = [model.id for model in client.models.list()]
            assert {"my-provider/my-model-v1", "my-provider/my-model-fast"} <= set(models)

            stream = client.chat.completions.create(
                model="my-provider/my-model-v1",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
            )
            text, finish = "", None
            for chunk in stream:
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    finish = choice.finish_reason or finish
            assert text == _streamed_text() and finish == "stop"

            completion = client.chat.completions.create(
                model="my-provider/my-model-fast", messages=[{"role": "user", "content": "hi"}]
            )
            expected = json.loads((fixtures_dir() / COMPLETION).read_text())
            [choice] = expected["choices"]
            assert completion.choices[0].message.content == choice["message"]["content"]
        sent = [request.json() for request in upstream.requests]
        assert [body["model"] for body in sent] == ["my-model-v1", "my-model-fast"]
        assert sent[0]["stream"] is True and "stream" not in sent[1]
        assert all(r.headers["authorization"] == "Bearer sk-guide" for r in upstream.requests)

        info = httpx.get(f"{gateway.url}/plugins/my-llm-provider").json()
        assert info["problems"] == [] and info["restarts"] == 0
        assert "[MyProvider] Registered" in info["stderr"]  # console.log went to the log
        listing = httpx.get(f"{gateway.url}/plugins").json()["plugins"]
        assert sum(p["state"] == "invalid" for p in listing) == 8

        stopped = httpx.post(f"{gateway.url}/plugins/my-llm-provider/stop").json()
        assert stopped["state"] == "stopped" and stopped["exit_code"] == 0
        assert "[MyProvider] Unregistered" in stopped["stderr"]


def test_the_docs_show_the_example_as_it_is() -> None:
    docs = (GUIDE.parents[2] / "docs" / "plugins.md").read_text("utf-8")
    for name, fence in (("src/index.ts", "ts"), ("package.json", "json")):
        assert f"```{fence}\n{(GUIDE / name).read_text('utf-8')}```" in docs, name
