"""A connection table accepts only keys that have an effect (config/_connection_keys.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.config import load_config, parse_config
from modelport.errors import ConfigError


def _table(name: str, body: str) -> str:
    return f"[connections.{name}]\n{body}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Seed 004's users write these; they are the connection's defaults now.
        (
            _table("work", 'base_url = "https://x/v1"\ntemperature = 0.2\nmax_tokens = 4096'),
            {"temperature": 0.2, "max_tokens": 4096},
        ),
        (
            _table("local", 'base_url = "http://l/v1"\nmodel = "llama3.1:8b"'),
            {"model": "llama3.1:8b"},
        ),
        (
            _table("work", 'base_url = "https://x/v1"\nretry_base_delay = 1\nretry_max_delay = 30'),
            {"retry_base_delay": 1.0, "retry_max_delay": 30.0},
        ),
    ],
)
def test_connection_defaults_are_read(text: str, expected: dict[str, object]) -> None:
    connection = next(iter(parse_config(text).connections.values()))
    for key, value in expected.items():
        assert getattr(connection, key) == value
    assert connection.options == {}


@pytest.mark.parametrize(
    "text",
    [
        _table("ant", 'compat = "anthropic"\nanthropic_version = "2023-06-01"'),
        _table("ant", 'compat = "anthropic"\nanthropic_beta = ["a", "b"]'),
        _table("anthropic", 'anthropic_beta = "a"'),  # the preset's compat
        _table("box", 'compat = "ollama"\noptions = { num_ctx = 32768 }'),
        _table("ollama", "options = { num_ctx = 8192 }"),
        _table("local", 'base_url = "http://l/v1"\nprevious_default_model = "a/b"'),
        _table("acme", 'compat = "plugin:acme"\nregion = "eu"\napiKey_env = "K"'),
        _table("pkg", 'compat = "some-package"\nanything = 1'),
    ],
)
def test_keys_an_adapter_reads_are_accepted(text: str) -> None:
    parse_config(text)


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        (_table("work", 'base_url = "https://x/v1"\norganisation = "r"'), "organisation", None),
        (
            _table("work", 'base_url = "https://x/v1"\ntemprature = 0.2'),
            "temprature",
            "temperature",
        ),
        (_table("work", 'base_url = "https://x/v1"\nmax_token = 9'), "max_token", "max_tokens"),
        (_table("work", 'base_url = "https://x/v1"\nmodels = "m"'), "models", "model"),
        (_table("work", 'base_url = "https://x/v1"\nbackoff = 2'), "backoff", None),
        (_table("work", 'base_url = "https://x/v1"\nregion_env = "R"'), "region_env", None),
        (
            _table("work", 'base_url = "https://x/v1"\nanthropic_version = "x"'),
            "anthropic_version",
            None,
        ),
        (_table("box", 'compat = "ollama"\nnum_ctx = 32768'), "num_ctx", None),
        (_table("box", 'compat = "ollama"\noption = {num_ctx = 1}'), "option", "options"),
        (
            _table("other", 'base_url = "http://x/v1"\nprevious_default_model = "a/b"'),
            "previous_default_model",
            None,
        ),
    ],
)
def test_a_key_without_effect_is_refused_with_its_name_and_the_closest_one(
    text: str, key: str, hint: str | None, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, path)
    message = str(caught.value)
    assert f"unknown key {key!r}" in message
    assert str(path) in message
    assert "Keys it understands:" in message
    if hint is not None:
        assert f"Did you mean {hint!r}?" in message


def test_ollama_options_on_an_openai_compatible_connection_say_why(tmp_path: Path) -> None:
    text = _table("local", 'base_url = "http://localhost:11434/v1"\noptions = {num_ctx = 32768}')
    with pytest.raises(ConfigError, match=r'compat = "ollama".*/v1 ignores options'):
        parse_config(text, tmp_path / "config.toml")


@pytest.mark.parametrize("key", ["headers = { a = 'b' }", "timeout = 5"])
def test_keys_that_reach_no_plugin_are_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="has no effect on a plugin's connection"):
        parse_config(_table("acme", f'compat = "plugin:acme"\n{key}'))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('compat = "ollama"\noptions = 5', "options must be a table"),
        ('compat = "anthropic"\nanthropic_version = 1', "anthropic_version must be a string"),
        ('compat = "anthropic"\nanthropic_beta = [1]', "anthropic_beta must be a string"),
        ('base_url = "http://x/v1"\ntemperature = -1', "connections.c.temperature"),
        ('base_url = "http://x/v1"\nmax_tokens = 0', "connections.c.max_tokens"),
        ('base_url = "http://x/v1"\nmodel = ""', "connections.c.model"),
        ('base_url = "http://x/v1"\nretry_base_delay = 0', "connections.c.retry_base_delay"),
    ],
)
def test_bad_values_are_refused(body: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config(_table("c", body))


def test_load_config_refuses_an_inert_key_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(_table("work", 'base_url = "https://x/v1"\ntop_k = 3'))
    with pytest.raises(ConfigError, match=rf"{home / 'config.toml'}.*unknown key 'top_k'"):
        load_config(home=home, cwd=tmp_path)


def test_azure_and_gemini_connections_take_only_their_own_keys() -> None:
    parse_config(
        _table(
            "az",
            'compat = "azure"\nbase_url = "https://x.openai.azure.com"\n'
            'api_version = "2024-10-21"\ndeployments = ["a"]',
        )
    )
    with pytest.raises(ConfigError, match="unknown key 'api_version'"):
        parse_config(_table("gem", 'compat = "gemini"\napi_version = "v1"'))


def test_every_built_in_adapter_has_its_keys_listed() -> None:
    # A built-in compat missing from the table would let any key through unchecked.
    from modelport.config._connection_keys import _ADAPTER_KEYS
    from modelport.providers import BUILTIN_PROVIDERS

    assert set(BUILTIN_PROVIDERS) <= set(_ADAPTER_KEYS)
