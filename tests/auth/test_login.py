"""``login()`` end to end against a real authorization server, and its callback server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from modelport.auth._callback import CallbackServer, is_loopback_peer
from modelport.auth.login import login, logout
from modelport.auth.tokens import load_tokens, login_status
from modelport.errors import AuthError, ConfigError
from tests.auth._oauth_server import USER, OAuthTestServer
from tests.auth.conftest import Browser, ServerFactory, oauth_config


async def test_login_end_to_end_with_consent_and_redirects(oauth_servers: ServerFactory) -> None:
    server = oauth_servers(auto_approve=False)
    browser = Browser()
    shown: list[str] = []

    tokens, stored = await login(
        "corp", oauth_config(server), show_url=shown.append, open_browser=browser, timeout=30
    )

    page = await asyncio.to_thread(browser.join)
    assert page.status_code == 200
    assert "Signed in to modelport" in page.text and USER in page.text
    # The authorization URL carried PKCE (S256), a state, and the loopback callback.
    query = parse_qs(urlsplit(shown[0]).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["response_type"] == ["code"]
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert query["scope"] == ["llm offline_access"]
    # What the server issued is what was stored.
    issued = server.current()
    assert tokens.access_token == issued.access_token
    assert tokens.refresh_token == issued.refresh_token
    assert tokens.account == USER
    assert load_tokens("corp") == tokens
    assert stored.place == "file"  # the tests' null keyring
    assert server.state.token_requests == ["authorization_code"]


async def test_a_public_client_sends_its_id_and_the_verifier_never_a_secret(
    oauth_server: OAuthTestServer,
) -> None:
    browser = Browser()
    await login("corp", oauth_config(oauth_server), show_url=lambda url: None, open_browser=browser)
    browser.join()
    # authlib's CodeChallenge(required=True) refuses an exchange without the verifier,
    # so a token here proves the S256 pair matched.
    assert oauth_server.current().access_token


async def test_a_confidential_client_authenticates_with_the_secret_from_its_variable(
    oauth_servers: ServerFactory,
) -> None:
    server = oauth_servers(client_secret="cs-marker-7c1f")
    config = oauth_config(server, client_secret_env="CORP_CLIENT_SECRET")
    browser = Browser()
    with pytest.raises(ConfigError, match="set the environment variable CORP_CLIENT_SECRET"):
        await login("corp", config, show_url=lambda url: None, open_browser=browser, env={})
    browser.join()

    browser = Browser()
    tokens, _ = await login(
        "corp",
        config,
        show_url=lambda url: None,
        open_browser=browser,
        env={"CORP_CLIENT_SECRET": "cs-marker-7c1f"},
    )
    browser.join()
    assert tokens.access_token == server.current().access_token


async def test_a_callback_with_the_wrong_state_is_refused(oauth_server: OAuthTestServer) -> None:
    pages: list[httpx.Response] = []
    visits: list[threading.Thread] = []

    def forged_callback(url: str) -> None:
        redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]

        def visit() -> None:
            got = httpx.get(f"{redirect}?code=stolen&state=not-this-login", trust_env=False)
            time.sleep(0.3)  # PROBE: a slow visitor thread
            pages.append(got)

        visits.append(threading.Thread(target=visit, daemon=True))
        visits[-1].start()

    with pytest.raises(AuthError, match="state that does not match") as caught:
        await login(
            "corp",
            oauth_config(oauth_server),
            show_url=lambda u: None,
            open_browser=forged_callback,
        )
    assert "modelport login corp" in caught.value.message
    # The page was sent before login() raised; the visitor thread reads it in its own time.
    await asyncio.to_thread(visits[0].join, 10)
    assert pages[0].status_code == 400 and "sign-in failed" in pages[0].text
    assert oauth_server.state.token_requests == []  # the code was never exchanged
    assert load_tokens("corp") is None


async def test_a_refusal_at_the_server_is_an_auth_error_saying_what_to_run(
    oauth_server: OAuthTestServer,
) -> None:
    def deny(url: str) -> None:
        query = parse_qs(urlsplit(url).query)
        redirect, state = query["redirect_uri"][0], query["state"][0]
        threading.Thread(
            target=lambda: httpx.get(
                f"{redirect}?error=access_denied&error_description=User+said+no&state={state}",
                trust_env=False,
            ),
            daemon=True,
        ).start()

    with pytest.raises(AuthError, match=r"access_denied: User said no.*modelport login corp"):
        await login("corp", oauth_config(oauth_server), show_url=lambda u: None, open_browser=deny)


async def test_no_callback_times_out_with_a_clear_message(oauth_server: OAuthTestServer) -> None:
    with pytest.raises(AuthError, match=r"No login callback arrived within 0.3 s.*--no-browser"):
        await login("corp", oauth_config(oauth_server), show_url=lambda u: None, timeout=0.3)


def test_logout_forgets_the_tokens(oauth_server: OAuthTestServer) -> None:
    browser = Browser()
    asyncio.run(
        login("corp", oauth_config(oauth_server), show_url=lambda u: None, open_browser=browser)
    )
    browser.join()
    assert load_tokens("corp") is not None
    assert logout("corp") is True
    assert load_tokens("corp") is None
    assert logout("corp") is False


def test_login_status_says_who_when_and_whether_refresh_works() -> None:
    from modelport.auth.tokens import TokenSet

    tokens = TokenSet(
        access_token="at-x", refresh_token="rt-x", expires_at=1000 + 3000, issued_at=1000,
        account="ada@example.com",
    )  # fmt: skip
    assert login_status(tokens, now=1000) == (
        "logged in as ada@example.com, expires in 50 min, refresh available"
    )
    assert login_status(TokenSet(access_token="a", expires_at=900, issued_at=0), now=1000) == (
        "logged in, expired 100 s ago, no refresh token"
    )
    assert login_status(None) == "not logged in"
    assert "at-x" not in repr(tokens) and "rt-x" not in repr(tokens)


# --- the callback server ----------------------------------------------------------


async def test_the_callback_listens_on_loopback_only_even_when_it_says_localhost() -> None:
    async with CallbackServer(port=0, path="/auth/callback", host_name="localhost") as server:
        assert server._socket is not None
        assert server._socket.getsockname()[0] == "127.0.0.1"
        assert server.redirect_uri == f"http://localhost:{server.port}/auth/callback"


async def test_the_callback_refuses_a_request_naming_another_host() -> None:
    async with CallbackServer(port=0, path="/callback") as server:

        def visit(host: str) -> httpx.Response:
            return httpx.get(
                f"http://127.0.0.1:{server.port}/callback?code=c&state=s",
                headers={"Host": host},
                trust_env=False,
            )

        # A page elsewhere that rebinds its DNS name to 127.0.0.1 still names its own host.
        refused = await asyncio.to_thread(visit, f"evil.example:{server.port}")
        assert refused.status_code == 403
        assert "from this machine only" in refused.text
        # The refusal did not use up the one callback.
        waiting = asyncio.ensure_future(server.wait(5))
        answer = asyncio.ensure_future(asyncio.to_thread(visit, f"127.0.0.1:{server.port}"))
        assert (await waiting).endswith("/callback?code=c&state=s")
        server.finish(True, "done")
        assert (await answer).status_code == 200
        again = await asyncio.to_thread(visit, f"127.0.0.1:{server.port}")
        assert again.status_code == 409  # one-shot


async def test_a_port_in_use_is_a_config_error_naming_redirect_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*redirect_port"):
            async with CallbackServer(port=port, path="/callback"):
                pass


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("192.168.1.20", False),
     ("10.0.0.1", False), ("", False), (None, False), ("not-an-ip", False)],
)  # fmt: skip
def test_only_loopback_peers_are_accepted(peer: str | None, loopback: bool) -> None:
    assert is_loopback_peer(peer) is loopback
