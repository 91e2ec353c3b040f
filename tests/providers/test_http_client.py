"""HttpClient: pooled keep-alive HTTP, redirects never followed, environment proxies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import modelport.providers._http as http_module
from modelport.errors import NetworkError
from modelport.providers._http import upstream_errors
from modelport.providers._http_client import HttpClient, HttpResponse, StreamingResponse
from modelport.testing import FakeUpstream, Reply


def test_the_provider_module_still_exports_the_client() -> None:
    assert http_module.HttpClient is HttpClient
    assert http_module.HttpResponse is HttpResponse
    assert http_module.StreamingResponse is StreamingResponse


# --- HttpClient ------------------------------------------------------------------


async def test_request_reads_the_whole_body(upstream: FakeUpstream, client: HttpClient) -> None:
    upstream.route("POST", "/v1/x", Reply.json({"ok": 1}, headers={"X-Request-Id": "r1"}))
    response = await client.request(
        "POST", f"{upstream.url}/v1/x", headers={"Authorization": "Bearer k"}, json={"a": [1]}
    )
    assert response.status == 200
    assert response.json() == {"ok": 1}
    assert response.headers["x-request-id"] == "r1"
    assert response.headers["X-Request-ID"] == "r1"  # case-insensitive
    [sent] = upstream.requests
    assert sent.json() == {"a": [1]}
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"].startswith("modelport")
    assert sent.headers["authorization"] == "Bearer k"


async def test_stream_yields_bytes_as_they_arrive(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("GET", "/s", Reply(body=b"one|two|three", chunks=[4, 4], chunk_delay=0.05))
    async with client.stream("GET", f"{upstream.url}/s") as response:
        assert response.status == 200
        pieces = [piece async for piece in response.aiter_bytes()]
    assert pieces == [b"one|", b"two|", b"three"]


async def test_error_statuses_are_returned_not_raised(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("GET", "/e", Reply.json({"error": "nope"}, status=503))
    response = await client.request("GET", f"{upstream.url}/e")
    assert (response.status, response.json()) == (503, {"error": "nope"})


async def test_redirects_are_never_followed(upstream: FakeUpstream, client: HttpClient) -> None:
    upstream.route("GET", "/r", Reply(status=302, headers={"Location": f"{upstream.url}/other"}))
    upstream.route("GET", "/other", Reply(body=b"should not be fetched"))
    response = await client.request("GET", f"{upstream.url}/r", headers={"x-api-key": "k"})
    assert response.status == 302
    assert [r.path for r in upstream.requests] == ["/r"]


async def test_connections_are_pooled(upstream: FakeUpstream, client: HttpClient) -> None:
    upstream.route("GET", "/p", Reply(body=b"x", chunks=[1]))
    for _ in range(5):
        async with client.stream("GET", f"{upstream.url}/p") as response:
            assert await response.aread() == b"x"
    assert upstream.open_connections == 1


async def test_leaving_a_stream_early_closes_its_connection(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("GET", "/slow", Reply(body=b"a" * 50, chunks=[10], chunk_delay=1.0))
    async with client.stream("GET", f"{upstream.url}/slow") as response:
        async for _piece in response.aiter_bytes():
            break
    assert await upstream.requests[0].wait_closed(0.5)


async def test_per_request_timeout_overrides_the_default(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("GET", "/h", Reply(hang=True))
    with pytest.raises(NetworkError, match="0.1 s"):
        with upstream_errors(url=f"{upstream.url}/h", timeout=0.1):
            await client.request("GET", f"{upstream.url}/h", timeout=0.1)


async def test_aclose_then_reuse(upstream: FakeUpstream, client: HttpClient) -> None:
    upstream.route("GET", "/a", Reply(body=b"ok"))
    assert (await client.request("GET", f"{upstream.url}/a")).content == b"ok"
    await client.aclose()
    assert await upstream.requests[0].wait_closed(1)
    assert (await client.request("GET", f"{upstream.url}/a")).content == b"ok"


def test_a_client_can_move_to_a_new_loop_after_aclose(upstream: FakeUpstream) -> None:
    upstream.route("GET", "/a", Reply(body=b"ok"))
    http = HttpClient(timeout=5)

    async def once() -> bytes:
        try:
            return (await http.request("GET", f"{upstream.url}/a")).content
        finally:
            await http.aclose()

    assert asyncio.run(once()) == b"ok"
    assert asyncio.run(once()) == b"ok"


# --- proxies ----------------------------------------------------------------------


async def test_environment_proxy_is_used_for_remote_hosts(
    upstream: FakeUpstream, client: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", upstream.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    target = "http://models.example.test/v1/models"
    upstream.route("GET", target, Reply.json({"data": []}))
    response = await client.request("GET", target, headers={"Authorization": "Bearer k"})
    assert response.json() == {"data": []}
    [sent] = upstream.requests
    assert sent.path == target  # absolute-form request line: it went through the proxy
    assert sent.headers["host"] == "models.example.test"


async def test_loopback_never_goes_through_a_proxy(
    upstream: FakeUpstream, client: HttpClient, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port}")
    upstream.route("GET", "/v1/models", Reply.json({"data": []}))
    response = await client.request("GET", f"{upstream.url}/v1/models")
    assert response.status == 200
    assert upstream.requests[0].path == "/v1/models"


async def test_netrc_does_not_interfere_with_our_headers(
    upstream: FakeUpstream,
    client: HttpClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    upstream.route("GET", "/v1/models", Reply.json({"data": []}))
    response = await client.request(
        "GET", f"{upstream.url}/v1/models", headers={"Authorization": "Bearer k"}
    )
    assert response.status == 200
    assert upstream.requests[0].headers["authorization"] == "Bearer k"
