"""HttpClient's short way for a JSON POST (``_http_direct``): aiohttp's guarantees, kept.

Every chat call is a JSON POST, so these are the paths the gateway takes; the
GET tests in test_http_client.py and test_http.py cover ``session.request``.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from modelport.errors import NetworkError
from modelport.providers._http import upstream_errors
from modelport.providers._http_client import HttpClient
from modelport.providers._http_direct import supports
from modelport.testing import FakeUpstream, Reply
from tests.providers.conftest import RawServer

_KEY = "sk-direct-secret"


def _refuse_session_request(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a JSON POST went through ClientSession.request")

    monkeypatch.setattr(aiohttp.ClientSession, "_request", refuse)


async def test_a_json_post_does_not_go_through_session_request(
    upstream: FakeUpstream, client: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_session_request(monkeypatch)
    upstream.route("POST", "/v1/x", Reply.json({"ok": 1}))
    upstream.route("POST", "/v1/s", Reply(body=b"data: 1\n\n", chunks=[3]))
    response = await client.request("POST", f"{upstream.url}/v1/x", json={"a": 1})
    assert (response.status, response.json()) == (200, {"ok": 1})
    async with client.stream("POST", f"{upstream.url}/v1/s", json={"a": 1}) as streamed:
        assert await streamed.aread() == b"data: 1\n\n"


async def test_the_request_is_the_one_aiohttp_would_send(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/v1/x?api-version=1", Reply.json({"ok": 1}))
    url = f"{upstream.url}/v1/x?api-version=1"
    headers = {"Authorization": f"Bearer {_KEY}", "anthropic-version": "2023-06-01"}
    body = b'{"model":"m","messages":[]}'
    await client.request("POST", url, headers=headers, json={"model": "m", "messages": []})
    async with aiohttp.ClientSession(headers={"User-Agent": "modelport"}) as session:
        payload = aiohttp.BytesPayload(body, content_type="application/json")
        async with session.post(url, headers=headers, data=payload) as answer:
            await answer.read()
    ours, theirs = upstream.requests
    assert (ours.method, ours.path, ours.body) == (theirs.method, theirs.path, theirs.body)
    assert ours.body == body
    assert ours.headers == theirs.headers
    assert ours.headers["content-length"] == str(len(body))


async def test_the_caller_s_content_type_replaces_json_s(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/v1/x", Reply.json({"ok": 1}))
    await client.request(
        "POST", f"{upstream.url}/v1/x", headers={"content-type": "application/x+json"}, json={}
    )
    assert upstream.requests[0].headers["content-type"] == "application/x+json"


async def test_a_header_that_would_inject_another_is_refused_before_sending(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/v1/x", Reply.json({"ok": 1}))
    with pytest.raises(ValueError, match="header injection"):
        await client.request(
            "POST", f"{upstream.url}/v1/x", headers={"Authorization": "k\r\nX-Evil: 1"}, json={}
        )
    assert upstream.requests == []


async def test_connections_are_pooled_and_returned_once_read(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/v1/x", Reply.json({"ok": 1}))
    upstream.route("POST", "/v1/s", Reply(body=b"data: 1\n\ndata: 2\n\n", chunks=[9]))
    for _ in range(3):
        await client.request("POST", f"{upstream.url}/v1/x", json={})
        async with client.stream("POST", f"{upstream.url}/v1/s", json={}) as streamed:
            pieces = [piece async for piece in streamed.aiter_bytes()]
            assert b"".join(pieces) == b"data: 1\n\ndata: 2\n\n"
    assert len(upstream.requests) == 6
    assert upstream.open_connections == 1


async def test_each_host_s_calls_reuse_only_that_host_s_connections(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    # The pool's key is worked out once per URL: a connection to one server must never
    # carry a call (and its key) meant for another.
    with FakeUpstream() as other:
        for server, name in ((upstream, "one"), (other, "two")):
            server.route("POST", "/v1/x", *[Reply.json({"server": name})] * 3)
        for _ in range(3):
            first = await client.request("POST", f"{upstream.url}/v1/x", json={})
            second = await client.request("POST", f"{other.url}/v1/x", json={})
            assert (first.json(), second.json()) == ({"server": "one"}, {"server": "two"})
        assert (len(upstream.requests), len(other.requests)) == (3, 3)
        assert (upstream.open_connections, other.open_connections) == (1, 1)


async def test_leaving_a_stream_early_closes_its_connection(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/slow", Reply(body=b"a" * 50, chunks=[10], chunk_delay=1.0))
    async with client.stream("POST", f"{upstream.url}/slow", json={}) as streamed:
        async for _piece in streamed.aiter_bytes():
            break
    assert await upstream.requests[0].wait_closed(0.5)


async def test_a_cancelled_call_closes_its_connection(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/hang", Reply(hang=True))
    call = asyncio.create_task(client.request("POST", f"{upstream.url}/hang", json={}))
    while not upstream.requests:
        await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await upstream.requests[0].wait_closed(0.5)


async def test_waiting_for_the_answer_is_bounded_by_the_timeout(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/hang", Reply(hang=True))
    with pytest.raises(NetworkError, match=r"No response from .* for 0\.1 s"):
        with upstream_errors(url=f"{upstream.url}/hang", timeout=0.1):
            await client.request("POST", f"{upstream.url}/hang", json={}, timeout=0.1)


async def test_each_wait_for_more_of_a_stream_is_bounded_by_the_timeout(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/slow", Reply(body=b"a" * 20, chunks=[10], chunk_delay=1.0))
    with pytest.raises(NetworkError, match=r"for 0\.2 s"):
        with upstream_errors(url=f"{upstream.url}/slow", timeout=0.2):
            async with client.stream(
                "POST", f"{upstream.url}/slow", json={}, timeout=0.2
            ) as streamed:
                async for _piece in streamed.aiter_bytes():
                    pass


async def test_a_stream_longer_than_the_timeout_is_fine_while_its_reads_keep_coming(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    # Six reads 0.1 s apart: 0.6 s in all, each wait well under the 0.3 s timeout.
    upstream.route("POST", "/paced", Reply(body=b"abcdef", chunks=[1] * 6, chunk_delay=0.1))
    async with client.stream("POST", f"{upstream.url}/paced", json={}, timeout=0.3) as streamed:
        pieces = [piece async for piece in streamed.aiter_bytes()]
    assert b"".join(pieces) == b"abcdef"


async def test_taking_chunks_off_the_buffer_does_not_refeed_the_parser(
    upstream: FakeUpstream, client: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp's handler feeds its parser b"" (and resumes the transport) for every HTTP
    # chunk a reader takes, paused or not; ours only when reading was paused.
    from aiohttp.client_proto import ResponseHandler

    empty_feeds = 0
    data_received = ResponseHandler.data_received

    def counting(self: ResponseHandler, data: bytes) -> None:
        nonlocal empty_feeds
        empty_feeds += not data
        data_received(self, data)

    monkeypatch.setattr(ResponseHandler, "data_received", counting)
    events = b"".join(b"data: %d\n\n" % n for n in range(20))
    upstream.route("POST", "/s", Reply(body=events, chunks=[9] * 20))
    async with client.stream("POST", f"{upstream.url}/s", json={}) as streamed:
        assert b"".join([piece async for piece in streamed.aiter_bytes()]) == events
    assert empty_feeds == 0


async def test_a_body_larger_than_the_read_buffer_pauses_and_resumes(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    body = bytes(range(256)) * 16 * 1024  # 4 MiB: past aiohttp's high-water mark
    upstream.route("POST", "/big", Reply(body=body, chunks=[64 * 1024] * 64))
    received = bytearray()
    async with client.stream("POST", f"{upstream.url}/big", json={}) as streamed:
        async for piece in streamed.aiter_bytes():
            received += piece
            await asyncio.sleep(0.001)  # a slow reader: the buffer fills, reading pauses
    assert bytes(received) == body
    assert (await client.request("POST", f"{upstream.url}/big", json={})).content == body


async def test_a_refused_connection_says_so(client: HttpClient, closed_port: int) -> None:
    base = f"http://127.0.0.1:{closed_port}/v1"
    with pytest.raises(NetworkError, match=r"\(connection refused\)"):
        with upstream_errors(url=f"{base}/chat", target=base):
            await client.request("POST", f"{base}/chat", json={})


async def test_a_body_cut_short_is_a_network_error(
    upstream: FakeUpstream, client: HttpClient, raw_server: RawServer
) -> None:
    upstream.route("POST", "/d", Reply(body=b"z" * 100, chunks=[10], drop_after=25))
    with pytest.raises(NetworkError, match="closed mid-response"):
        with upstream_errors(url=f"{upstream.url}/d"):
            async with client.stream("POST", f"{upstream.url}/d", json={}) as streamed:
                async for _piece in streamed.aiter_bytes():
                    pass
    short = await raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly")
    url = f"http://127.0.0.1:{short}/x"
    with pytest.raises(NetworkError, match="closed mid-response"):
        with upstream_errors(url=url):
            await client.request("POST", url, json={})


async def test_garbage_is_not_valid_http_and_the_key_stays_out_of_the_error(
    client: HttpClient, raw_server: RawServer
) -> None:
    port = await raw_server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    url = f"http://127.0.0.1:{port}/v1/chat"
    with pytest.raises(NetworkError) as caught:
        with upstream_errors(url=url):
            await client.request("POST", url, headers={"x-api-key": _KEY}, json={})
    assert "did not answer with valid HTTP" in str(caught.value)
    error = caught.value
    for text in (str(error), repr(error), repr(error.__cause__), repr(error.__context__)):
        assert _KEY not in text
    request_info = getattr(error.__context__, "request_info", None)
    assert request_info is None or _KEY not in repr(dict(request_info.headers))


async def test_an_informational_answer_before_the_answer_is_skipped(
    client: HttpClient, raw_server: RawServer
) -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    url = f"http://127.0.0.1:{await raw_server(answer)}/x"
    response = await client.request("POST", url, json={})
    assert (response.status, response.content) == (200, b"ok")


async def test_a_body_without_a_length_ends_where_the_connection_does(
    client: HttpClient, raw_server: RawServer
) -> None:
    answer = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"ok": 1}'
    url = f"http://127.0.0.1:{await raw_server(answer)}/x"
    response = await client.request("POST", url, json={})
    assert response.json() == {"ok": 1}


async def test_a_compressed_answer_is_decompressed(
    client: HttpClient, raw_server: RawServer
) -> None:
    body = gzip.compress(b'{"ok": 1}')
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    url = f"http://127.0.0.1:{await raw_server(answer)}/x"
    response = await client.request("POST", url, json={})
    assert response.json() == {"ok": 1}


async def test_a_redirect_comes_back_as_a_response(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/r", Reply(status=307, headers={"Location": f"{upstream.url}/o"}))
    upstream.route("POST", "/o", Reply(body=b"should not be fetched"))
    response = await client.request(
        "POST", f"{upstream.url}/r", headers={"x-api-key": _KEY}, json={}
    )
    assert response.status == 307
    assert [r.path for r in upstream.requests] == ["/r"]


async def test_a_remote_host_still_goes_through_the_environment_proxy(
    upstream: FakeUpstream, client: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", upstream.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    target = "http://models.example.test/v1/chat/completions"
    upstream.route("POST", target, Reply.json({"ok": 1}))
    response = await client.request("POST", target, headers={"Authorization": "k"}, json={})
    assert response.json() == {"ok": 1}
    [sent] = upstream.requests
    assert sent.path == target  # absolute-form request line: it went through the proxy
    assert sent.headers["host"] == "models.example.test"


# --- TLS --------------------------------------------------------------------------


@pytest.fixture
async def self_signed_server(tmp_path: Path) -> AsyncIterator[int]:
    """An HTTPS server on 127.0.0.1 whose certificate no CA signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_a_certificate_no_authority_signed_is_refused(
    client: HttpClient, self_signed_server: int
) -> None:
    url = f"https://127.0.0.1:{self_signed_server}/v1/chat"
    with pytest.raises(NetworkError, match="TLS failed") as caught:
        with upstream_errors(url=url):
            await client.request("POST", url, headers={"Authorization": _KEY}, json={})
    assert "certificate" in str(caught.value).lower()


