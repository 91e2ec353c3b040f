from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.errors import ConfigError
from modelport.plugin_host.manifest import ManifestError, NotAPlugin, load_manifest

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


def test_triggers_in_the_object_form(tmp_path: Path) -> None:
    text = GOOD.replace('triggers = ["startup"]', 'triggers = [{type = "startup"}]')
    assert load_manifest(_write(tmp_path, text)).triggers == ("startup",)
    text = GOOD.replace('triggers = ["startup"]', 'triggers = ["startup", {type = "startup"}]')
    assert load_manifest(_write(tmp_path, text)).triggers == ("startup",)


@pytest.mark.parametrize(
    "triggers",
    ['[{type = "boot"}]', "[{kind = 1}]", "[[1]]", '[{type = ["startup"]}]', '"startup"', "[{}]"],
)
def test_bad_triggers_of_any_shape_are_a_manifest_error(tmp_path: Path, triggers: str) -> None:
    text = GOOD.replace('triggers = ["startup"]', f"triggers = {triggers}")
    with pytest.raises(ManifestError, match=r"'triggers' must be \["):
        load_manifest(_write(tmp_path, text))


def _package(tmp_path: Path, data: object) -> Path:
    (tmp_path / "package.json").write_text(json.dumps(data))
    return tmp_path


GUIDE_PACKAGE = {
    "name": "my-llm-provider",
    "version": "1.0.0",
    "main": "dist/index.js",
    "modelport": {"plugin": {"type": "llmProvider", "triggers": [{"type": "startup"}]}},
    "scripts": {"build": "tsc"},
}


def test_a_package_json_with_a_plugin_section_is_a_manifest(tmp_path: Path) -> None:
    manifest = load_manifest(_package(tmp_path, GUIDE_PACKAGE))
    assert (manifest.name, manifest.version, manifest.file) == (
        "my-llm-provider",
        "1.0.0",
        "package.json",
    )
    assert manifest.command == ("node", "dist/index.js") and manifest.entry == "dist/index.js"
    assert manifest.starts_at_startup and manifest.type == "llm-provider"
    assert manifest.hash == hashlib.sha256((tmp_path / "package.json").read_bytes()).hexdigest()


def test_package_json_defaults_and_overrides(tmp_path: Path) -> None:
    plugin = {
        "type": "llm-provider",
        "command": ["node", "--enable-source-maps", "main.js"],
        "env": ["HTTPS_PROXY"],
        "description": "mine",
    }
    data = {"name": "@acme/provider", "version": "2.0.0", "modelport": {"plugin": plugin}}
    manifest = load_manifest(_package(tmp_path, data))
    assert manifest.name == "provider"  # the npm scope is not part of the plugin name
    assert manifest.command == ("node", "--enable-source-maps", "main.js")
    assert manifest.entry is None and manifest.env == ("HTTPS_PROXY",)
    assert manifest.description == "mine" and manifest.triggers == ()
    data = {"name": "x", "version": "1", "modelport": {"plugin": {"type": "llmProvider"}}}
    assert load_manifest(_package(tmp_path, data)).command == ("node", "index.js")


def test_the_toml_manifest_wins_over_package_json(tmp_path: Path) -> None:
    _package(tmp_path, GUIDE_PACKAGE)
    assert load_manifest(_write(tmp_path, GOOD)).file == "modelport-plugin.toml"


def test_a_package_json_without_a_plugin_section_is_not_a_plugin(tmp_path: Path) -> None:
    with pytest.raises(NotAPlugin, match='no "modelport": {"plugin": {...}} section'):
        load_manifest(_package(tmp_path, {"name": "lib", "version": "1.0.0"}))
    codebolt = {**GUIDE_PACKAGE, "codebolt": GUIDE_PACKAGE["modelport"]}
    del codebolt["modelport"]
    with pytest.raises(NotAPlugin, match="plugin section under 'codebolt'"):
        load_manifest(_package(tmp_path, codebolt))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modelport": {"plugin": {"type": "llmProvider", "triggers": "startup"}}}, "triggers"),
        ({"modelport": {"plugin": {"type": "tool"}}}, "'modelport.plugin.type' must be"),
        ({"modelport": {"plugin": ["x"]}}, "'modelport.plugin' must be an object"),
        ({"main": 3}, "'main' must name the plugin's entry file"),
        ({"version": None}, "'version' must be a version string"),
        ({"name": {"a": 1}}, "'name' must be"),
    ],
)
def test_bad_package_json_keys_are_named_as_written(
    tmp_path: Path, change: dict, message: str
) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        load_manifest(_package(tmp_path, {**GUIDE_PACKAGE, **change}))


def test_unreadable_manifests_are_manifest_errors(tmp_path: Path) -> None:
    (tmp_path / "modelport-plugin.toml").write_bytes(b'name = "\xff\xfe"\n')
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(tmp_path)
    (tmp_path / "modelport-plugin.toml").write_bytes(b"#" * (10 * 1024 * 1024))
    with pytest.raises(ManifestError, match="larger than 1024 KiB"):
        load_manifest(tmp_path)
    (tmp_path / "modelport-plugin.toml").unlink()
    (tmp_path / "modelport-plugin.toml").symlink_to(tmp_path / "modelport-plugin.toml")
    with pytest.raises(ManifestError, match="cannot be read"):
        load_manifest(tmp_path)
    (tmp_path / "modelport-plugin.toml").unlink()
    os.mkfifo(tmp_path / "modelport-plugin.toml")  # opening it would wait for a writer
    with pytest.raises(ManifestError, match="not a regular file"):
        load_manifest(tmp_path)
    (tmp_path / "modelport-plugin.toml").unlink()
    (tmp_path / "package.json").write_text("[" * 100_000)
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path)
    (tmp_path / "package.json").write_text("[1, 2]")
    with pytest.raises(ManifestError, match="must hold a JSON object"):
        load_manifest(tmp_path)


# --- whatever the file holds, reading it raises ManifestError or returns a Manifest -------

_KEYS = ["name", "version", "type", "command", "triggers", "env", "description", "main"]
_scalars = (
    st.text(max_size=12)
    | st.integers()
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.sampled_from(["startup", "llm-provider", "llmProvider", "node", "a", "1.0.0"])
)
_json_values = st.recursive(
    st.none() | _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from([*_KEYS, "type", "plugin", "x"]), inner, max_size=4)
    ),
    max_leaves=12,
)
_toml_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["type", "x", "startup"]), inner, max_size=3)
    ),
    max_leaves=12,
)


def _check(folder: Path) -> None:
    try:
        manifest = load_manifest(folder)
    except ManifestError:
        return
    assert isinstance(manifest.name, str) and isinstance(manifest.version, str)
    assert all(isinstance(part, str) for part in manifest.command)
    assert set(manifest.triggers) <= {"startup"} and isinstance(manifest.description, str)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_KEYS), _toml_values, max_size=8))
def test_any_toml_manifest_is_read_or_refused(data: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "modelport-plugin.toml").write_text(tomlkit.dumps(data))
        _check(Path(folder))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(_KEYS), _json_values, max_size=6),
    _json_values,
)
def test_any_package_json_is_read_or_refused(top: dict, plugin: object) -> None:
    with tempfile.TemporaryDirectory() as folder:
        data = {**top, "modelport": {"plugin": plugin}}
        (Path(folder) / "package.json").write_text(json.dumps(data))
        _check(Path(folder))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["modelport-plugin.toml", "package.json"]))
def test_any_bytes_are_read_or_refused(raw: bytes, file_name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / file_name).write_bytes(raw)
        _check(Path(folder))
