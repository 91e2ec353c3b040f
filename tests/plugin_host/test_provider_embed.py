"""``provider.embed`` to a plugin written without the SDK, which knows no such method."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.config import parse_config
from modelport.errors import InvalidRequestError
from modelport.plugin_host.discovery import PluginDir
from modelport.plugin_host.host import PluginHost
from modelport.routing import Router
from modelport.types import ChatRequest, EmbeddingRequest, Message
from tests.plugin_host.conftest import scripted, write_plugin


async def test_a_plugin_that_answers_method_not_found_does_not_offer_embeddings(
    tmp_path: Path,
) -> None:
    write_plugin(tmp_path / "plugins", "p", scripted("ok", "acme"), triggers=["startup"])
    config = parse_config("")
    router = Router(config)
    host = PluginHost(
        router, dirs=[PluginDir(tmp_path / "plugins", "home")], home=tmp_path, config=config
    )
    try:
        await host.load()
        await host.start_startup_plugins()
        with pytest.raises(InvalidRequestError) as caught:
            await router.embed(EmbeddingRequest(model="acme/m1", input=["x"]))
        assert caught.value.message == (
            "Connection 'acme' does not offer embeddings: its plugin 'p' has no provider.embed"
        )
        assert (caught.value.connection, caught.value.model) == ("acme", "m1")
        # The answer was an error, not a crash: chats go on.
        chat = ChatRequest(model="acme/m1", messages=[Message(role="user", content="hi")])
        assert (await router.complete(chat)).content
    finally:
        await host.aclose()
        await router.aclose()
