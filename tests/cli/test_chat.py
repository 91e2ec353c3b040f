"""``modelport chat`` against a fake upstream replaying recorded streams."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modelport.cli import chat
from modelport.cli._output import print_error
from modelport.errors import AuthError, RateLimitError
from modelport.testing import FakeUpstream, Reply
from tests._fixtures import fixture_bytes
from tests.cli.conftest import RunCli, refused_url
from tests.test_api import PLUGIN_ID, install_example_plugin

TEXT_STREAM = "openai/chat-stream-text-include-usage.sse"
TOOL_STREAM = "openai/chat-stream-single-tool-call.sse"
THINKING_STREAM = "anthropic/messages-stream-thinking-signature.sse"


def _sse_data(relative: str) -> list[dict]:
    """The JSON payloads of a recorded SSE stream, read independently of our decoders."""
    payloads = []
    for line in fixture_bytes(relative).decode().splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            payloads.append(json.loads(line[5:]))
    return payloads


def _openai_text(relative: str) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for payload in _sse_data(relative)
        for choice in payload.get("choices", [])
    )


def _anthropic_deltas(relative: str, kind: str, field: str) -> str:
    return "".join(
        payload["delta"][field]
        for payload in _sse_data(relative)
        if payload.get("type") == "content_block_delta" and payload["delta"]["type"] == kind
    )


@pytest.fixture
def openai_config(write_config: Callable[[str], Path], upstream: FakeUpstream) -> Path:
    return write_config(
        "# my models\n"
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\n'
        "max_retries = 0\n"
    )


def _serve(upstream: FakeUpstream, relative: str, path: str = "/v1/chat/completions") -> None:
    upstream.route("POST", path, Reply.fixture(relative, chunks="random", split_seed=3))


def test_streams_the_exact_text(cli: RunCli, upstream: FakeUpstream, openai_config: Path) -> None:
    _serve(upstream, TEXT_STREAM)

    result = cli("chat", "-m", "up/gpt-4o", "What's the weather?")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == _openai_text(TEXT_STREAM) + "\n"
    body = upstream.requests[0].json()
    assert body["model"] == "gpt-4o"
    assert body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "What's the weather?"}]


def test_subprocess_streams_piped_stdin_with_system_prompt(
    cli_process: RunCli, upstream: FakeUpstream, openai_config: Path
) -> None:
    _serve(upstream, TEXT_STREAM)

    result = cli_process(
        "chat",
        "-m",
        "up/gpt-4o",
        "-s",
        "Be brief.",
        "--temperature",
        "0.2",
        "Summarise:",
        input="some piped text\n",
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout == _openai_text(TEXT_STREAM) + "\n"
    body = upstream.requests[0].json()
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "some piped text\nSummarise:"},
    ]
    assert body["temperature"] == 0.2


def test_subprocess_piped_bytes_that_are_not_utf8_are_replaced_not_a_traceback(
    upstream: FakeUpstream, openai_config: Path
) -> None:
    _serve(upstream, TEXT_STREAM)
    completed = subprocess.run(
        [sys.executable, "-m", "modelport", "chat", "-m", "up/gpt-4o"],
        input=b"caf\xe9 \xff\xfe ok\n",
        capture_output=True,
        env={**os.environ, "LC_ALL": "C", "PYTHONIOENCODING": ""},
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    assert b"Traceback" not in completed.stderr
    body = upstream.requests[0].json()
    assert body["messages"] == [{"role": "user", "content": "caf\ufffd \ufffd\ufffd ok"}]


def test_default_model_from_config_then_environment(
    cli: RunCli, upstream: FakeUpstream, openai_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve(upstream, TEXT_STREAM)
    monkeypatch.setenv("MODELPORT_MODEL", "up/from-env")
    assert cli("chat", "hi").exit_code == 0
    openai_config.write_text('default_model = "up/from-config"\n' + openai_config.read_text())
    assert cli("chat", "hi").exit_code == 0

    assert [r.json()["model"] for r in upstream.requests] == ["from-env", "from-config"]


def test_no_model_tells_how_to_set_one(cli: RunCli, openai_config: Path) -> None:
    result = cli("chat", "hi")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: no model given")
    assert "modelport local on" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_prints_one_event_per_line(
    cli: RunCli, upstream: FakeUpstream, openai_config: Path
) -> None:
    _serve(upstream, TEXT_STREAM)

    result = cli("chat", "-m", "up/gpt-4o", "--json", "hi")

    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert {event["type"] for event in events} == {"text", "usage", "finish"}
    text = "".join(event["text"] for event in events if event["type"] == "text")
    assert text == _openai_text(TEXT_STREAM)
    usage = [event for event in events if event["type"] == "usage"][-1]
    assert (usage["input_tokens"], usage["output_tokens"]) == (14, 30)
    assert {"type": "finish", "reason": "stop"} in events


def test_no_stream_prints_the_whole_answer(
    cli: RunCli, upstream: FakeUpstream, openai_config: Path
) -> None:
    _serve(upstream, TEXT_STREAM)

    result = cli("chat", "-m", "up/gpt-4o", "--no-stream", "--usage", "hi")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == _openai_text(TEXT_STREAM) + "\n"
    assert "14 in · 30 out" in result.stderr


def test_tool_calls_are_shown(cli: RunCli, upstream: FakeUpstream, openai_config: Path) -> None:
    _serve(upstream, TOOL_STREAM)

    result = cli("chat", "-m", "up/gpt-4o", "weather in NYC?")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == '→ tool get_weather({"city":"New York City"})\n'


def test_anthropic_reasoning_goes_to_stderr(
    cli: RunCli,
    upstream: FakeUpstream,
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config(
        f'[connections.claude]\ncompat = "anthropic"\nbase_url = "{upstream.url}"\n'
        'api_key_env = "TEST_CLAUDE_KEY"\nmax_retries = 0\n'
    )
    monkeypatch.setenv("TEST_CLAUDE_KEY", "sk-ant-test")
    _serve(upstream, THINKING_STREAM, path="/v1/messages")

    result = cli("chat", "-m", "claude/claude-haiku-4-5", "--reasoning", "1024", "Name a pelican")

    assert result.exit_code == 0, result.stderr
    answer = _anthropic_deltas(THINKING_STREAM, "text_delta", "text")
    thinking = _anthropic_deltas(THINKING_STREAM, "thinking_delta", "thinking")
    assert result.stdout == answer + ("" if answer.endswith("\n") else "\n")
    assert thinking.strip() in result.stderr
    assert thinking.split("\n")[0] not in result.stdout
    body = upstream.requests[0].json()
    assert body["thinking"]["budget_tokens"] == 1024
    assert upstream.requests[0].headers["x-api-key"] == "sk-ant-test"


def test_connection_refused_is_one_friendly_line(
    cli_process: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config(
        f'[connections.down]\ncompat = "openai"\nbase_url = "{refused_url()}"\nmax_retries = 0\n'
    )

    result = cli_process("chat", "-m", "down/llama", "hi")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ")
    assert "down" in lines[0]
    assert "running" in result.stderr  # says what to check


def test_401_hints_at_storing_a_key(
    cli: RunCli, upstream: FakeUpstream, openai_config: Path
) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.json(
            {
                "error": {
                    "message": "Incorrect API key provided",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
            status=401,
        ),
    )

    result = cli("chat", "-m", "up/gpt-4o", "hi")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "`modelport keys set up`" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_reasoning_value_is_a_usage_error(cli: RunCli, openai_config: Path) -> None:
    result = cli("chat", "-m", "up/gpt-4o", "--reasoning", "lots", "hi")

    assert result.exit_code == 2
    assert "--reasoning" in result.stderr
    assert "Traceback" not in result.stderr


def test_session_keeps_history_and_shows_usage(
    cli: RunCli,
    upstream: FakeUpstream,
    openai_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chat, "_stdin_is_interactive", lambda: True)
    _serve(upstream, TEXT_STREAM)

    result = cli("chat", "-m", "up/gpt-4o", input="First question\n\nSecond question\n/exit\n")

    assert result.exit_code == 0, result.stderr
    answer = _openai_text(TEXT_STREAM)
    assert result.stdout.count(answer) == 2
    assert result.stderr.count("14 in · 30 out") == 2
    assert len(upstream.requests) == 2
    assert upstream.requests[1].json()["messages"] == [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "Second question"},
    ]


def test_session_survives_a_failed_turn_and_ends_on_eof(
    cli: RunCli,
    upstream: FakeUpstream,
    openai_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chat, "_stdin_is_interactive", lambda: True)
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.json({"error": {"message": "boom", "type": "server_error"}}, status=400),
        Reply.fixture(TEXT_STREAM),
    )

    result = cli("chat", "-m", "up/gpt-4o", input="one\ntwo\n")  # no /exit: EOF ends it

    assert result.exit_code == 0, result.stderr
    assert "error: " in result.stderr
    assert result.stdout.count(_openai_text(TEXT_STREAM)) == 1
    # The failed turn left no trace in the history.
    assert upstream.requests[1].json()["messages"] == [{"role": "user", "content": "two"}]


class _Terminal:
    """``python -m modelport`` on a pseudo-terminal, so the CLI sees an interactive user."""

    def __init__(self, *args: str) -> None:
        self._master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelport", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "TERM": "dumb", "NO_COLOR": "1"},
            # Ctrl-C as a user's terminal has it: a runner that started the tests in the
            # background (`nohup`, `cmd &`) left SIGINT ignored, and children inherit that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        os.close(slave)
        self.output = ""

    def type(self, text: str) -> None:
        os.write(self._master, text.encode())

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for {text!r}; got {self.output!r}"
            ready, _, _ = select.select([self._master], [], [], remaining)
            if ready:
                try:
                    self.output += os.read(self._master, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    break
        assert text in self.output, f"{text!r} not in {self.output!r}"

    def close(self) -> int:
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()  # never leave a child behind a failed test
                self.process.wait()
            os.close(self._master)


def test_terminal_session_ctrl_c_cancels_the_answer_not_the_session(
    upstream: FakeUpstream, openai_config: Path
) -> None:
    slow = Reply.fixture(TEXT_STREAM, chunks=[400] * 40, chunk_delay=0.5)
    upstream.route("POST", "/v1/chat/completions", slow, Reply.fixture(TEXT_STREAM))
    terminal = _Terminal("chat", "-m", "up/gpt-4o")
    try:
        terminal.wait_for("> ")
        terminal.type("first\n")
        terminal.wait_for("I'm")  # the slow answer has begun
        terminal.process.send_signal(signal.SIGINT)
        terminal.wait_for("(cancelled)")
        terminal.type("second\n")
        terminal.wait_for("14 in · 30 out")  # the next answer completes, with its usage
        terminal.type("/exit\n")
    finally:
        code = terminal.close()

    assert code == 0, terminal.output
    assert "Traceback" not in terminal.output
    assert _openai_text(TEXT_STREAM) in terminal.output
    # The cancelled turn left no trace in the history.
    assert upstream.requests[1].json()["messages"] == [{"role": "user", "content": "second"}]


def test_terminal_session_ends_on_ctrl_d(upstream: FakeUpstream, openai_config: Path) -> None:
    terminal = _Terminal("chat", "-m", "up/gpt-4o")
    try:
        terminal.wait_for("> ")
        terminal.type("\x04")
        terminal.wait_for("\n", timeout=10)
    finally:
        code = terminal.close()

    assert code == 0, terminal.output
    assert upstream.requests == []


def test_json_without_streaming_prints_the_response(
    cli: RunCli, upstream: FakeUpstream, openai_config: Path
) -> None:
    _serve(upstream, TOOL_STREAM)

    result = cli("chat", "-m", "up/gpt-4o", "--json", "--no-stream", "weather?")

    assert result.exit_code == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["finish_reason"] == "tool_calls"
    assert response["tool_calls"] == [
        {
            "id": "call_4XzlGBLtUe9dy3GVNV4jhq7h",
            "name": "get_weather",
            "arguments": '{"city":"New York City"}',
        }
    ]


def test_print_error_is_one_line_a_hint_and_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    print_error(
        AuthError(
            "Key sk-live-abcdefghijkl was refused",
            connection="work",
            url="https://llm.example.test/v1/models?key=hunter22",
            status=401,
        )
    )
    print_error(RateLimitError("Slow down", connection="work", retry_after=2.5))

    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: Key *** was refused (connection 'work', url "
        "https://llm.example.test/v1/models?key=***, status 401)",
        "Store a valid key with `modelport keys set work`.",
        "error: Slow down (connection 'work')",
        "The upstream asks to wait 2.5 s before trying again.",
    ]


def test_reasoning_then_tool_call_keeps_stdout_to_the_call(
    cli: RunCli,
    upstream: FakeUpstream,
    write_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = "anthropic/messages-stream-thinking-then-tool_use.sse"
    write_config(
        f'[connections.claude]\ncompat = "anthropic"\nbase_url = "{upstream.url}"\n'
        'api_key_env = "TEST_CLAUDE_KEY"\nmax_retries = 0\n'
    )
    monkeypatch.setenv("TEST_CLAUDE_KEY", "sk-ant-test")
    _serve(upstream, stream, path="/v1/messages")

    result = cli("chat", "-m", "claude/claude-sonnet-4-5", "What version?")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "→ tool fixed_version({})\n"
    thinking = _anthropic_deltas(stream, "thinking_delta", "thinking")
    assert result.stderr == thinking + "\n"


# --- plugin models and the usage ledger ---------------------------------------------------


def test_subprocess_chats_with_a_plugin_model(
    cli_process: RunCli, upstream: FakeUpstream, home: Path
) -> None:
    install_example_plugin(home, upstream.url)
    _serve(upstream, TEXT_STREAM)

    result = cli_process("chat", "-m", f"{PLUGIN_ID}/gpt-4o-mini", "hi")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == _openai_text(TEXT_STREAM) + "\n"
    sent = upstream.requests[0]
    assert sent.headers["authorization"] == "Bearer sk-plugin"
    assert sent.json()["messages"] == [{"role": "user", "content": "hi"}]


def test_an_unknown_connection_says_no_plugin_registered_it(cli: RunCli, home: Path) -> None:
    result = cli("chat", "-m", "nowhere/m", "hi")

    assert result.exit_code != 0
    assert "nowhere" in result.stderr and "plugin" in result.stderr


def test_answers_are_recorded_in_the_ledger_as_cli(
    cli: RunCli, upstream: FakeUpstream, openai_config: Path, home: Path
) -> None:
    from modelport.ledger import open_ledger

    _serve(upstream, TEXT_STREAM)
    _serve(upstream, TEXT_STREAM)
    assert cli("chat", "-m", "up/gpt-4o", "hi").exit_code == 0
    assert cli("chat", "--no-stream", "-m", "up/gpt-4o", "hi").exit_code == 0

    with open_ledger(url=f"sqlite:///{home / 'usage.db'}") as ledger:
        recent = ledger.recent()
    assert [(r.api, r.connection, r.model, r.outcome) for r in recent] == [
        ("cli", "up", "gpt-4o", "ok"),
        ("cli", "up", "gpt-4o", "ok"),
    ]
    assert recent[0].input_tokens > 0
