from __future__ import annotations

from pathlib import Path

import pytest

from modelport.errors import ConfigError
from modelport.plugin_host.manifest import ManifestError, load_manifest

GOOD = """
name = "my-llm-provider"
version = "1.0.0"
type = "llm-provider"
command = ["node", "dist/index.js"]
triggers = ["startup"]
env = ["HTTPS_PROXY"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "modelport-plugin.toml").write_text(text)
    return tmp_path


def test_a_good_manifest(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, GOOD))
    assert manifest.name == "my-llm-provider" and manifest.version == "1.0.0"
    assert manifest.command == ("node", "dist/index.js")
    assert manifest.starts_at_startup and manifest.env == ("HTTPS_PROXY",)
    assert manifest.dir == tmp_path and len(manifest.hash) == 64


def test_triggers_and_env_are_optional(tmp_path: Path) -> None:
    text = 'name = "a"\nversion = "1"\ntype = "llm-provider"\ncommand = ["x"]\n'
    manifest = load_manifest(_write(tmp_path, text))
    assert manifest.triggers == () and not manifest.starts_at_startup and manifest.env == ()


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ('name = "my-llm-provider"', 'name = "has space"', "'name' must be"),
        ('version = "1.0.0"', "version = 1", "'version' must be a version string"),
        ('type = "llm-provider"', 'type = "tool"', "'type' must be \"llm-provider\""),
        ('command = ["node", "dist/index.js"]', 'command = "node x.js"', "not one string"),
        ('command = ["node", "dist/index.js"]', "command = []", "'command' must be a non-empty"),
        ('triggers = ["startup"]', 'triggers = ["boot"]', "'triggers' must be"),
        ('env = ["HTTPS_PROXY"]', 'env = ["OPENAI_API_KEY"]', "may not pass secrets"),
        ('env = ["HTTPS_PROXY"]', 'env = ["GITHUB_TOKEN"]', "may not pass secrets"),
        ('env = ["HTTPS_PROXY"]', 'env = ["bad-name"]', "'env' must be"),
    ],
)
def test_bad_keys_are_named(tmp_path: Path, replace: str, by: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message) as caught:
        load_manifest(_write(tmp_path, GOOD.replace(replace, by)))
    assert str(tmp_path / "modelport-plugin.toml") in str(caught.value)
    assert isinstance(caught.value, ConfigError)


def test_missing_keys_say_missing(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"'command' must be .*\(missing\)"):
        load_manifest(_write(tmp_path, 'name = "a"\nversion = "1"\ntype = "llm-provider"\n'))


def test_not_toml_and_no_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(_write(tmp_path, "name = = ="))
    with pytest.raises(ManifestError, match="no modelport-plugin.toml"):
        load_manifest(tmp_path / "elsewhere")


@pytest.mark.parametrize(
    "name",
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_PAT",
        "DATABASE_URL",
        "REDIS_URL",
        "MY_SECRET_SAUCE",
        "SECRETS_DIR",
        "PGPASSWORD",
        "SSH_AUTH_SOCK",
        "SLACK_TOKEN_FILE",
    ],
)
def test_env_may_not_name_a_secret_anywhere_in_the_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ManifestError, match=f"may not pass secrets to the plugin \\({name}\\)"):
        load_manifest(_write(tmp_path, GOOD.replace('env = ["HTTPS_PROXY"]', f'env = ["{name}"]')))


def test_env_may_name_ordinary_settings(tmp_path: Path) -> None:
    names = ["HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "KEYBOARD_LAYOUT", "NODE_OPTIONS"]
    text = GOOD.replace(
        'env = ["HTTPS_PROXY"]', "env = [" + ", ".join(f'"{n}"' for n in names) + "]"
    )
    assert load_manifest(_write(tmp_path, text)).env == tuple(names)
