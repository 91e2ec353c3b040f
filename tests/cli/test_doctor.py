"""``modelport doctor``: checks, concrete fixes and the exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modelport.testing import FakeUpstream, Reply
from tests.cli.conftest import RunCli, refused_url

MODELS_BODY = {"object": "list", "data": [{"id": "m1", "object": "model"}]}


def test_healthy_setup_exits_zero(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream, home: Path
) -> None:
    write_config(
        'default_model = "up/m1"\n\n'
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/v1/models", Reply.json(MODELS_BODY))

    result = cli("doctor")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"config: {home / 'config.toml'}" in result.stdout
    assert "keys: file" in result.stdout and "keys.json" in result.stdout
    assert "project: none" in result.stdout
    assert "✓ up: reachable" in result.stdout
    assert "✓ up: default model 'm1' is available" in result.stdout
    assert "Everything works." in result.stderr


def test_missing_default_model_on_ollama_suggests_a_pull(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        'default_model = "ol/llama3.1:8b"\n\n'
        f'[connections.ol]\ncompat = "ollama"\nbase_url = "{upstream.url}"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/api/tags", Reply.fixture("ollama/api-tags.docs-example.json"))

    result = cli("doctor")

    assert result.exit_code == 1
    assert "✗ ol: default model 'llama3.1:8b' is not among its models" in result.stdout
    assert "fix: `ollama pull llama3.1:8b`" in result.stdout
    assert "1 problem found." in result.stderr


def test_refused_key_suggests_keys_set(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        f'[connections.cloud]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route(
        "GET",
        "/v1/models",
        Reply.json({"error": {"message": "Invalid API key", "type": "auth"}}, status=401),
    )

    result = cli("doctor")

    assert result.exit_code == 1
    assert "✗ cloud: key missing or refused" in result.stdout
    assert "fix: `modelport keys set cloud`" in result.stdout
    assert "key: none" in result.stdout


def test_default_model_on_unconfigured_connection(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config('default_model = "nowhere/m1"\n')

    result = cli("doctor")

    assert result.exit_code == 1
    assert "names connection 'nowhere', which is not configured" in result.stdout


def test_project_folder_is_shown(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    (Path.cwd() / ".modelport").mkdir()
    write_config("")

    result = cli("doctor")

    assert f"project: {Path.cwd()}" in result.stdout
    assert "no default model set" in result.stdout
    assert result.exit_code == 0  # warnings only


def test_subprocess_unreachable_local_server_exits_one(
    cli_process: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config(
        'default_model = "local/llama3.1:8b"\n\n'
        f'[connections.local]\ncompat = "ollama"\nbase_url = "{refused_url()[:-3]}"\n'
        "max_retries = 0\n"
    )

    result = cli_process("doctor")

    assert result.exit_code == 1
    assert "✗ local: " in result.stdout
    assert "fix: start Ollama: `ollama serve`" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_subprocess_healthy_exits_zero(
    cli_process: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        'default_model = "up/m1"\n\n'
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/v1/models", Reply.json(MODELS_BODY))

    result = cli_process("doctor")

    assert result.exit_code == 0, result.stdout + result.stderr


def test_default_model_on_a_ready_made_connection_without_a_key(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config('default_model = "anthropic/claude-sonnet-4-5"\n')

    result = cli("doctor")

    assert result.exit_code == 1
    assert "default model: anthropic/claude-sonnet-4-5" in result.stdout
    assert "not configured" not in result.stdout  # a preset needs no [connections] table
    assert "✗ anthropic: key missing or refused" in result.stdout
    assert "fix: `modelport keys set anthropic`" in result.stdout


def test_default_model_through_an_alias(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        'default_model = "fast"\n\n[aliases]\nfast = "up/m1"\n\n'
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/v1/models", Reply.json(MODELS_BODY))

    result = cli("doctor")

    assert result.exit_code == 0, result.stdout
    assert "default model: fast → up/m1" in result.stdout
    assert "✓ up: default model 'm1' is available" in result.stdout
