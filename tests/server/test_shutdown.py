"""Graceful shutdown: SIGTERM drains the calls in flight, ends the rest in band, loses none.

The headline test runs a real ``modelport serve`` process with 100 streams in
flight; the others drive the drain in process (uvicorn on a thread, as the
other gateway tests do) for what each client API sees.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import uvicorn
import uvloop

from modelport.server._serving import GatewayServer, uvicorn_timeout
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from tests.server._serve import ServeProcess, sse_stream
from tests.server._sse import sse_events
from tests.server.conftest import UPSTREAM_OPENAI_KEY, Gateway, upstream_config

SCRIPTED_PLUGIN = Path(__file__).parents[1] / "plugin_host" / "_scripted_plugin.py"
USER = [{"role": "user", "content": "hi"}]


def _slow_reply(events: int, delay: float) -> Reply:
    body, sizes = sse_stream([f"t{i} " for i in range(events)])
    return Reply(body=body, chunks=sizes, chunk_delay=delay, content_type="text/event-stream")


def _home(tmp_path: Path, upstream: FakeUpstream, *, plugin: bool = False) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        "".join(
            f'[connections.{name}]\ncompat = "openai"\nbase_url = "{upstream.url}/{name}/v1"\n'
            'api_key_env = "TEST_OAI_KEY"\nmax_retries = 0\n\n'
            for name in ("quick", "slow")
        )
    )
    if plugin:
        folder = home / "plugins" / "p"
        folder.mkdir(parents=True)
        command = json.dumps([sys.executable, str(SCRIPTED_PLUGIN), "ok"])
        (folder / "modelport-plugin.toml").write_text(
            f'name = "p"\nversion = "1.0.0"\ntype = "llm-provider"\ncommand = {command}\n'
            'triggers = ["startup"]\n'
        )
    return home


class _Stream:
    """One client stream: which API, what it asked for, what it got."""

    def __init__(self, api: str, connection: str) -> None:
        self.api = api
        self.connection = connection
        self.body = b""
        self.first_byte = asyncio.Event()
        self.ended_at = 0.0
        self.transport_error: str | None = None

    def request(self) -> tuple[str, dict[str, Any]]:
        model = f"{self.connection}/m"
        if self.api == "openai":
            return "/v1/chat/completions", {"model": model, "messages": USER, "stream": True}
        body = {"model": model, "max_tokens": 50, "messages": USER, "stream": True}
        return "/v1/messages", body

    @property
    def id(self) -> str | None:
        for event in sse_events(self.body):
            data = json.loads(event.data) if event.data.startswith("{") else {}
            if self.api == "openai" and "id" in data:
                return str(data["id"])
            if data.get("type") == "message_start":
                return str(data["message"]["id"])
        return None

    @property
    def ending(self) -> str:
        """``completed``, ``error`` (an in-band error event last) or ``truncated``."""
        if self.transport_error is not None:
            return "truncated"
        events = sse_events(self.body)
        if not events:
            return "truncated"
        last = events[-1]
        if self.api == "openai":
            if last.data == "[DONE]":
                return "completed"
            return "error" if "error" in json.loads(last.data) else "truncated"
        if last.event == "message_stop":
            return "completed"
        return "error" if last.event == "error" else "truncated"

    async def run(self, client: httpx.AsyncClient) -> None:
        path, body = self.request()
        try:
            async with client.stream("POST", path, json=body) as response:
                assert response.status_code == 200, response.status_code
                async for chunk in response.aiter_raw():
                    self.body += chunk
                    self.first_byte.set()
        except httpx.TransportError as exc:  # a cut connection: a silent truncation
            self.transport_error = repr(exc)
        finally:
            self.ended_at = time.monotonic()
            self.first_byte.set()


def _ledger_rows(home: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(home / "usage.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT request_id, api, connection, outcome, error FROM modelport_calls")
        return {row["request_id"]: dict(row) for row in rows}


def _plugin_pid(url: str) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        info = httpx.get(f"{url}/plugins/p", timeout=2).json()
        if info.get("state") == "running" and info.get("pid"):
            return int(info["pid"])
        time.sleep(0.05)
    raise AssertionError("the plugin never ran")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(90)
async def test_sigterm_with_100_streams_in_flight_completes_or_ends_each_in_band(
    tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quick streams (2 s) finish inside the 4 s drain; slow ones (10 s) get an error event.

    None is cut silently, every one is in the ledger under the id its client
    saw, the listener is closed at once, and the plugin's process is gone.
    """
    upstream.route("POST", "/quick/v1/chat/completions", _slow_reply(20, 0.1))
    upstream.route("POST", "/slow/v1/chat/completions", _slow_reply(100, 0.1))
    monkeypatch.setenv("TEST_OAI_KEY", UPSTREAM_OPENAI_KEY)
    home = _home(tmp_path, upstream, plugin=True)
    gateway = await asyncio.to_thread(ServeProcess.start, home, "--drain-timeout", "4")
    try:
        plugin_pid = await asyncio.to_thread(_plugin_pid, gateway.url)
        streams = [
            _Stream(api, connection)
            for api in ("openai", "anthropic")
            for connection in ("quick", "slow")
            for _ in range(25)
        ]
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60, limits=limits) as client:
            tasks = [asyncio.create_task(s.run(client)) for s in streams]
            await asyncio.wait_for(asyncio.gather(*(s.first_byte.wait() for s in streams)), 30)
            assert all(s.body for s in streams), "every stream is under way"
            assert not any(t.done() for t in tasks), "nothing finished before the signal"
            signalled = time.monotonic()
            gateway.terminate()
            # The listener closes at once, streams still draining (as soon as the signal is
            # handled: on a loaded machine that may take past a fixed 0.5 s).
            deadline = time.monotonic() + 3
            while True:
                try:
                    await client.get("/health")
                except httpx.ConnectError:
                    break
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    pass  # in the backlog as the listener closed: reset; the next is refused
                assert time.monotonic() < deadline, "the listener stayed open"
                await asyncio.sleep(0.05)
            assert not all(t.done() for t in tasks), "the listener outlived the drain"
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        code = await asyncio.to_thread(gateway.wait, 30)
    finally:
        gateway.kill()
    assert code in (0, -signal.SIGTERM), gateway.log
    endings = {(s.api, s.connection): set() for s in streams}  # type: dict[tuple[str, str], set[str]]
    for stream in streams:
        endings[(stream.api, stream.connection)].add(stream.ending)
    assert endings == {
        ("openai", "quick"): {"completed"},
        ("openai", "slow"): {"error"},
        ("anthropic", "quick"): {"completed"},
        ("anthropic", "slow"): {"error"},
    }, [s.transport_error for s in streams if s.transport_error]
    # The quick ones finished during the drain, the slow ones were ended at its deadline.
    assert all(s.ended_at > signalled for s in streams)
    for stream in streams:
        if stream.connection == "slow":
            assert 3.5 < stream.ended_at - signalled < 8, stream.ended_at - signalled
            last = sse_events(stream.body)[-1]
            assert "shutting down" in last.data and "4 s drain timeout" in last.data
    rows = _ledger_rows(home)
    ids = {s.id: s for s in streams}
    assert None not in ids and len(ids) == 100
    assert set(rows) == set(ids), "every stream is in the ledger under the id its client saw"
    for request_id, stream in ids.items():
        row = rows[request_id]
        assert (row["api"], row["connection"]) == (stream.api, stream.connection)
        if stream.connection == "quick":
            assert (row["outcome"], row["error"]) == ("ok", None)
        else:
            assert row["outcome"] == "cancelled"
            assert "shutting down" in row["error"]
    assert not _alive(plugin_pid), "the plugin was stopped"
    assert "drain timeout (4 s) passed" in gateway.log
    assert "ended 50 call(s)" in gateway.log


