"""Stored tokens, and what the token endpoint's failures become."""

from __future__ import annotations

import json
import stat

import pytest

from modelport.auth.oauth import OAuthClient
from modelport.auth.tokens import TokenSet, delete_tokens, load_tokens, save_tokens
from modelport.config import OAuthConfig, modelport_home
from modelport.errors import AuthError, NetworkError, UpstreamError
from modelport.providers._http_client import HttpClient
from modelport.testing import FakeUpstream, Reply
from tests.auth.test_keys import LockedKeyring, MemoryKeyring

TOKENS = TokenSet(
    access_token="at-secret-1", refresh_token="rt-secret-1", expires_at=2000.0, issued_at=1000.0
)


def test_tokens_go_to_the_keyring_under_oauth_name() -> None:
    backend = MemoryKeyring()
    stored = save_tokens("corp", TOKENS, backend=backend)
    assert stored.place == "keyring"
    assert list(backend.passwords) == [("modelport", "oauth:corp")]
    assert load_tokens("corp", backend=backend) == TOKENS
    assert not (modelport_home() / "tokens.json").exists()
    assert delete_tokens("corp", backend=backend) is True
    assert load_tokens("corp", backend=backend) is None


def test_without_a_working_keyring_tokens_go_to_an_owner_only_file_and_say_why() -> None:
    stored = save_tokens("corp", TOKENS, backend=LockedKeyring())
    path = modelport_home() / "tokens.json"
    assert (stored.place, stored.path) == ("file", path)
    assert "refused it (KeyringLocked)" in stored.describe()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["keys"]["corp"]  # JSON of the token set
    assert load_tokens("corp", backend=LockedKeyring()) == TOKENS


def test_an_unreadable_entry_means_log_in_again() -> None:
    backend = MemoryKeyring()
    backend.passwords[("modelport", "oauth:corp")] = "{not json"
    assert load_tokens("corp", backend=backend) is None


def test_refresh_timing_follows_the_lifetime() -> None:
    hour = TokenSet(access_token="a", expires_at=3600.0, issued_at=0.0)
    assert not hour.needs_refresh(3539.0) and hour.needs_refresh(3540.0)  # a minute early
    short = TokenSet(access_token="a", expires_at=20.0, issued_at=0.0)
    assert not short.needs_refresh(17.9) and short.needs_refresh(18.0)  # a tenth of 20 s
    assert not TokenSet(access_token="a").needs_refresh(1e12)  # no expiry given


def test_a_refresh_answer_without_a_refresh_token_keeps_the_old_one() -> None:
    fresh = TokenSet.from_response(
        {"access_token": "at-2", "expires_in": 60}, now=5000.0, previous=TOKENS
    )
    assert fresh.refresh_token == "rt-secret-1"
    assert (fresh.expires_at, fresh.issued_at) == (5060.0, 5000.0)
    rotated = TokenSet.from_response(
        {"access_token": "at-3", "refresh_token": "rt-2"}, now=5000.0, previous=TOKENS
    )
    assert rotated.refresh_token == "rt-2"


# --- the token endpoint's failures ---------------------------------------------------


def _client(upstream: FakeUpstream | None, url: str | None = None) -> OAuthClient:
    token_url = url or f"{upstream.url}/token"  # type: ignore[union-attr]
    config = OAuthConfig(
        authorize_url="http://127.0.0.1:9/authorize", token_url=token_url, client_id="c"
    )
    return OAuthClient("corp", config, http=HttpClient(timeout=5), env={})


async def test_a_refused_refresh_says_run_login(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/token", Reply.json({"error": "invalid_grant"}, status=400))
    client = _client(upstream)
    with pytest.raises(AuthError, match="run `modelport login corp`") as caught:
        await client.refresh(TOKENS)
    assert caught.value.status == 401 and "rt-secret-1" not in str(caught.value)
    request = upstream.requests[-1]
    assert b"grant_type=refresh_token" in request.body and b"client_id=c" in request.body
    await client._http.aclose()


async def test_a_token_endpoint_that_is_down_is_retryable(upstream: FakeUpstream) -> None:
    upstream.route("POST", "/token", Reply(status=503, body=b"busy"))
    client = _client(upstream)
    with pytest.raises(UpstreamError) as caught:
        await client.refresh(TOKENS)
    assert caught.value.retryable and caught.value.status == 503
    await client._http.aclose()


async def test_an_unreachable_token_endpoint_is_a_network_error_naming_it() -> None:
    from tests.cli.conftest import refused_url

    url = refused_url().replace("/v1", "/token")
    client = _client(None, url)
    with pytest.raises(NetworkError, match="connection refused") as caught:
        await client.refresh(TOKENS)
    assert caught.value.connection == "corp"
    assert "token_url in [connections.corp.oauth]" in caught.value.message
    await client._http.aclose()


async def test_a_refresh_without_a_refresh_token_says_run_login() -> None:
    client = _client(None, "http://127.0.0.1:9/token")
    with pytest.raises(AuthError, match="no refresh token; run `modelport login corp`"):
        await client.refresh(TokenSet(access_token="a"))
    await client._http.aclose()
