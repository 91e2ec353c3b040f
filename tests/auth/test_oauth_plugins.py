"""A plugin provider that logs in with OAuth: the host runs the flow and keeps the token fresh.

The plugin (``tests/auth/_oauth_plugin.py``, a real child process written with
the SDK) calls the test authorization server's API with whatever credential
its ``providerConfig`` carries, so every assertion about tokens is what the
upstream actually received.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from modelport.auth.keys import set_key
from modelport.auth.login import login
from modelport.auth.session import TokenBroker
from modelport.auth.tokens import load_tokens
from modelport.config import load_config, modelport_home
from modelport.errors import AuthError, ConfigError
from modelport.plugin_host.host import PluginHost
from modelport.routing import Router
from modelport.types import ChatRequest, Message
from tests.auth._oauth_server import OAuthTestServer
from tests.auth.conftest import Browser, ServerFactory

PLUGIN = Path(__file__).with_name("_oauth_plugin.py")
EXPIRES_IN = 600


def _install(server: OAuthTestServer, provider: str = "acme") -> None:
    folder = modelport_home() / "plugins" / f"{provider}-plugin"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modelport-plugin.toml").write_text(
        f'name = "{provider}-plugin"\nversion = "1.0.0"\ntype = "llm-provider"\n'
        f'command = ["{sys.executable}", "{PLUGIN}", "{server.url}", "{provider}"]\n'
        'triggers = ["startup"]\n'
    )


def _request() -> ChatRequest:
    return ChatRequest(model="acme/corp-large", messages=[Message(role="user", content="hi")])


def _router(server: OAuthTestServer) -> Router:
    def source(router: Router) -> PluginHost:
        return PluginHost.from_config(router, router.config, tokens=router.tokens)

    return Router(load_config(), provider_source=source, tokens=TokenBroker(clock=server.clock))


async def _login(router: Router, server: OAuthTestServer) -> None:
    """What ``modelport login acme`` does: the endpoints come from the plugin's registration."""
    await router.load_providers("acme")
    host = router.provider_source
    assert isinstance(host, PluginHost)
    config = host.oauth_config("acme")
    assert config is not None and config.token_url == f"{server.url}/token"
    browser = Browser()
    await login("acme", config, show_url=lambda url: None, open_browser=browser)
    await asyncio.to_thread(browser.join)


@pytest.fixture
def server(oauth_servers: ServerFactory) -> OAuthTestServer:
    found = oauth_servers(expires_in=EXPIRES_IN)
    _install(found)
    return found


async def test_the_plugin_gets_a_fresh_access_token_in_provider_config(
    server: OAuthTestServer,
) -> None:
    router = _router(server)
    try:
        await _login(router, server)
        first = load_tokens("acme")
        assert first is not None
        assert (await router.complete(_request())).content == "Hello from corp"
        server.clock.advance(EXPIRES_IN)  # expired: the host refreshes before the request
        assert (await router.complete(_request())).content == "Hello from corp"
        second = load_tokens("acme")
        assert second is not None and second.access_token != first.access_token
        assert server.state.api_tokens == [first.access_token, second.access_token]
        assert server.refreshes == 1
        # The plugin printed its providerConfig; the host shows none of it.
        host = router.provider_source
        assert isinstance(host, PluginHost)
        stderr = "\n".join(host.describe("acme-plugin", stderr=True)["stderr"])
        assert "providerConfig" in stderr
        assert first.access_token not in stderr and second.access_token not in stderr
        assert '"token": "***"' in stderr
    finally:
        await router.aclose()


async def test_a_401_from_the_plugin_refreshes_once_and_retries(server: OAuthTestServer) -> None:
    router = _router(server)
    try:
        await _login(router, server)
        await router.complete(_request())
        server.expire_access_tokens()  # the plugin's upstream now refuses the token
        assert (await router.complete(_request())).content == "Hello from corp"
    finally:
        await router.aclose()
    assert server.refreshes == 1
    first, refused, retried = server.state.api_tokens
    assert first == refused != retried