# --- in process: what each client API sees -------------------------------------------------


def _serve(app: Any, drain_timeout: float) -> tuple[GatewayServer, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = GatewayServer(
        uvicorn.Config(
            app,
            http="httptools",
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=uvicorn_timeout(drain_timeout),
        ),
        drain=app.state.drain,
        drain_timeout=drain_timeout,
    )

    def run() -> None:
        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.005)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def draining_gateway(
    upstream: FakeUpstream, upstream_keys: None
) -> Callable[..., tuple[Gateway, Callable[[], None]]]:
    """A gateway with a 0.5 s drain; ``(gateway, shut_down)``."""
    started: list[tuple[GatewayServer, threading.Thread]] = []

    def make(**options: Any) -> tuple[Gateway, Callable[[], None]]:
        options.setdefault("plugin_host", False)
        options.setdefault("ledger", False)
        app = create_app(upstream_config(upstream), **options)
        server, thread, url = _serve(app, 0.5)
        started.append((server, thread))

        def shut_down() -> None:
            server.should_exit = True

        return Gateway(app=app, url=url, server=server, thread=thread), shut_down

    yield make
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=15)


def _in_background(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_an_openai_sdk_stream_cut_by_the_drain_raises_not_ends(
    draining_gateway: Callable[..., tuple[Gateway, Callable[[], None]]], upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", _slow_reply(100, 0.05))
    gateway, shut_down = draining_gateway()
    client = gateway.openai()
    texts: list[str] = []

    def consume() -> None:
        stream = client.chat.completions.create(model="oai/m", messages=USER, stream=True)  # type: ignore[arg-type]
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)

    thread, result = _in_background(consume)
    _wait_for(lambda: len(texts) >= 2)
    shut_down()
    thread.join(timeout=15)
    assert isinstance(result.get("error"), openai.APIError), result
    assert "shutting down" in str(result["error"])
    assert 2 <= len(texts) < 100


def test_an_anthropic_sdk_stream_cut_by_the_drain_raises_not_ends(
    draining_gateway: Callable[..., tuple[Gateway, Callable[[], None]]], upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", _slow_reply(100, 0.05))
    gateway, shut_down = draining_gateway()
    client = gateway.anthropic()
    texts: list[str] = []

    def consume() -> None:
        with client.messages.stream(model="oai/m", max_tokens=50, messages=USER) as stream:  # type: ignore[arg-type]
            for text in stream.text_stream:
                texts.append(text)

    thread, result = _in_background(consume)
    _wait_for(lambda: len(texts) >= 2)
    shut_down()
    thread.join(timeout=15)
    assert isinstance(result.get("error"), anthropic.APIError), result
    assert "shutting down" in str(result["error"])


def test_a_responses_api_stream_cut_by_the_drain_ends_with_response_failed(
    draining_gateway: Callable[..., tuple[Gateway, Callable[[], None]]], upstream: FakeUpstream
) -> None:
    """The Responses API's in-band error is its ``response.failed`` event, last."""
    upstream.route("POST", "/v1/chat/completions", _slow_reply(100, 0.05))
    gateway, shut_down = draining_gateway()
    client = gateway.openai()
    texts: list[str] = []
    events: list[Any] = []

    def consume() -> None:
        for event in client.responses.create(model="oai/m", input="hi", stream=True):
            events.append(event)
            if event.type == "response.output_text.delta":
                texts.append(event.delta)

    thread, result = _in_background(consume)
    _wait_for(lambda: len(texts) >= 2)
    shut_down()
    thread.join(timeout=15)
    assert "error" not in result, result
    assert events[-1].type == "response.failed"
    assert "shutting down" in events[-1].response.error.message
    assert not any(e.type == "response.completed" for e in events)


def test_a_call_still_waiting_for_its_answer_gets_a_503(
    draining_gateway: Callable[..., tuple[Gateway, Callable[[], None]]], upstream: FakeUpstream
) -> None:
    """Non-streamed, and streamed before the first token: a whole error answer, 503
    (529 ``overloaded_error`` in Anthropic's terms), to retry elsewhere."""
    upstream.route("POST", "/v1/chat/completions", Reply(hang=True))
    upstream.route("POST", "/v1/messages", Reply(hang=True))
    gateway, shut_down = draining_gateway()
    plain, plain_result = _in_background(
        lambda: httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "oai/m", "messages": USER},
            timeout=15,
        )
    )
    streamed, streamed_result = _in_background(
        lambda: httpx.post(
            f"{gateway.url}/v1/messages",
            json={"model": "ant/m", "max_tokens": 5, "messages": USER, "stream": True},
            timeout=15,
        )
    )
    _wait_for(lambda: len(upstream.requests) == 2)
    shut_down()
    plain.join(timeout=15)
    streamed.join(timeout=15)
    answer = plain_result["value"]
    assert answer.status_code == 503 and "shutting down" in answer.json()["error"]["message"]
    answer = streamed_result["value"]
    assert answer.status_code == 529 and answer.json()["error"]["type"] == "overloaded_error"
    assert "shutting down" in answer.json()["error"]["message"]
    assert answer.headers["retry-after"] == "1"


def test_nothing_in_flight_shuts_down_at_once(
    draining_gateway: Callable[..., tuple[Gateway, Callable[[], None]]],
) -> None:
    gateway, shut_down = draining_gateway()
    began = time.monotonic()
    shut_down()
    gateway.thread.join(timeout=15)
    assert time.monotonic() - began < 1.0


def test_drain_timeout_is_a_gateway_setting_of_at_least_zero() -> None:
    from modelport.config import parse_config

    assert parse_config("[gateway]\ndrain_timeout = 7.5\n").gateway.drain_timeout == 7.5
    assert parse_config("").gateway.drain_timeout == 30.0
    from modelport.errors import ConfigError

    with pytest.raises(ConfigError, match="drain_timeout"):
        parse_config("[gateway]\ndrain_timeout = -1\n")


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
