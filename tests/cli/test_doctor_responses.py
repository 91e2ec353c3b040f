"""``modelport doctor`` and ``connections add`` with the openai-responses compat."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modelport.testing import FakeUpstream, Reply
from tests.cli.conftest import RunCli


def test_a_responses_connection_that_works(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        'default_model = "oai/gpt-5.5-pro"\n\n'
        f'[connections.oai]\ncompat = "openai-responses"\nbase_url = "{upstream.url}/v1"\n'
        "max_retries = 0\n"
    )
    upstream.route("GET", "/v1/models", Reply.json({"data": [{"id": "gpt-5.5-pro"}]}))

    result = cli("doctor")

    assert result.exit_code == 0, result.stdout
    assert f"oai (openai-responses, {upstream.url}/v1)" in result.stdout
    assert "✓ oai: default model 'gpt-5.5-pro' is available" in result.stdout


def test_a_misspelt_responses_compat_gets_the_nearest_name(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config('[connections.o]\ncompat = "openai-response"\nbase_url = "https://o.example/v1"\n')

    result = cli("doctor")

    assert result.exit_code == 1
    assert 'fix: set compat = "openai-responses" under [connections.o]' in result.stdout


def test_connections_add_knows_openai_responses(cli: RunCli, home: Path) -> None:
    added = cli(
        "connections", "add", "o", "--compat", "openai-responses", "--api-key-env", "OPENAI_API_KEY"
    )
    assert added.exit_code == 0, added.stderr
    assert 'compat = "openai-responses"' in (home / "config.toml").read_text()
