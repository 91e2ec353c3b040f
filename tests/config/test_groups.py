"""Model groups in ``[aliases]`` and the ``[cache]`` table: what config.toml may say."""

from __future__ import annotations

import pytest

from modelport.config import (
    CacheConfig,
    Config,
    Deployment,
    parse_config,
    resolve_address,
    resolve_target,
)
from modelport.errors import ConfigError, ModelNotFoundError

GROUP = """
[aliases]
fast = "local/qwen"
smart = "gpt-4o"

[aliases.gpt-4o]
strategy = "least-busy"
cooldown = 5
allowed_fails = 1
deployments = [
    { model = "east/gpt-4o", weight = 2 },
    { model = "west/gpt-4o" },
    "openai/gpt-4o",
]
"""


def test_a_table_alias_is_a_model_group_and_plain_aliases_keep_working() -> None:
    config = parse_config(GROUP)
    assert config.aliases == {"fast": "local/qwen", "smart": "gpt-4o"}
    group = config.model_groups["gpt-4o"]
    assert group.strategy == "least-busy"
    assert group.cooldown == 5 and group.allowed_fails == 1
    assert group.deployments == (
        Deployment(model="east/gpt-4o", weight=2),
        Deployment(model="west/gpt-4o"),
        Deployment(model="openai/gpt-4o"),
    )
    assert resolve_address("fast", config, env={}) == "local/qwen"


def test_a_group_is_a_target_directly_or_through_an_alias() -> None:
    config = parse_config(GROUP)
    assert resolve_target("gpt-4o", config, env={}) == "gpt-4o"
    assert resolve_target("smart", config, env={}) == "gpt-4o"
    assert resolve_target("fast", config, env={}) == "local/qwen"


def test_a_group_is_not_one_address() -> None:
    with pytest.raises(ModelNotFoundError, match="model group of several deployments"):
        resolve_address("smart", parse_config(GROUP), env={})


def test_the_default_model_may_be_a_group() -> None:
    config = parse_config('default_model = "gpt-4o"\n' + GROUP)
    assert resolve_target(None, config, env={}) == "gpt-4o"


def test_defaults_are_weighted_with_a_30_second_cooldown() -> None:
    config = parse_config('[aliases.pool]\ndeployments = ["a/m", "b/m"]')
    group = config.model_groups["pool"]
    assert (group.strategy, group.cooldown, group.allowed_fails) == ("weighted", 30.0, 3)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('strategy = "least_busy"\ndeployments = ["a/m"]', "Did you mean 'least-busy'"),
        ('deployment = ["a/m"]', "unknown key 'deployment'. Did you mean 'deployments'"),
        ("deployments = []", "at least one address"),
        ('deployments = ["gpt-4o"]', "not a model address"),
        ('deployments = ["a/m", "a/m"]', "listed twice"),
        ('deployments = [{ model = "a/m", weight = 0 }]', "weight"),
        ('deployments = [{ model = "a/m", share = 2 }]', "share"),
        ('cooldown = -1\ndeployments = ["a/m"]', "cooldown"),
    ],
)
def test_a_bad_group_is_refused_with_the_reason(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(f"[aliases.pool]\n{table}", "/tmp/c.toml")
    assert "[aliases.pool]" in str(caught.value)


def test_no_cache_table_means_no_cache() -> None:
    assert parse_config("").cache is None


def test_the_cache_table_and_its_defaults() -> None:
    assert parse_config("[cache]").cache == CacheConfig()
    config = parse_config(
        '[cache]\nmodels = ["pool"]\nttl = 60\nmax_entries = 5\nper_tenant = false'
    )
    assert config.cache == CacheConfig(models=["pool"], ttl=60, max_entries=5, per_tenant=False)


@pytest.mark.parametrize(
    ("table", "message"),
    [("tll = 5", "Did you mean 'ttl'"), ("ttl = 0", "ttl"), ("max_entries = -1", "max_entries")],
)
def test_a_bad_cache_table_is_refused(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(f"[cache]\n{table}")


def test_redis_url_is_read() -> None:
    assert parse_config('redis_url = "redis://127.0.0.1:6379/0"').redis_url == (
        "redis://127.0.0.1:6379/0"
    )
    assert Config().redis_url is None
