"""``provider.embed``: the SDK's ``on_embed_request`` in a real plugin process, the host's
``PluginProvider.embed``, and the gateway's ``/v1/embeddings`` on a plugin's model."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modelport.config import parse_config
from modelport.errors import InvalidRequestError, RateLimitError
from modelport.plugin_host.discovery import PluginDir
from modelport.plugin_host.host import PluginHost
from modelport.routing import Router
from modelport.server.app import create_app
from modelport.types import EmbeddingRequest, Usage
from tests.server.conftest import GatewayFactory
from tests.server.conftest import gateway_factory as gateway_factory  # the fixture

HERE = Path(__file__).parent


def _write(parent: Path, name: str, script: str) -> None:
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / "modelport-plugin.toml").write_text(
        f'name = "{name}"\nversion = "0.1.0"\ntype = "llm-provider"\n'
        f'command = ["python", "{HERE / script}"]\ntriggers = ["startup"]\n'
    )


CONFIG = '[connections.vectors]\ncompat = "plugin:vectors"\nscale = "2"\n'


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[PluginHost]:
    _write(tmp_path / "plugins", "vectors", "_embedding_plugin.py")
    _write(tmp_path / "plugins", "echo", "_echo_plugin.py")
    host = PluginHost(
        dirs=[PluginDir(tmp_path / "plugins", "home")],
        home=tmp_path / "home",
        config=parse_config(CONFIG),
        shutdown_timeout=2.0,
    )
    await host.load()
    await host.start_startup_plugins()
    yield host
    await host.aclose()


async def test_bare_vectors_with_provider_config(host: PluginHost) -> None:
    response = await host.providers["vectors"].embed(
        EmbeddingRequest(model="vec-1", input=["hello there", "x"])
    )
    assert response.embeddings == [[22.0, 2.0], [2.0, 1.0]]  # scale = "2" from the connection
    assert (response.model, response.usage) == ("vec-1", Usage())


async def test_a_whole_list_with_usage(host: PluginHost) -> None:
    response = await host.providers["vectors"].embed(
        EmbeddingRequest(model="full-1", input=["a b c"])
    )
    assert (response.embeddings, response.usage) == ([[10.0, 3.0]], Usage(input_tokens=3))


async def test_a_raised_error_keeps_its_class(host: PluginHost) -> None:
    with pytest.raises(RateLimitError) as caught:
        await host.providers["vectors"].embed(EmbeddingRequest(model="vec-1", input=["boom"]))
    assert (caught.value.retry_after, caught.value.connection) == (2.0, "vectors")


async def test_a_plugin_without_an_embed_handler_does_not_offer_embeddings(
    host: PluginHost,
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await host.providers["echo-bot"].embed(EmbeddingRequest(model="echo-1", input=["x"]))
    assert caught.value.message == (
        "Connection 'echo-bot' does not offer embeddings: its plugin 'echo' has no provider.embed"
    )
    # The plugin is still there for its chats.
    assert host.describe("echo")["state"] == "running"


async def test_through_the_router(tmp_path: Path) -> None:
    _write(tmp_path / "plugins", "vectors", "_embedding_plugin.py")
    config = parse_config(CONFIG)
    router = Router(config)
    host = PluginHost(
        router, dirs=[PluginDir(tmp_path / "plugins", "home")], home=tmp_path, config=config
    )
    try:
        await host.load()
        await host.start_startup_plugins()
        response = await router.embed(EmbeddingRequest(model="vectors/vec-1", input=["ab"]))
    finally:
        await host.aclose()
        await router.aclose()
    assert (response.model, response.embeddings) == ("vectors/vec-1", [[4.0, 1.0]])


def test_the_openai_sdk_embeds_with_a_plugin_model(
    gateway_factory: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "gateway-home"
    _write(home / "plugins", "vectors", "_embedding_plugin.py")
    monkeypatch.setenv("MODELPORT_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    gateway = gateway_factory(create_app(parse_config(CONFIG), ledger=False))
    # Startup plugins start behind the gateway; its connection names the provider, so
    # a call before the plugin registered it would fail (as it should): wait for it.
    deadline = time.monotonic() + 30
    while httpx.get(f"{gateway.url}/plugins/vectors").json()["state"] != "running":
        assert time.monotonic() < deadline, "the plugin did not start"
        time.sleep(0.05)
    with gateway.openai() as client:
        floats = client.embeddings.create(
            model="vectors/vec-1", input=["four", "five six"], encoding_format="float"
        )
        assert [item.embedding for item in floats.data] == [[8.0, 1.0], [16.0, 2.0]]
        packed = client.embeddings.create(model="vectors/full-1", input="a b")
        assert packed.data[0].embedding == [6.0, 2.0]  # base64, decoded by the SDK
        assert packed.usage.prompt_tokens == 2
