"""``modelport doctor`` and ``connections add`` with the gemini and azure compats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modelport.testing import FakeUpstream, Reply
from tests.cli.conftest import RunCli

GEMINI_MODELS = {
    "models": [
        {
            "name": "models/gemini-2.5-flash",
            "displayName": "Gemini 2.5 Flash",
            "supportedGenerationMethods": ["generateContent"],
        }
    ]
}


def test_the_gemini_preset_without_a_key_names_both_variables(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config('default_model = "gemini/gemini-2.5-flash"\n')

    result = cli("doctor")

    assert result.exit_code == 1
    assert "gemini (gemini, https://generativelanguage.googleapis.com)" in result.stdout
    assert "✗ gemini: key missing or refused" in result.stdout
    assert (
        "fix: `modelport keys set gemini`, or export GEMINI_API_KEY=... (or GOOGLE_API_KEY)"
        in result.stdout
    )


def test_a_gemini_connection_that_works(
    cli: RunCli,
    write_config: Callable[[str], Path],
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_GEMINI_KEY", "AIza-doctor-0123456789")
    write_config(
        'default_model = "g/gemini-2.5-flash"\n\n'
        f'[connections.g]\ncompat = "gemini"\nbase_url = "{upstream.url}"\n'
        'api_key_env = "MY_GEMINI_KEY"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/v1beta/models", Reply.json(GEMINI_MODELS))

    result = cli("doctor")

    assert result.exit_code == 0, result.stdout
    assert "✓ g: reachable, 1 models" in result.stdout
    assert "✓ g: default model 'gemini-2.5-flash' is available" in result.stdout
    assert upstream.requests[0].headers["x-goog-api-key"] == "AIza-doctor-0123456789"


def test_an_azure_connection_without_its_endpoint(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config('[connections.az]\ncompat = "azure"\napi_key_env = "AZ_KEY"\n')

    result = cli("doctor")

    assert result.exit_code == 1
    assert "✗ az: Connection 'az' has no base_url" in result.stdout
    assert (
        "fix: `modelport connections add az --compat azure --base-url "
        "https://NAME.openai.azure.com --api-key-env AZURE_OPENAI_API_KEY --force`"
    ) in result.stdout


def test_an_azure_connection_with_named_deployments(
    cli: RunCli,
    write_config: Callable[[str], Path],
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-doctor-0123456789")
    write_config(
        'default_model = "az/gpt4o-prod"\n\n'
        f'[connections.az]\ncompat = "azure"\nbase_url = "{upstream.url}"\n'
        'api_key_env = "AZURE_OPENAI_API_KEY"\ndeployments = ["gpt4o-prod"]\nmax_retries = 0\n'
    )
    upstream.route("GET", "/openai/models", Reply.json({"object": "list", "data": []}))

    result = cli("doctor")

    assert result.exit_code == 0, result.stdout
    assert "✓ az: default model 'gpt4o-prod' is available" in result.stdout


def test_an_azure_connection_without_a_key(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(f'[connections.az]\ncompat = "azure"\nbase_url = "{upstream.url}"\n')

    result = cli("doctor")

    assert result.exit_code == 1
    assert 'api_key_env = "AZURE_OPENAI_API_KEY" under [connections.az]' in result.stdout
    assert upstream.requests == []


def test_a_misspelt_compat_gets_the_nearest_name(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config('[connections.g]\ncompat = "gemeni"\nbase_url = "https://g.example"\n')

    result = cli("doctor")

    assert result.exit_code == 1
    assert "Unknown compat 'gemeni'. Did you mean 'gemini'?" in result.stdout
    assert 'fix: set compat = "gemini" under [connections.g]' in result.stdout


def test_connections_add_knows_the_new_compats(cli: RunCli, home: Path) -> None:
    added = cli("connections", "add", "g", "--compat", "gemini", "--api-key-env", "GEMINI_API_KEY")
    assert added.exit_code == 0, added.stderr
    assert 'compat = "gemini"' in (home / "config.toml").read_text()

    refused = cli("connections", "add", "az", "--compat", "azure")
    assert refused.exit_code != 0
    assert "--base-url https://NAME.openai.azure.com" in refused.stdout + refused.stderr

    azure = cli(
        "connections", "add", "az", "--compat", "azure", "--base-url", "https://r.openai.azure.com"
    )
    assert azure.exit_code == 0, azure.stderr
