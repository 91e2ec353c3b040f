from __future__ import annotations

import pytest

from modelport.errors import (
    AuthError,
    ConfigError,
    ModelportError,
    NetworkError,
    ParseError,
)
from modelport.providers._http import (
    DEFAULT_HINT,
    HttpClient,
    redact_url,
    upstream_errors,
)
from modelport.testing import FakeUpstream, Reply
from tests.providers.conftest import RawServer


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pa55@host:8443/v1?x=1", "https://host:8443/v1"),
        ("http://token@host/v1", "http://host/v1"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
        # Keys in the query (Azure's api-key=, Gemini's key=) and fragments go whole.
        ("https://h.example/v1/chat?api-key=sk-q&x=1#frag", "https://h.example/v1/chat"),
        ("https://h.example/v1?key=sk-q", "https://h.example/v1"),
        ("http://u:sk-p@[::1/v1?token=sk-q", "http://[::1/v1"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


# --- upstream_errors --------------------------------------------------------------


async def test_refused_connection_message(client: HttpClient, closed_port: int) -> None:
    base = f"http://127.0.0.1:{closed_port}/v1"
    with pytest.raises(NetworkError) as caught:
        with upstream_errors(url=f"{base}/models", connection="local", model="m", target=base):
            await client.request("GET", f"{base}/models")
    error = caught.value
    assert error.message == f"Cannot reach {base} (connection refused) — {DEFAULT_HINT}"
    assert (error.connection, error.url, error.model) == ("local", f"{base}/models", "m")
    assert error.retryable
    assert isinstance(error.__cause__, Exception)


async def test_credentials_in_the_url_never_reach_the_message(
    client: HttpClient, closed_port: int
) -> None:
    url = f"http://admin:hunter2@127.0.0.1:{closed_port}/v1"
    with pytest.raises(NetworkError) as caught:
        with upstream_errors(url=url):
            await client.request("GET", url)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in (caught.value.url or "")


async def test_dropped_body_is_a_network_error(upstream: FakeUpstream, client: HttpClient) -> None:
    upstream.route("GET", "/d", Reply(body=b"z" * 100, chunks=[10], drop_after=25))
    with pytest.raises(NetworkError, match="closed mid-response"):
        with upstream_errors(url=f"{upstream.url}/d"):
            await client.request("GET", f"{upstream.url}/d")


async def test_dropped_content_length_body_is_a_network_error(
    client: HttpClient, raw_server: RawServer
) -> None:
    short_body = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this"
    url = f"http://127.0.0.1:{await raw_server(short_body)}/x"
    with pytest.raises(NetworkError, match="closed mid-response"):
        with upstream_errors(url=url):
            await client.request("GET", url)


async def test_tls_failure_names_the_scheme(client: HttpClient, raw_server: RawServer) -> None:
    # Plain HTTP at once: a TLS client hello is no HTTP request to read first.
    plain_http = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
    port = await raw_server(plain_http, read_request=False)
    url = f"https://127.0.0.1:{port}/v1/models"
    with pytest.raises(NetworkError) as caught:
        with upstream_errors(url=url):
            await client.request("GET", url)
    assert "TLS failed" in str(caught.value)
    assert "http:// or https://" in str(caught.value)


async def test_invalid_url_is_a_config_error(client: HttpClient) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        with upstream_errors(url="http://"):
            await client.request("GET", "http://")


async def test_hint_is_used_for_refusals(client: HttpClient, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/api/tags"
    with pytest.raises(NetworkError, match="ollama serve"):
        with upstream_errors(url=url, hint="is Ollama running (`ollama serve`)?"):
            await client.request("GET", url)


def test_fills_missing_context_without_overwriting() -> None:
    with pytest.raises(ParseError) as caught:
        with upstream_errors(url="http://h/v1/x", connection="c", model="m"):
            raise ParseError("bad bytes")
    assert (caught.value.connection, caught.value.url, caught.value.model) == (
        "c",
        "http://h/v1/x",
        "m",
    )

    with pytest.raises(AuthError) as caught_auth:
        with upstream_errors(url="http://h/v1/x", connection="c", model="m"):
            raise AuthError("no key", connection="other", model="n", url="http://elsewhere")
    assert (caught_auth.value.connection, caught_auth.value.model) == ("other", "n")
    assert caught_auth.value.url == "http://elsewhere"


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError):
        with upstream_errors(url="http://h"):
            raise KeyError("x")
    error = ModelportError("plain")
    with pytest.raises(ModelportError) as caught:
        with upstream_errors(url="http://h", connection="c"):
            raise error
    assert caught.value is error and error.connection == "c"


async def test_garbage_response_is_a_network_error_without_the_key(
    client: HttpClient, raw_server: RawServer
) -> None:
    port = await raw_server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    url = f"http://127.0.0.1:{port}/v1/models"
    with pytest.raises(NetworkError) as caught:
        with upstream_errors(url=url):
            await client.request("GET", url, headers={"x-api-key": "sk-very-secret"})
    assert "did not answer with valid HTTP" in str(caught.value)
    assert "is the URL right?" in str(caught.value)
    error = caught.value
    for text in (str(error), repr(error), repr(error.__cause__), repr(error.__context__)):
        assert "sk-very-secret" not in text
    request_info = getattr(error.__context__, "request_info", None)
    assert request_info is None or "sk-very-secret" not in repr(dict(request_info.headers))
