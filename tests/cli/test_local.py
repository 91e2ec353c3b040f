"""``modelport local`` against a fake upstream that pretends to be Ollama."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelport.testing import FakeUpstream, Reply
from tests.cli.conftest import CliResult, RunCli, refused_url

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
    assert "connection refused" in result.stderr
    assert "start the server, or name the model" in result.stderr
    assert len(result.stderr.splitlines()) == 1
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


def test_off_when_already_off_says_so_and_succeeds(cli: RunCli, config_path: Path) -> None:
    before = config_path.read_text()

    result = cli("local", "off")

    assert result.exit_code == 0
    assert result.stderr == (
        "Local mode is already off (default model: anthropic/claude-sonnet-4-5).\n"
    )
    assert config_path.read_text() == before
    assert cli("local", "on", refused_url(), "phi4").exit_code == 0
    assert cli("local", "off").exit_code == 0
    assert cli("local", "off").exit_code == 0


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


# --- the /local command users know ---------------------------------------------------


def _one_line(result: CliResult) -> str:
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_on_with_only_a_model_uses_the_default_url_without_asking_the_server(
    cli: RunCli, config_path: Path
) -> None:
    line = _one_line(cli("local", "on", "llama3.1:8b"))

    data = _config(config_path)
    assert data["default_model"] == "local/llama3.1:8b"
    assert data["connections"]["local"]["base_url"] == "http://localhost:11434/v1"
    assert data["connections"]["local"]["model"] == "llama3.1:8b"
    assert line == (
        "Local mode on: default model is local/llama3.1:8b at http://localhost:11434/v1; "
        "`modelport local off` restores anthropic/claude-sonnet-4-5."
    )


@pytest.mark.parametrize("order", ["url-first", "model-first"])
def test_on_takes_url_and_model_in_either_order(cli: RunCli, config_path: Path, order: str) -> None:
    url = "http://127.0.0.1:1234"
    args = [url, "qwen2.5-coder:7b"] if order == "url-first" else ["qwen2.5-coder:7b", url]

    _one_line(cli("local", "on", *args))

    data = _config(config_path)
    assert data["connections"]["local"]["base_url"] == f"{url}/v1"
    assert data["default_model"] == "local/qwen2.5-coder:7b"


def test_on_with_only_a_model_keeps_the_servers_url(cli: RunCli, config_path: Path) -> None:
    _one_line(cli("local", "set", "http://127.0.0.1:8080"))
    _one_line(cli("local", "on", "gemma3"))
    data = _config(config_path)
    assert data["connections"]["local"]["base_url"] == "http://127.0.0.1:8080/v1"
    assert data["default_model"] == "local/gemma3"


def test_on_again_without_a_model_uses_the_last_one(cli: RunCli, config_path: Path) -> None:
    url = refused_url()  # nothing to ask: the last model is remembered
    _one_line(cli("local", "on", url, "phi4"))
    _one_line(cli("local", "off"))

    _one_line(cli("local", "on"))

    assert _config(config_path)["default_model"] == "local/phi4"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("ftp://host/v1",), "must start with http:// or https://"),
        (("http://a:1/v1", "http://b:2/v1"), "two URLs given"),
        (("llama3", "phi4"), "two models given"),
    ],
)
def test_on_refuses_what_it_cannot_use_in_one_line(
    cli: RunCli, config_path: Path, args: tuple[str, ...], problem: str
) -> None:
    before = config_path.read_text()
    result = cli("local", "on", *args)
    assert result.exit_code == 1
    assert problem in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert config_path.read_text() == before


def test_a_bare_server_address_counts_as_a_url(cli: RunCli, config_path: Path) -> None:
    _one_line(cli("local", "on", "localhost:1234", "llama-7b"))
    assert _config(config_path)["connections"]["local"]["base_url"] == "http://localhost:1234/v1"


def test_set_changes_the_server_and_leaves_the_default_model(
    cli: RunCli, config_path: Path
) -> None:
    _one_line(cli("local", "on", "llama3.1:8b"))

    line = _one_line(cli("local", "set", "http://127.0.0.1:1234/v1"))

    data = _config(config_path)
    assert data["connections"]["local"]["base_url"] == "http://127.0.0.1:1234/v1"
    assert data["default_model"] == "local/llama3.1:8b"
    assert line == (
        "Local server set to http://127.0.0.1:1234/v1; the default model is still "
        "local/llama3.1:8b."
    )


def test_set_before_on_creates_the_connection_only(cli: RunCli, config_path: Path) -> None:
    line = _one_line(cli("local", "set", "http://127.0.0.1:8000/v1"))
    data = _config(config_path)
    assert data["connections"]["local"]["base_url"] == "http://127.0.0.1:8000/v1"
    assert data["default_model"] == "anthropic/claude-sonnet-4-5"
    assert "`modelport local on MODEL`" in line


def test_model_clear_forgets_the_model_and_restores_the_default(
    cli: RunCli, config_path: Path
) -> None:
    _one_line(cli("local", "on", "llama3.1:8b"))

    line = _one_line(cli("local", "model", "clear"))

    data = _config(config_path)
    assert data["default_model"] == "anthropic/claude-sonnet-4-5"  # never "local/clear"
    assert "model" not in data["connections"]["local"]
    assert line == (
        "Local model cleared and local mode off: default model is "
        "anthropic/claude-sonnet-4-5 again."
    )
    assert _one_line(cli("local", "model", "clear")) == (
        "Local model cleared (local mode was off)."
    )


def test_model_takes_a_name_written_as_an_address(cli: RunCli, config_path: Path) -> None:
    _one_line(cli("local", "on", "llama3.1:8b"))
    _one_line(cli("local", "model", "local/qwen3:4b"))
    assert _config(config_path)["default_model"] == "local/qwen3:4b"


def test_bare_local_shows_the_status(cli: RunCli, config_path: Path) -> None:
    result = cli("local")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "local mode: off"


def test_local_model_is_a_shortcut_for_on(cli: RunCli, config_path: Path) -> None:
    line = _one_line(cli("local", "llama3.1:8b"))

    assert _config(config_path)["default_model"] == "local/llama3.1:8b"
    assert line.startswith("Local mode on: default model is local/llama3.1:8b")


def test_a_misspelt_command_is_not_taken_for_a_model(cli: RunCli, config_path: Path) -> None:
    before = config_path.read_text()

    result = cli("local", "stauts")

    assert result.exit_code == 2
    assert result.stderr == (
        "error: no command 'stauts'; did you mean `modelport local status`? "
        "(for a model of that name: `modelport local on stauts`)\n"
    )
    assert config_path.read_text() == before


def test_the_written_config_loads_and_the_address_local_names_the_model(
    cli: RunCli, config_path: Path
) -> None:
    from modelport.config import load_config, resolve_address

    _one_line(cli("local", "on", "llama3.1:8b"))
    config = load_config()
    assert resolve_address("local", config) == "local/llama3.1:8b"
    assert resolve_address("local/", config) == "local/llama3.1:8b"
