"""``modelport plugins ...`` through the real ``main()``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelport.config import parse_config
from modelport.server.app import create_app
from modelport.testing import FakeUpstream, Reply
from modelport.trust import TrustStore
from tests._node import build
from tests.cli.conftest import RunCli
from tests.plugin_host.conftest import scripted, write_garbage_plugins, write_plugin
from tests.server.conftest import GatewayFactory


@pytest.fixture
def home() -> Path:
    path = Path(os.environ["MODELPORT_HOME"])
    (path / "plugins").mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("lang", ["python", "node", "ts"])
def test_new_writes_a_plugin_that_passes_check(cli: RunCli, tmp_path: Path, lang: str) -> None:
    target = tmp_path / f"acme-{lang}"
    result = cli("plugins", "new", "acme", "--lang", lang, "--dir", str(target))
    assert result.exit_code == 0, result.stderr
    manifest = "modelport-plugin.toml" if lang == "python" else "package.json"
    assert (target / manifest).is_file()
    if lang == "ts":
        assert "npm run build" in result.stderr
        build(target)
    again = cli("plugins", "new", "acme", "--lang", lang, "--dir", str(target))
    assert again.exit_code == 1 and "not empty" in again.stderr

    with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture("openai/chat-stream-text-include-usage.sse"),
        )
        result = cli(
            "plugins", "check", str(target),
            "--set", "apiKey=sk-test", "--set", f"baseUrl={upstream.url}/v1",
        )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS") == 8 and "8 passed, 0 failed" in result.stderr


def test_check_reports_failures_and_exits_non_zero(cli: RunCli, tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "p", scripted("hang"))
    # Each step's bound: the hang costs it per check, but initialize and shutdown must pass
    # in it too, and a Python plugin took 0.27 s to start on a loaded machine (0.3 s failed
    # its shutdown there).
    result = cli("plugins", "check", str(folder), "--timeout", "1")
    assert result.exit_code == 1
    assert "FAIL  stream" in result.stdout and "PASS  shutdown" in result.stdout


def test_check_names_a_missing_main_file_before_starting_anything(
    cli: RunCli, tmp_path: Path
) -> None:
    folder = tmp_path / "unbuilt"
    folder.mkdir()
    (folder / "package.json").write_text(
        json.dumps(
            {
                "name": "unbuilt",
                "version": "1.0.0",
                "main": "dist/index.js",
                "modelport": {"plugin": {"type": "llmProvider", "triggers": ["startup"]}},
            }
        )
    )
    result = cli("plugins", "check", str(folder))
    assert result.exit_code == 1
    [line] = result.stdout.splitlines()  # one line, and no start was tried
    assert line.startswith("FAIL  manifest")
    assert f"its main file {folder / 'dist' / 'index.js'} does not exist" in line
    assert "0 passed, 1 failed" in result.stderr


def test_check_names_a_missing_script_of_a_toml_manifest(cli: RunCli, tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "p", ["python", "plugin.py"])
    result = cli("plugins", "check", str(folder))
    assert result.exit_code == 1
    [line] = result.stdout.splitlines()
    assert f"its script {folder / 'plugin.py'} does not exist" in line
    assert "modelport-plugin.toml" in line


def test_new_refuses_a_bad_language_or_name(cli: RunCli, tmp_path: Path) -> None:
    assert cli("plugins", "new", "x", "--lang", "go").exit_code == 1
    result = cli("plugins", "new", "Bad Name", "--dir", str(tmp_path / "b"))
    assert result.exit_code == 1 and "must be lower case" in result.stderr


def test_trust_then_list(cli: RunCli, home: Path, _cwd: Path) -> None:
    write_plugin(home / "plugins", "global-one", ["x"])
    folder = _cwd / ".modelport" / "plugins"
    write_plugin(folder, "proj-one", ["y"], triggers=["startup"])

    listed = json.loads(cli("plugins", "list", "--json").stdout)
    by_name = {p["name"]: p for p in listed["plugins"]}
    assert by_name["global-one"]["source"] == "home"
    assert by_name["proj-one"]["source"] == "project" and not by_name["proj-one"]["trusted"]
    table = cli("plugins", "list")
    assert "proj-one" in table.stdout and "plugins trust" in table.stderr

    result = cli("plugins", "trust")
    assert result.exit_code == 0 and "trusted proj-one" in result.stdout
    assert TrustStore(home).is_trusted(folder / "proj-one")
    listed = json.loads(cli("plugins", "list", "--json").stdout)
    assert {p["name"]: p for p in listed["plugins"]}["proj-one"]["trusted"]

    assert cli("plugins", "trust", "--revoke").exit_code == 0
    assert not TrustStore(home).is_trusted(folder / "proj-one")


def test_trust_without_a_project(cli: RunCli) -> None:
    result = cli("plugins", "trust")
    assert result.exit_code == 1 and "no .modelport/ folder" in result.stderr


def test_start_stop_logs_against_a_running_gateway(
    cli: RunCli,
    home: Path,
    gateway_factory: GatewayFactory,
) -> None:
    write_plugin(home / "plugins", "p", scripted("ok"))
    gateway = gateway_factory(create_app(parse_config(""), ledger=False))
    url = gateway.url

    started = cli("plugins", "start", "p", "--gateway", url)
    assert (
        started.exit_code == 0 and "running" in started.stderr and "scripted/m1" in started.stderr
    )
    listed = json.loads(cli("plugins", "list", "--gateway", url, "--json").stdout)
    assert listed["plugins"][0]["state"] == "running"
    logs = cli("plugins", "logs", "p", "--gateway", url)
    assert "scripted plugin starting in mode ok" in logs.stdout
    assert "stopped" in cli("plugins", "stop", "p", "--gateway", url).stderr
    assert cli("plugins", "load", "--gateway", url).exit_code == 0
    missing = cli("plugins", "start", "nope", "--gateway", url)
    assert missing.exit_code == 1 and "No plugin named 'nope'" in missing.stderr


def test_gateway_commands_send_the_admin_key(
    cli: RunCli, home: Path, gateway_factory: GatewayFactory
) -> None:
    write_plugin(home / "plugins", "p", scripted("ok"))
    keys = '[gateway]\nkey = "gw-key-5c1d"\nadmin_key = "admin-key-9e4b"\n'
    gateway = gateway_factory(create_app(parse_config(keys), ledger=False))
    refused = cli("plugins", "load", "--gateway", gateway.url)
    assert refused.exit_code == 1 and "(HTTP 401)" in refused.stderr
    (home / "config.toml").write_text(keys)  # where the CLI looks for the admin key
    assert cli("plugins", "load", "--gateway", gateway.url).exit_code == 0
    started = cli("plugins", "start", "p", "--gateway", gateway.url)
    assert started.exit_code == 0 and "running" in started.stderr


def test_a_gateway_that_is_not_running(cli: RunCli) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli("plugins", "load", "--gateway", f"http://127.0.0.1:{port}")
    assert result.exit_code == 1 and "cannot reach the gateway" in result.stderr


def test_list_shows_registration_problems_in_the_note_column(
    cli: RunCli, home: Path, gateway_factory: GatewayFactory
) -> None:
    write_plugin(home / "plugins", "p", scripted("register_twice"))
    gateway = gateway_factory(create_app(parse_config(""), ledger=False))
    assert cli("plugins", "start", "p", "--gateway", gateway.url).exit_code == 0
    listed = cli("plugins", "list", "--gateway", gateway.url)
    [row] = [line for line in listed.stdout.splitlines() if " p " in line]
    assert "provider.register refused: Provider id 'scripted' is taken" in row


def test_list_says_why_a_folder_was_skipped_and_shows_broken_manifests(
    cli: RunCli, home: Path
) -> None:
    write_garbage_plugins(home / "plugins")
    write_plugin(home / "plugins", "good", scripted("ok"))
    result = cli("plugins", "list")
    assert result.exit_code == 0, result.stderr
    skipped = home / "plugins" / "a-library"
    assert f"skipped {skipped}: " in result.stderr.replace("\n", " ")
    assert "not a modelport plugin" in result.stderr.replace("\n", " ")
    listed = json.loads(cli("plugins", "list", "--json").stdout)
    states = {p["name"]: p["state"] for p in listed["plugins"]}
    assert states["good"] == "loaded" and states["objects"] == "invalid"
    assert listed["skipped"][0]["reason"].startswith(str(skipped / "package.json"))
