"""``modelport connections``: add, list, remove and test, written to config.toml."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

from modelport.testing import FakeUpstream, Reply
from tests.cli.conftest import RunCli, refused_url

MODELS_BODY = {"object": "list", "data": [{"id": "m1", "object": "model"}]}
CONFIG_WITH_COMMENTS = """\
# My modelport settings — keep this comment.
default_model = "work/m1"

[connections.work]  # the office server
compat = "openai"
base_url = "http://127.0.0.1:9/v1"
"""


def test_add_list_remove_round_trip_keeps_comments(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    path = write_config(CONFIG_WITH_COMMENTS)

    added = cli(
        "connections",
        "add",
        "groq2",
        "--compat",
        "openai",
        "--base-url",
        "https://api.example.test/v1",
        "--api-key-env",
        "EXAMPLE_KEY",
        "--timeout",
        "30",
        "--max-retries",
        "3",
    )
    assert added.exit_code == 0, added.stderr
    assert "Added connection 'groq2'" in added.stderr
    data = tomllib.loads(path.read_text())
    assert data["connections"]["groq2"] == {
        "compat": "openai",
        "base_url": "https://api.example.test/v1",
        "api_key_env": "EXAMPLE_KEY",
        "timeout": 30.0,
        "max_retries": 3,
    }
    assert "# My modelport settings — keep this comment." in path.read_text()
    assert "# the office server" in path.read_text()

    listed = cli("connections", "list")
    assert listed.exit_code == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["groq2"][:3] == ["groq2", "openai", "https://api.example.test/v1"]
    assert rows["work"][:3] == ["work", "openai", "http://127.0.0.1:9/v1"]

    removed = cli("connections", "remove", "groq2")
    assert removed.exit_code == 0, removed.stderr
    text = path.read_text()
    assert "groq2" not in text
    assert "# My modelport settings — keep this comment." in text
    assert tomllib.loads(text)["connections"]["work"]["compat"] == "openai"


def test_add_refuses_to_overwrite_without_force(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    path = write_config(CONFIG_WITH_COMMENTS)

    refused = cli("connections", "add", "work", "--compat", "ollama")
    assert refused.exit_code == 1
    assert "already exists" in refused.stderr
    assert "--force" in refused.stderr

    replaced = cli("connections", "add", "work", "--compat", "ollama", "--force")
    assert replaced.exit_code == 0, replaced.stderr
    assert tomllib.loads(path.read_text())["connections"]["work"] == {"compat": "ollama"}


def test_add_rejects_an_unknown_compat(cli: RunCli) -> None:
    result = cli("connections", "add", "x", "--compat", "grpc")

    assert result.exit_code == 2
    assert "plugin:<provider id>" in result.stderr
    assert "Traceback" not in result.stderr


def test_add_openai_compat_without_a_base_url_needs_a_ready_made_name(
    cli: RunCli, home: Path
) -> None:
    result = cli("connections", "add", "mybox", "--compat", "openai")

    assert result.exit_code == 1
    assert "needs --base-url" in result.stderr and "openrouter" in result.stderr
    assert not (home / "config.toml").exists() or "mybox" not in (home / "config.toml").read_text()
    # A ready-made name knows its URL; other wire formats have their own defaults.
    assert cli("connections", "add", "openrouter", "--compat", "openai").exit_code == 0
    assert cli("connections", "add", "ol", "--compat", "ollama").exit_code == 0
    # A preset of another format does not know an OpenAI-compatible URL.
    assert cli("connections", "add", "anthropic", "--compat", "openai").exit_code == 1


def test_remove_unknown_connection(cli: RunCli) -> None:
    result = cli("connections", "remove", "ghost")

    assert result.exit_code == 1
    assert "no connection named 'ghost'" in result.stderr


def test_test_reports_reachable_and_a_tiny_request(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/v1/models", Reply.json(MODELS_BODY))
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )

    result = cli("connections", "test", "up", "--model", "m1")

    assert result.exit_code == 0, result.stderr
    assert "✓ up: reachable, key accepted, 1 models listed" in result.stdout
    assert "✓ up/m1: answered" in result.stdout
    assert upstream.requests[-1].json()["model"] == "m1"


def test_test_reports_a_refused_key(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route(
        "GET",
        "/v1/models",
        Reply.json({"error": {"message": "bad key", "type": "invalid_request_error"}}, status=401),
    )

    result = cli("connections", "test", "up")

    assert result.exit_code == 1
    assert "✗ up: not working" in result.stdout
    assert "modelport keys set up" in result.stderr


def test_subprocess_add_then_test_an_unreachable_server(cli_process: RunCli, home: Path) -> None:
    url = refused_url()
    added = cli_process(
        "connections", "add", "down", "--compat", "openai", "--base-url", url, "--max-retries", "0"
    )
    tested = cli_process("connections", "test", "down")

    assert added.exit_code == 0, added.stderr
    assert (
        tomllib.loads((home / "config.toml").read_text())["connections"]["down"]["base_url"] == url
    )
    assert tested.exit_code == 1
    assert "✗ down: not working" in tested.stdout
    assert tested.stderr.startswith("error: ")
    assert "Traceback" not in tested.stderr
