"""Calls to an OAuth connection through the router: fresh tokens, refresh, 401, dual mode.

The upstream is the authorization server's own API (``tests/auth/_oauth_server.py``),
which answers only a valid, unexpired, unrevoked bearer token. Its clock is
the router's token clock, so "at expiry" is a step of the clock, not a sleep.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelport.auth.keys import set_key
from modelport.auth.login import login
from modelport.auth.provider import OAuthProvider
from modelport.auth.session import TokenBroker
from modelport.auth.tokens import load_tokens
from modelport.config import load_config, modelport_home
from modelport.errors import AuthError
from modelport.events import TextEvent
from modelport.providers import ConnectionSettings
from modelport.providers.anthropic import AnthropicProvider
from modelport.routing import Router
from modelport.testing import FakeProvider, FakeReply
from modelport.types import ChatRequest, Message
from tests.auth._oauth_server import OAuthTestServer
from tests.auth.conftest import Browser, ServerFactory, oauth_config

EXPIRES_IN = 600


def _configure(server: OAuthTestServer, *, auth: str = "oauth", extra: str = "") -> None:
    path = modelport_home() / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[connections.corp]\n"
        'compat = "openai"\n'
        f'base_url = "{server.url}/v1"\n'
        f'auth = "{auth}"\n'
        f"{extra}"
        "\n[connections.corp.oauth]\n" + server.oauth_table()
    )


async def _login(server: OAuthTestServer) -> None:
    browser = Browser()
    await login("corp", oauth_config(server), show_url=lambda url: None, open_browser=browser)
    await asyncio.to_thread(browser.join)


def _router(server: OAuthTestServer) -> Router:
    return Router(load_config(), tokens=TokenBroker(clock=server.clock))


def _request(text: str = "hi") -> ChatRequest:
    return ChatRequest(model="corp/corp-large", messages=[Message(role="user", content=text)])


@pytest.fixture
async def server(oauth_servers: ServerFactory) -> OAuthTestServer:
    found = oauth_servers(expires_in=EXPIRES_IN, token_delay=0.05)
    _configure(found)
    await _login(found)
    return found


async def _text(router: Router) -> str:
    parts = []
    async for event in router.stream(_request()):
        if isinstance(event, TextEvent):
            parts.append(event.text)
    return "".join(parts)


# --- a fresh token on every call ---------------------------------------------------


async def test_calls_carry_the_logged_in_access_token(server: OAuthTestServer) -> None:
    router = _router(server)
    try:
        answer = await router.complete(_request())
        assert answer.content == "Hello from corp"
        assert await _text(router) == "Hello from corp"
        assert [m.id for m in await router.list_models("corp")] == ["corp-large"]
    finally:
        await router.aclose()
    stored = load_tokens("corp")
    assert stored is not None
    assert set(server.state.api_tokens) == {stored.access_token}
    assert server.refreshes == 0


async def test_an_expired_token_is_refreshed_before_the_call(server: OAuthTestServer) -> None:
    before = load_tokens("corp")
    assert before is not None
    router = _router(server)
    try:
        await router.complete(_request())
        server.clock.advance(EXPIRES_IN)  # both clocks: the token has expired
        answer = await router.complete(_request())
    finally:
        await router.aclose()
    assert answer.content == "Hello from corp"
    assert server.refreshes == 1
    after = load_tokens("corp")
    assert after is not None and after.access_token != before.access_token
    assert server.state.api_tokens == [before.access_token, after.access_token]


async def test_a_token_about_to_expire_is_refreshed_too(server: OAuthTestServer) -> None:
    router = _router(server)
    try:
        server.clock.advance(EXPIRES_IN - 30)  # inside the refresh margin (a minute)
        await router.complete(_request())
    finally:
        await router.aclose()
    assert server.refreshes == 1


async def test_fifty_concurrent_calls_at_expiry_cause_exactly_one_refresh(
    server: OAuthTestServer,
) -> None:
    router = _router(server)
    try:
        await router.complete(_request())
        server.clock.advance(EXPIRES_IN)
        answers = await asyncio.gather(*(router.complete(_request()) for _ in range(50)))
    finally:
        await router.aclose()
    assert [a.content for a in answers] == ["Hello from corp"] * 50
    assert server.refreshes == 1
    fresh = load_tokens("corp")
    assert fresh is not None
    assert server.state.api_tokens[1:] == [fresh.access_token] * 50


async def test_a_rotated_refresh_token_is_stored_before_the_new_access_token_is_used(
    server: OAuthTestServer,
) -> None:
    old = load_tokens("corp")
    assert old is not None
    stored_when_used: list[str | None] = []

    def api_saw(token: str) -> None:
        if token != old.access_token:
            stored = load_tokens("corp")
            stored_when_used.append(stored.refresh_token if stored else None)

    server.on_api_request = api_saw
    router = _router(server)
    try:
        server.clock.advance(EXPIRES_IN)
        await router.complete(_request())
    finally:
        await router.aclose()
    rotated = server.current().refresh_token
    assert rotated is not None and rotated != old.refresh_token
    # The server revoked the old refresh token; the stored one is the new one, and was
    # already stored when the new access token first reached the upstream.
    assert stored_when_used == [rotated]
    assert any(t.refresh_token == old.refresh_token and t.revoked for t in server.state.tokens)


async def test_a_revoked_login_is_an_auth_error_saying_run_login_and_is_not_retried(
    server: OAuthTestServer,
) -> None:
    router = _router(server)
    try:
        server.revoke_all()
        server.clock.advance(EXPIRES_IN)
        with pytest.raises(AuthError) as caught:
            await router.complete(_request())
        assert "run `modelport login corp`" in caught.value.message
        assert caught.value.connection == "corp"
        assert server.refreshes == 1
        # The refused refresh token is not offered again on every call.
        with pytest.raises(AuthError, match="modelport login corp"):
            await router.complete(_request())
        assert server.refreshes == 1
    finally:
        await router.aclose()


async def test_a_new_login_next_to_a_running_router_takes_effect(
    oauth_servers: ServerFactory,
) -> None:
    server = oauth_servers(expires_in=EXPIRES_IN)
    _configure(server)
    router = _router(server)
    try:
        with pytest.raises(AuthError, match=r"is not logged in; run `modelport login corp`"):
            await router.complete(_request())
        await _login(server)  # `modelport login corp` in another terminal
        assert (await router.complete(_request())).content == "Hello from corp"
        # Revoked and logged in again: the refused refresh token is forgotten.
        server.revoke_all()
        server.clock.advance(EXPIRES_IN)
        with pytest.raises(AuthError, match="modelport login corp"):
            await router.complete(_request())
        await _login(server)
        assert (await router.complete(_request())).content == "Hello from corp"
    finally:
        await router.aclose()


# --- 401 from the upstream -------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_401_refreshes_once_and_retries_once(
    server: OAuthTestServer, streamed: bool
) -> None:
    router = _router(server)
    try:
        await router.complete(_request())
        server.expire_access_tokens()  # the server says no; our clock says the token is fine
        if streamed:
            assert await _text(router) == "Hello from corp"
        else:
            assert (await router.complete(_request())).content == "Hello from corp"
    finally:
        await router.aclose()
    assert server.refreshes == 1
    first, refused, retried = server.state.api_tokens
    assert first == refused != retried


async def test_fifty_calls_refused_together_cause_one_refresh(server: OAuthTestServer) -> None:
    router = _router(server)
    try:
        await router.complete(_request())
        server.expire_access_tokens()
        answers = await asyncio.gather(*(router.complete(_request()) for _ in range(50)))
    finally:
        await router.aclose()
    assert all(a.content == "Hello from corp" for a in answers)
    assert server.refreshes == 1


async def test_a_second_401_is_the_callers_with_what_to_run(server: OAuthTestServer) -> None:
    router = _router(server)
    original = server._valid_access
    server._valid_access = lambda header: False  # type: ignore[method-assign]
    try:
        with pytest.raises(AuthError) as caught:
            await router.complete(_request())
    finally:
        server._valid_access = original  # type: ignore[method-assign]
        await router.aclose()
    assert caught.value.status == 401
    assert "refused the renewed login of 'corp' too; run `modelport login corp`" in str(
        caught.value
    )
    assert server.refreshes == 1


async def test_no_refresh_or_retry_once_an_event_reached_the_caller() -> None:
    class Session:
        name = "corp"
        renewals = 0

        async def access_token(self) -> str:
            return "at-1"

        async def after_rejection(self, rejected: str) -> str:
            self.renewals += 1
            return "at-2"

    broken = FakeReply(events=[TextEvent(text="partial")], error=AuthError("no", status=401))
    inner = FakeProvider(broken, "never sent")
    session = Session()
    provider = OAuthProvider(session, lambda token: inner)  # type: ignore[arg-type]
    seen = []
    with pytest.raises(AuthError):
        async for event in provider.stream(_request()):
            seen.append(event)
    assert seen == [TextEvent(text="partial")]
    assert session.renewals == 0 and len(inner.history) == 1

    # Before the first event, the same 401 is answered with a refresh and a retry.
    inner = FakeProvider(AuthError("no", status=401), "fine")
    provider = OAuthProvider(session, lambda token: inner)  # type: ignore[arg-type]
    events = [event async for event in provider.stream(_request())]
    assert TextEvent(text="fine") in events
    assert session.renewals == 1 and len(inner.history) == 2


async def test_a_403_is_not_answered_with_a_refresh() -> None:
    class Session:
        name = "corp"
        renewals = 0

        async def access_token(self) -> str:
            return "at-1"

        async def after_rejection(self, rejected: str) -> str:
            self.renewals += 1
            return "at-2"

    session = Session()
    inner = FakeProvider(AuthError("forbidden", status=403))
    provider = OAuthProvider(session, lambda token: inner)  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="forbidden"):
        await provider.complete(_request())
    assert session.renewals == 0


# --- dual mode -------------------------------------------------------------------------


async def test_auto_uses_the_stored_key_when_there_is_one(
    oauth_servers: ServerFactory,
) -> None:
    server = oauth_servers()
    _configure(server, auth="auto")
    await _login(server)
    set_key("corp", "sk-corp-stored-key")
    router = _router(server)
    try:
        # The key goes out (this API refuses it), and a refused key is no login to renew.
        with pytest.raises(AuthError):
            await router.complete(_request())
    finally:
        await router.aclose()
    assert server.state.api_tokens == ["sk-corp-stored-key"]
    assert server.refreshes == 0


async def test_auto_uses_the_key_from_its_variable_when_set(
    oauth_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = oauth_servers()
    _configure(server, auth="auto", extra='api_key_env = "CORP_KEY"\n')
    await _login(server)
    router = _router(server)
    try:
        assert (await router.complete(_request())).content == "Hello from corp"  # OAuth
        monkeypatch.setenv("CORP_KEY", "sk-corp-env-key")
        with pytest.raises(AuthError):
            await router.complete(_request())  # the key, now that it is set
    finally:
        await router.aclose()
    stored = load_tokens("corp")
    assert stored is not None
    assert server.state.api_tokens == [stored.access_token, "sk-corp-env-key"]


async def test_auto_falls_back_to_oauth_without_a_key(oauth_servers: ServerFactory) -> None:
    server = oauth_servers()
    _configure(server, auth="auto")
    await _login(server)
    router = _router(server)
    try:
        assert (await router.complete(_request())).content == "Hello from corp"
        assert router.settings_for("corp").auth == "oauth"
    finally:
        await router.aclose()


async def test_oauth_mode_never_sends_a_stored_key(server: OAuthTestServer) -> None:
    set_key("corp", "sk-corp-stored-key")
    router = _router(server)
    try:
        assert (await router.complete(_request())).content == "Hello from corp"
    finally:
        await router.aclose()
    assert "sk-corp-stored-key" not in server.state.api_tokens


async def test_a_token_never_goes_to_a_per_call_url_elsewhere(server: OAuthTestServer) -> None:
    router = _router(server)
    try:
        settings = router.settings_for("corp", base_url="http://127.0.0.1:9/v1")
        assert (settings.auth, settings.api_key, settings.oauth) == ("key", None, None)
        assert router.settings_for("corp").auth == "oauth"
    finally:
        await router.aclose()


def test_an_oauth_token_is_a_bearer_token_whatever_the_adapter(tmp_path: Path) -> None:
    settings = ConnectionSettings(
        name="claude", compat="anthropic", api_key="at-oauth-token", auth="oauth"
    )
    headers = AnthropicProvider(settings).request_headers()
    assert headers["Authorization"] == "Bearer at-oauth-token"
    assert "x-api-key" not in headers
    keyed = AnthropicProvider(ConnectionSettings(name="claude", compat="anthropic", api_key="k"))
    assert keyed.request_headers()["x-api-key"] == "k"
    assert "Authorization" not in keyed.request_headers()


async def test_a_login_that_cannot_be_stored_still_serves_this_process(
    server: OAuthTestServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import modelport.auth.session as session_module
    from modelport.errors import ConfigError

    def broken(*args: object, **kwargs: object) -> None:
        raise ConfigError("Cannot write /home/x/tokens.json: No space left on device")

    monkeypatch.setattr(session_module, "save_tokens", broken)
    router = _router(server)
    try:
        server.clock.advance(EXPIRES_IN)
        assert (await router.complete(_request())).content == "Hello from corp"
        assert (await router.complete(_request())).content == "Hello from corp"
    finally:
        await router.aclose()
    assert server.refreshes == 1
    assert "could not store the renewed login of 'corp'" in caplog.text
    assert "No space left on device" in caplog.text
    assert server.current().refresh_token not in caplog.text


async def test_embeddings_go_through_the_same_login(server: OAuthTestServer) -> None:
    from modelport.types import EmbeddingRequest

    router = _router(server)
    try:
        request = EmbeddingRequest(model="corp/embed-small", input=["hello", "hi"])
        first = await router.embed(request)
        server.expire_access_tokens()  # a 401, answered by a refresh and one retry
        second = await router.embed(request)
    finally:
        await router.aclose()
    assert first.embeddings == second.embeddings == [[5.0, 0.5], [2.0, 0.5]]
    assert server.refreshes == 1
    stored = load_tokens("corp")
    assert stored is not None and server.state.api_tokens[-1] == stored.access_token