async def test_dual_mode_sends_the_key_when_one_is_stored(server: OAuthTestServer) -> None:
    router = _router(server)
    try:
        await _login(router, server)
        set_key("acme", "sk-acme-stored-key")
        with pytest.raises(AuthError):
            await router.complete(_request())  # the API refuses the key; no refresh for a key
        assert server.state.api_tokens == ["sk-acme-stored-key"]
        assert server.refreshes == 0
    finally:
        await router.aclose()


async def test_without_a_login_the_plugin_is_not_called_and_the_error_says_what_to_run(
    server: OAuthTestServer,
) -> None:
    router = _router(server)
    try:
        await router.load_providers("acme")
        with pytest.raises(AuthError, match=r"'acme' uses OAuth and is not logged in; run `mod"):
            await router.complete(_request())
    finally:
        await router.aclose()
    assert server.state.api_tokens == []


async def test_a_plugin_connection_set_to_oauth_without_endpoints_says_where_to_add_them(
    tmp_path: Path,
) -> None:
    from modelport.plugin_host.provider import parse_registration
    from modelport.plugin_host.registry import ProviderTable

    config_path = modelport_home() / "config.toml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text('[connections.plain]\ncompat = "plugin:plain"\nauth = "oauth"\n')
    table = ProviderTable(
        None, config=load_config(), get_key=lambda name: None, environ={}, request_timeout=5
    )
    registration = parse_registration(
        {"providerId": "plain", "models": [{"id": "m"}]}, plugin="plain-plugin"
    )
    with pytest.raises(ConfigError, match=r"\[connections.plain.oauth\]"):
        table.provider_config(registration)


def test_a_registration_oauth_block_is_checked_like_the_users_table() -> None:
    from modelport.errors import InvalidRequestError
    from modelport.plugin_host.provider import parse_registration

    base = {"authorizeUrl": "https://a.example/authorize", "tokenUrl": "https://a.example/token"}
    registration = parse_registration(
        {"providerId": "p", "oauth": {**base, "clientId": "c", "scopes": ["x"]}}, plugin="p"
    )
    assert registration.oauth is not None and registration.oauth.scopes == ["x"]
    assert registration.wants_oauth and registration.oauth_field is None
    with pytest.raises(InvalidRequestError, match="needs client_id"):
        parse_registration({"providerId": "p", "oauth": base}, plugin="p")
    with pytest.raises(InvalidRequestError, match="a client secret never travels"):
        parse_registration(
            {"providerId": "p", "oauth": {**base, "clientId": "c", "clientSecret": "s"}},
            plugin="p",
        )
    with pytest.raises(InvalidRequestError, match="must start with https://"):
        parse_registration(
            {"providerId": "p", "oauth": {**base, "clientId": "c", "tokenUrl": "http://x/t"}},
            plugin="p",
        )
    with pytest.raises(InvalidRequestError, match="text, password or oauth"):
        parse_registration(
            {"providerId": "p", "configFields": [{"key": "k", "type": "x"}]}, plugin="p"
        )


async def test_a_config_reload_keeps_the_plugins_login(server: OAuthTestServer) -> None:
    # What the gateway's reload does: a new router, the plugin's providers moved to it
    # (behind their login, as when they registered), the OAuth broker handed over.
    router = _router(server)
    replacement: Router | None = None
    try:
        await _login(router, server)
        assert (await router.complete(_request())).content == "Hello from corp"
        host = router.provider_source
        assert isinstance(host, PluginHost)

        replacement = router.with_config(load_config())
        host.config = replacement.config
        host.attach(replacement)

        assert (await replacement.complete(_request())).content == "Hello from corp"
        assert len(server.state.api_tokens) == 2  # the plugin was handed the token again
        assert host.describe("acme-plugin")["problems"] == []
    finally:
        if replacement is not None:
            await replacement.aclose()
        await router.aclose()
