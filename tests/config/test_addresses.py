from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelport.config import Config, default_model, resolve_address, split_address
from modelport.errors import ConfigError, ModelNotFoundError


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("openrouter/anthropic/claude-3.5-sonnet", ("openrouter", "anthropic/claude-3.5-sonnet")),
        ("local/llama3.1:8b", ("local", "llama3.1:8b")),
        ("openai/gpt-4o", ("openai", "gpt-4o")),
    ],
)
def test_split_address_splits_at_the_first_slash_only(
    address: str, expected: tuple[str, str]
) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["gpt-4o", "/gpt-4o", "local/", ""])
def test_split_address_rejects_what_is_not_an_address(address: str) -> None:
    with pytest.raises(ModelNotFoundError, match="connection/model"):
        split_address(address)


@given(
    st.text(min_size=1).filter(lambda s: "/" not in s),
    st.text(min_size=1),
)
def test_split_address_round_trips(connection: str, model: str) -> None:
    assert split_address(f"{connection}/{model}") == (connection, model)


def test_an_address_resolves_to_itself() -> None:
    assert resolve_address("local/llama3.1:8b", Config(), env={}) == "local/llama3.1:8b"


def test_aliases_resolve_through_chains() -> None:
    config = Config(aliases={"fast": "quick", "quick": "local/qwen2.5-coder:7b"})
    assert resolve_address("fast", config, env={}) == "local/qwen2.5-coder:7b"


def test_an_alias_may_shadow_an_address() -> None:
    config = Config(aliases={"openai/gpt-4": "openai/gpt-4o"})
    assert resolve_address("openai/gpt-4", config, env={}) == "openai/gpt-4o"


def test_an_alias_cycle_is_a_config_error() -> None:
    config = Config(aliases={"a": "b", "b": "c", "c": "a"})
    with pytest.raises(ConfigError, match="a → b → c → a"):
        resolve_address("a", config, env={})


def test_an_alias_to_itself_is_a_cycle() -> None:
    with pytest.raises(ConfigError, match="cycle"):
        resolve_address("me", Config(aliases={"me": "me"}), env={})


def test_a_bare_name_lists_the_aliases_and_how_to_write_an_address() -> None:
    config = Config(aliases={"fast": "local/qwen", "smart": "anthropic/claude"})
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_address("gpt-4o", config, env={})
    message = str(caught.value)
    assert "'connection/model'" in message
    assert "fast → local/qwen" in message
    assert "smart → anthropic/claude" in message
    assert caught.value.model == "gpt-4o"


def test_a_bare_name_is_not_sent_to_the_default_connection() -> None:
    # Guessing could send a prompt meant for a local server to a cloud, so we suggest instead.
    config = Config(default_model="local/llama3.1:8b")
    with pytest.raises(ModelNotFoundError, match="Did you mean 'local/qwen2.5'"):
        resolve_address("qwen2.5", config, env={})


def test_a_bare_name_without_aliases_says_where_to_add_them() -> None:
    with pytest.raises(ModelNotFoundError, match=r"\[aliases\]"):
        resolve_address("fast", Config(), env={})


def test_no_name_means_the_default_model() -> None:
    config = Config(default_model="fast", aliases={"fast": "local/qwen"})
    assert resolve_address(None, config, env={}) == "local/qwen"
    assert resolve_address("", config, env={}) == "local/qwen"


def test_modelport_model_supplies_the_default_when_config_has_none() -> None:
    env = {"MODELPORT_MODEL": "ollama/llama3.2"}
    assert resolve_address(None, Config(), env=env) == "ollama/llama3.2"
    assert default_model(Config(default_model="a/b"), env) == "a/b"


def test_modelport_model_is_read_from_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELPORT_MODEL", "env/model")
    assert resolve_address(None, Config()) == "env/model"


def test_no_model_and_no_default_says_how_to_set_one() -> None:
    with pytest.raises(ModelNotFoundError, match="MODELPORT_MODEL"):
        resolve_address(None, Config(), env={})


def test_an_alias_to_a_broken_address_is_reported() -> None:
    with pytest.raises(ModelNotFoundError, match="'local/'"):
        resolve_address("x", Config(aliases={"x": "local/"}), env={})


# --- an address that names only the connection ----------------------------------


def _with_local_model(model: str | None = "llama3.1:8b", **aliases: str) -> Config:
    from modelport.config import parse_config

    line = f'model = "{model}"\n' if model else ""
    text = f'[connections.local]\nbase_url = "http://localhost:11434/v1"\n{line}'
    config = parse_config(text)
    return Config(connections=config.connections, aliases=dict(aliases))


@pytest.mark.parametrize("address", ["local", "local/"])
def test_naming_only_the_connection_means_its_model(address: str) -> None:
    assert resolve_address(address, _with_local_model(), env={}) == "local/llama3.1:8b"


def test_an_alias_of_the_connections_name_wins() -> None:
    config = _with_local_model(local="anthropic/claude-sonnet-4-5")
    assert resolve_address("local", config, env={}) == "anthropic/claude-sonnet-4-5"
    assert resolve_address("local/", config, env={}) == "local/llama3.1:8b"


def test_the_default_model_may_name_only_the_connection() -> None:
    config = _with_local_model()
    config = Config(connections=config.connections, default_model="local/")
    assert resolve_address(None, config, env={}) == "local/llama3.1:8b"


def test_a_connection_without_a_model_says_how_to_name_one() -> None:
    with pytest.raises(ModelNotFoundError, match=r"sets no model.*'local/MODEL'.*model = "):
        resolve_address("local/", _with_local_model(None), env={})
    # A bare name stays an alias or nothing: it never guesses.
    with pytest.raises(ModelNotFoundError, match="neither an alias nor a model address"):
        resolve_address("local", _with_local_model(None), env={})
