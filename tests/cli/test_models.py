"""``modelport models``: a table or JSON of every connection's listed models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from modelport.testing import FakeUpstream, Reply
from tests.cli.conftest import RunCli, refused_url
from tests.test_api import PLUGIN_ID, install_example_plugin

MODELS_BODY = {
    "object": "list",
    "data": [
        {
            "id": "gpt-4o",
            "object": "model",
            "created": 1715367049,
            "owned_by": "system",
            # OpenRouter-style extras, which the table shows.
            "context_length": 128000,
            "pricing": {"prompt": "0.0000025", "completion": "0.00001"},
        },
        {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
    ],
}


@pytest.fixture
def two_connections(write_config: Callable[[str], Path], upstream: FakeUpstream) -> Path:
    upstream.route("GET", "/v1/models", Reply.json(MODELS_BODY))
    return write_config(
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n\n'
        f'[connections.down]\ncompat = "openai"\nbase_url = "{refused_url()}"\nmax_retries = 0\n'
    )


def test_table_lists_models_and_reports_the_failed_connection(
    cli: RunCli, two_connections: Path
) -> None:
    result = cli("models")

    assert result.exit_code == 0, result.stderr  # one connection still answered
    rows = [line.split() for line in result.stdout.splitlines()[1:] if line.strip()]
    assert rows == [
        ["up/gpt-4o", "128,000", "-", "2.5", "10"],
        ["up/gpt-4o-mini", "-", "-", "-", "-"],
    ]
    assert result.stdout.splitlines()[0].split()[0] == "model"
    assert "error: down:" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_is_an_array_of_models_with_addresses(cli: RunCli, two_connections: Path) -> None:
    result = cli("models", "--json")

    assert result.exit_code == 0, result.stderr
    models = json.loads(result.stdout)
    assert [m["address"] for m in models] == ["up/gpt-4o", "up/gpt-4o-mini"]
    assert {m["connection"] for m in models} == {"up"}
    assert models[0]["id"] == "gpt-4o"
    assert models[0]["context_window"] == 128000
    assert models[0]["prices"] == {"input": 2.5, "output": 10.0}


def test_one_connection_only(cli: RunCli, two_connections: Path, upstream: FakeUpstream) -> None:
    result = cli("models", "--connection", "up", "--json")

    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2
    assert result.stderr == ""


def test_exits_non_zero_when_every_connection_failed(
    cli_process: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config(
        f'[connections.down]\ncompat = "openai"\nbase_url = "{refused_url()}"\nmax_retries = 0\n'
    )

    result = cli_process("models")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: down:")
    assert "Traceback" not in result.stderr


def test_subprocess_table(cli_process: RunCli, two_connections: Path) -> None:
    result = cli_process("models", "--connection", "up")

    assert result.exit_code == 0, result.stderr
    assert "up/gpt-4o-mini" in result.stdout
    assert "\x1b[" not in result.stdout  # no colour codes in a pipe


def test_no_connections_says_how_to_add_one(cli: RunCli) -> None:
    result = cli("models")

    assert result.exit_code == 0
    assert result.stdout == ""
    assert "modelport connections add" in result.stderr


def test_unknown_connection_is_an_error(cli: RunCli, two_connections: Path) -> None:
    result = cli("models", "--connection", "nope")

    assert result.exit_code == 1
    assert "error: nope:" in result.stderr


def test_plugin_models_are_listed_with_the_configured_ones(
    cli: RunCli, two_connections: Path, home: Path, upstream: FakeUpstream
) -> None:
    install_example_plugin(home, upstream.url)
    result = cli("models", "--json")

    assert result.exit_code == 0, result.stderr
    addresses = [model["address"] for model in json.loads(result.stdout)]
    assert addresses == [f"{PLUGIN_ID}/gpt-4o-mini", "up/gpt-4o", "up/gpt-4o-mini"]
    only = cli("models", "--connection", PLUGIN_ID, "--json")
    assert [m["address"] for m in json.loads(only.stdout)] == [f"{PLUGIN_ID}/gpt-4o-mini"]
    assert json.loads(only.stdout)[0]["context_window"] == 128000
