"""``modelport local`` against a fake upstream that pretends to be Ollama."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelport.testing import FakeUpstream, Reply
from tests.cli.conftest import RunCli, refused_url

# What Ollama's OpenAI-compatible /v1/models says for the models in api-tags.docs-example.json.
OPENAI_MODELS = {
    "object": "list",
    "data": [
        {
            "id": "deepseek-r1:latest",
            "object": "model",
            "created": 1746889608,
            "owned_by": "library",
        },
        {"id": "llama3.2:latest", "object": "model", "created": 1746405464, "owned_by": "library"},
    ],
}


@pytest.fixture
def ollama() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        server.route("GET", "/api/tags", Reply.fixture("ollama/api-tags.docs-example.json"))
        server.route("GET", "/v1/models", Reply.json(OPENAI_MODELS))
        yield server


@pytest.fixture
def config_path(write_config: Callable[[str], Path]) -> Path:
    return write_config('# global settings\ndefault_model = "anthropic/claude-sonnet-4-5"\n')


def _config(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_on_picks_the_first_model_and_off_restores(
    cli: RunCli, ollama: FakeUpstream, config_path: Path
) -> None:
    url = f"{ollama.url}/v1"

    on = cli("local", "on", url)

    assert on.exit_code == 0, on.stderr
    data = _config(config_path)
    assert data["default_model"] == "local/deepseek-r1:latest"
    assert data["connections"]["local"]["compat"] == "openai"
    assert data["connections"]["local"]["base_url"] == url
    assert "local/deepseek-r1:latest" in on.stderr

    off = cli("local", "off")

    assert off.exit_code == 0, off.stderr
    data = _config(config_path)
    assert data["default_model"] == "anthropic/claude-sonnet-4-5"
    assert data["connections"]["local"]["base_url"] == url  # the connection stays
    assert "# global settings" in config_path.read_text()


def test_on_with_a_model_needs_no_server_and_switching_keeps_the_original(
    cli: RunCli, config_path: Path
) -> None:
    url = refused_url()
    assert cli("local", "on", url, "qwen2.5-coder:7b").exit_code == 0
    assert _config(config_path)["default_model"] == "local/qwen2.5-coder:7b"
    assert cli("local", "model", "llama3.1:8b").exit_code == 0
    assert cli("local", "on", url, "phi4").exit_code == 0
    assert _config(config_path)["default_model"] == "local/phi4"

    assert cli("local", "off").exit_code == 0
    assert _config(config_path)["default_model"] == "anthropic/claude-sonnet-4-5"


def test_on_without_a_model_errors_when_the_server_is_down(cli: RunCli, config_path: Path) -> None:
    result = cli("local", "on", refused_url())

    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot list the models of")
    assert "ollama serve" in result.stderr
    assert _config(config_path)["default_model"] == "anthropic/claude-sonnet-4-5"


def test_on_with_an_unreachable_url_leaves_a_working_setup_alone(
    cli: RunCli, ollama: FakeUpstream, config_path: Path
) -> None:
    working = f"{ollama.url}/v1"
    assert cli("local", "on", working).exit_code == 0
    before = config_path.read_text()

    result = cli("local", "on", refused_url())

    assert result.exit_code == 1
    assert "unchanged" in result.stderr
    assert config_path.read_text() == before
    assert _config(config_path)["connections"]["local"]["base_url"] == working
    assert cli("local", "status").exit_code == 0  # still reachable


def test_off_when_not_on(cli: RunCli, config_path: Path) -> None:
    result = cli("local", "off")

    assert result.exit_code == 1
    assert "local mode is not on" in result.stderr


def test_status_on_and_reachable(cli: RunCli, ollama: FakeUpstream, config_path: Path) -> None:
    cli("local", "on", f"{ollama.url}/v1", "llama3.2:latest")

    result = cli("local", "status")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "local mode: on",
        "default model: local/llama3.2:latest",
        f"url: {ollama.url}/v1",
        "reachable: yes, 2 models",
    ]


def test_status_off_without_connection(cli: RunCli, config_path: Path) -> None:
    result = cli("local", "status")

    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "local mode: off"


def test_list_uses_ollamas_own_list(cli: RunCli, ollama: FakeUpstream, config_path: Path) -> None:
    cli("local", "on", f"{ollama.url}/v1", "llama3.2:latest")

    result = cli("local", "list")

    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["deepseek-r1:latest", "llama3.2:latest"]
    assert rows[1][-1] == "local/llama3.2:latest"
    assert [r.path for r in ollama.requests] == ["/api/tags"]


def test_list_falls_back_to_v1_models_when_not_ollama(
    cli: RunCli, upstream: FakeUpstream, config_path: Path
) -> None:
    upstream.route("GET", "/v1/models", Reply.json(OPENAI_MODELS))
    cli("local", "on", f"{upstream.url}/v1", "llama3.2:latest")

    result = cli("local", "list")

    assert result.exit_code == 0, result.stderr
    assert "deepseek-r1:latest" in result.stdout
    assert [r.path for r in upstream.requests][-1] == "/v1/models"


def test_model_sets_the_default(cli: RunCli, ollama: FakeUpstream, config_path: Path) -> None:
    cli("local", "on", f"{ollama.url}/v1")

    result = cli("local", "model", "llama3.2:latest")

    assert result.exit_code == 0, result.stderr
    assert _config(config_path)["default_model"] == "local/llama3.2:latest"


def test_subprocess_on_status_off(
    cli_process: RunCli, ollama: FakeUpstream, config_path: Path
) -> None:
    on = cli_process("local", "on", f"{ollama.url}/v1")
    status = cli_process("local", "status")
    off = cli_process("local", "off")

    assert on.exit_code == 0, on.stderr
    assert "local mode: on" in status.stdout
    assert "reachable: yes" in status.stdout
    assert off.exit_code == 0, off.stderr
    assert _config(config_path)["default_model"] == "anthropic/claude-sonnet-4-5"
    assert "Traceback" not in on.stderr + status.stderr + off.stderr
