"""``modelport doctor``: checks, concrete fixes and the exit code."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from modelport.testing import FakeUpstream, Reply
from modelport.trust import TrustStore, plugins_folder
from tests.cli.conftest import RunCli, refused_url
from tests.test_api import PLUGIN_ID, install_example_plugin

MODELS_BODY = {"object": "list", "data": [{"id": "m1", "object": "model"}]}


def test_healthy_setup_exits_zero(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream, home: Path
) -> None:
    write_config(
        'default_model = "up/m1"\n\n'
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/v1/models", Reply.json(MODELS_BODY))

    result = cli("doctor")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"config: {home / 'config.toml'}" in result.stdout
    assert "keys: file" in result.stdout and "keys.json" in result.stdout
    assert "project: none" in result.stdout
    assert "✓ up: reachable" in result.stdout
    assert "✓ up: default model 'm1' is available" in result.stdout
    assert "Everything works." in result.stderr


def test_missing_default_model_on_ollama_suggests_a_pull(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        'default_model = "ol/llama3.1:8b"\n\n'
        f'[connections.ol]\ncompat = "ollama"\nbase_url = "{upstream.url}"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/api/tags", Reply.fixture("ollama/api-tags.docs-example.json"))

    result = cli("doctor")

    assert result.exit_code == 1
    assert "✗ ol: default model 'llama3.1:8b' is not among its models" in result.stdout
    assert "fix: `ollama pull llama3.1:8b`" in result.stdout
    assert "1 problem found." in result.stderr


def test_refused_key_suggests_keys_set(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        f'[connections.cloud]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route(
        "GET",
        "/v1/models",
        Reply.json({"error": {"message": "Invalid API key", "type": "auth"}}, status=401),
    )

    result = cli("doctor")

    assert result.exit_code == 1
    assert "✗ cloud: key missing or refused" in result.stdout
    assert "fix: `modelport keys set cloud`" in result.stdout
    assert "key: none" in result.stdout


def test_default_model_on_unconfigured_connection(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config('default_model = "nowhere/m1"\n')

    result = cli("doctor")

    assert result.exit_code == 1
    assert "names connection 'nowhere', which is not configured" in result.stdout


def test_project_folder_is_shown(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    (Path.cwd() / ".modelport").mkdir()
    write_config("")

    result = cli("doctor")

    assert f"project: {Path.cwd()}" in result.stdout
    assert "no default model set" in result.stdout
    assert result.exit_code == 0  # warnings only


def test_subprocess_unreachable_local_server_exits_one(
    cli_process: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config(
        'default_model = "local/llama3.1:8b"\n\n'
        f'[connections.local]\ncompat = "ollama"\nbase_url = "{refused_url()[:-3]}"\n'
        "max_retries = 0\n"
    )

    result = cli_process("doctor")

    assert result.exit_code == 1
    assert "✗ local: " in result.stdout
    assert "fix: start Ollama: `ollama serve`" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_subprocess_healthy_exits_zero(
    cli_process: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        'default_model = "up/m1"\n\n'
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/v1/models", Reply.json(MODELS_BODY))

    result = cli_process("doctor")

    assert result.exit_code == 0, result.stdout + result.stderr


def test_default_model_on_a_ready_made_connection_without_a_key(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config('default_model = "anthropic/claude-sonnet-4-5"\n')

    result = cli("doctor")

    assert result.exit_code == 1
    assert "default model: anthropic/claude-sonnet-4-5" in result.stdout
    assert "not configured" not in result.stdout  # a preset needs no [connections] table
    assert "✗ anthropic: key missing or refused" in result.stdout
    assert "fix: `modelport keys set anthropic`" in result.stdout


def test_default_model_through_an_alias(
    cli: RunCli, write_config: Callable[[str], Path], upstream: FakeUpstream
) -> None:
    write_config(
        'default_model = "fast"\n\n[aliases]\nfast = "up/m1"\n\n'
        f'[connections.up]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/v1/models", Reply.json(MODELS_BODY))

    result = cli("doctor")

    assert result.exit_code == 0, result.stdout
    assert "default model: fast → up/m1" in result.stdout
    assert "✓ up: default model 'm1' is available" in result.stdout


# --- plugins and project trust ------------------------------------------------------------


def _manifest(folder: Path, command: str) -> None:
    folder.mkdir(parents=True)
    (folder / "modelport-plugin.toml").write_text(
        f'name = "{folder.name}"\nversion = "1.0.0"\ntype = "llm-provider"\n'
        f"command = {command}\ntriggers = []\n"
    )


def test_plugin_problems_are_shown_with_fixes_and_fail_the_check(
    cli: RunCli, write_config: Callable[[str], Path], home: Path, upstream: FakeUpstream
) -> None:
    write_config("")
    install_example_plugin(home, upstream.url)
    _manifest(home / "plugins" / "ghost", '["no-such-program-modelport", "x"]')
    (home / "plugins" / "bad").mkdir()
    (home / "plugins" / "bad" / "modelport-plugin.toml").write_text("command = 'one string'\n")

    result = cli("doctor")

    assert result.exit_code == 1
    out = result.stdout
    assert f"✓ plugin {PLUGIN_ID}: 0.1.0 (home," in out
    assert "✗ plugin ghost: its command 'no-such-program-modelport' is not installed" in out
    assert "fix: install that program, or change 'command'" in out
    assert "✗ plugin bad: " in out and "modelport plugins check DIR" in out
    assert "2 problems found." in result.stderr
    # The plugin that can start does, and its provider is checked like a connection.
    assert f"✓ {PLUGIN_ID}: registered by a running plugin, 1 models" in out


def test_skipped_folders_and_missing_main_files_are_listed_with_the_reason(
    cli: RunCli, write_config: Callable[[str], Path], home: Path
) -> None:
    write_config("")
    plugins = home / "plugins"
    # A package.json without a plugin section: skipped, and said so.
    (plugins / "some-lib").mkdir(parents=True)
    (plugins / "some-lib" / "package.json").write_text('{"name": "some-lib", "main": "x.js"}')
    # A Node plugin whose main file was never built.
    (plugins / "unbuilt").mkdir()
    (plugins / "unbuilt" / "package.json").write_text(
        '{"name": "unbuilt", "version": "1.0.0", "main": "dist/index.js",'
        ' "modelport": {"plugin": {"type": "llmProvider", "triggers": []}}}'
    )
    # A manifest that cannot be read as text.
    (plugins / "garbled").mkdir()
    (plugins / "garbled" / "modelport-plugin.toml").write_bytes(b'name = "\xff\xfe"\n')

    result = cli("doctor")

    out = result.stdout
    assert "! plugin some-lib: skipped: " in out
    assert "is not a modelport plugin" in out
    missing = plugins / "unbuilt" / "dist" / "index.js"
    assert f"✗ plugin unbuilt: its main file {missing} does not exist" in out
    assert "✗ plugin garbled: " in out
    assert result.exit_code == 1


def test_a_plugins_path_that_is_not_a_folder_is_a_warning(
    cli: RunCli, write_config: Callable[[str], Path], home: Path
) -> None:
    write_config("")
    (home / "plugins").write_text("not a folder")
    result = cli("doctor")
    assert f"! folder plugins: {home / 'plugins'} is not a folder" in result.stdout


def test_an_untrusted_project_plugin_is_a_warning(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config("")
    _manifest(Path.cwd() / ".modelport" / "plugins" / "proj", '["python", "plugin.py"]')

    result = cli("doctor")

    assert result.exit_code == 0, result.stdout
    assert "! plugin proj: project plugin not trusted" in result.stdout
    assert "modelport plugins trust" in result.stdout


def test_an_untrusted_project_config_is_a_warning_until_trusted(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config("")
    project = Path.cwd()
    config = project / ".modelport" / "config.toml"
    config.parent.mkdir()
    config.write_text('[connections.work]\nbase_url = "http://127.0.0.1:9/v1"\n')

    result = cli("doctor")

    assert result.exit_code == 0, result.stdout
    assert f"! project config not trusted: ignoring [connections.work] in {config}" in result.stdout
    assert f"fix: review the file, then `modelport plugins trust {project}`" in result.stdout
    assert "work (" not in result.stdout  # its connection is not checked, nor used

    TrustStore(Path(os.environ["MODELPORT_HOME"])).trust(plugins_folder(project))
    trusted = cli("doctor")
    assert "not trusted" not in trusted.stdout
    assert "work (openai, http://127.0.0.1:9/v1)" in trusted.stdout


def test_default_model_on_a_plugin_provider(
    cli: RunCli, write_config: Callable[[str], Path], home: Path, upstream: FakeUpstream
) -> None:
    write_config(f'default_model = "{PLUGIN_ID}/gpt-4o-mini"\n')
    install_example_plugin(home, upstream.url)

    result = cli("doctor")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert "not configured" not in result.stdout
    assert f"✓ {PLUGIN_ID}: default model 'gpt-4o-mini' is available" in result.stdout


def test_a_remote_connection_without_a_key_is_a_problem_even_if_it_lists_models(
    cli: RunCli,
    write_config: Callable[[str], Path],
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # OpenRouter and Ollama's /v1 list models to anyone: a listing proves no key works.
    write_config(
        f'[connections.cloud]\ncompat = "openai"\nbase_url = "{upstream.url}/v1"\nmax_retries = 0\n'
    )
    upstream.route("GET", "/v1/models", Reply.json(MODELS_BODY))
    local = cli("doctor")
    assert local.exit_code == 0, local.stdout  # on this machine, a keyless server is normal

    # The same server seen as remote (the test may only reach loopback).
    monkeypatch.setattr("modelport.routing.is_local_url", lambda url: False)
    result = cli("doctor")

    assert result.exit_code == 1, result.stdout
    assert "✓ cloud: reachable" in result.stdout
    assert "✗ cloud: no API key" in result.stdout
    assert "fix: `modelport keys set cloud`" in result.stdout


def test_an_unreachable_connection_without_compat_suggests_openai(
    cli: RunCli, write_config: Callable[[str], Path]
) -> None:
    write_config(f'[connections.box]\nbase_url = "{refused_url()}"\nmax_retries = 0\n')

    result = cli("doctor")

    assert result.exit_code == 1
    assert "--compat openai --base-url URL --force" in result.stdout
    assert "--compat None" not in result.stdout