async def test_a_shorter_timeout_on_a_connection_with_a_timer_pending_fires_on_time() -> None:
    from aiohttp import ServerTimeoutError

    from modelport.providers._http_direct import _response_handler

    handler = _response_handler()(loop=asyncio.get_running_loop())
    handler._read_timeout = 60.0
    handler.start_timeout()
    handler._read_timeout = 0.05
    handler.start_timeout()
    await asyncio.sleep(0.3)
    assert isinstance(handler.exception(), ServerTimeoutError)


def test_only_the_aiohttp_releases_it_was_tested_on_take_the_short_way() -> None:
    assert supports("3.11.18") and supports("3.14.5")
    assert not supports("3.10.11")
    assert not supports("3.15.0")
    assert not supports("4.0.0a1")
    assert not supports("main")
    assert supports(aiohttp.__version__), "the installed aiohttp should be a tested one"


async def test_an_untested_aiohttp_release_goes_through_session_request(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiohttp, "__version__", "3.99.0")
    calls: list[str] = []
    original = aiohttp.ClientSession._request

    async def counted(self: aiohttp.ClientSession, method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", counted)
    upstream.route("POST", "/v1/x", Reply.json({"ok": 1}))
    client = HttpClient(timeout=5)
    try:
        response = await client.request("POST", f"{upstream.url}/v1/x", json={"a": 1})
    finally:
        await client.aclose()
    assert (response.status, response.json(), calls) == (200, {"ok": 1}, ["POST"])


async def test_a_stream_answered_with_no_body_reads_as_empty(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/v1/none", Reply(status=204, body=b""))
    async with client.stream("POST", f"{upstream.url}/v1/none", json={}) as streamed:
        assert streamed.status == 204
        assert [piece async for piece in streamed.aiter_bytes()] == []


async def test_an_idle_pooled_connection_outlives_its_last_call_s_timer(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    # The timer a call armed is left pending when its answer comes; firing later, on an
    # idle connection, it must find nothing to time out.
    upstream.route("POST", "/v1/x", Reply.json({"ok": 1}))
    await client.request("POST", f"{upstream.url}/v1/x", json={}, timeout=0.2)
    await asyncio.sleep(0.35)
    response = await client.request("POST", f"{upstream.url}/v1/x", json={}, timeout=0.2)
    assert response.json() == {"ok": 1}
    assert (len(upstream.requests), upstream.open_connections) == (2, 1)


async def test_a_reused_connection_s_pending_timer_still_times_the_next_call_out(
    upstream: FakeUpstream, client: HttpClient
) -> None:
    upstream.route("POST", "/v1/x", Reply.json({"ok": 1}))
    upstream.route("POST", "/v1/slow", Reply.json({"ok": 2}, delay=1.0))
    await client.request("POST", f"{upstream.url}/v1/x", json={}, timeout=0.3)
    await asyncio.sleep(0.15)  # half-way to the first call's timer
    started = asyncio.get_running_loop().time()
    with pytest.raises(NetworkError, match=r"for 0\.3 s"):
        with upstream_errors(url=f"{upstream.url}/v1/slow", timeout=0.3):
            await client.request("POST", f"{upstream.url}/v1/slow", json={}, timeout=0.3)
    waited = asyncio.get_running_loop().time() - started
    assert 0.28 <= waited < 0.8
    assert upstream.open_connections <= 1
