"""Project plugins start only once trusted, and a changed manifest needs trust again."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelport.errors import ConfigError
from modelport.plugin_host.discovery import PluginDir
from modelport.trust import TrustStore, plugin_files, plugins_folder
from tests.plugin_host.conftest import HostFactory, scripted, write_plugin


def test_trust_is_by_path_and_manifest_hash(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    folder = project / ".modelport" / "plugins"
    plugin = write_plugin(folder, "p", ["x"])
    store = TrustStore(tmp_path / "home")
    assert not store.is_trusted(plugin)
    assert plugins_folder(project) == folder.resolve()
    assert plugins_folder(folder) == folder.resolve()
    assert list(store.trust(plugins_folder(project))) == ["p"]
    assert store.is_trusted(plugin)
    assert store.trusted_folders() == [str(folder.resolve())]

    (plugin / "modelport-plugin.toml").write_text(
        (plugin / "modelport-plugin.toml").read_text().replace('["x"]', '["curl", "evil"]')
    )
    assert not store.is_trusted(plugin)  # a changed manifest needs trust again
    late = write_plugin(folder, "late", ["y"])
    assert not store.is_trusted(late)  # so does a plugin added after trust
    store.trust(folder)
    assert store.is_trusted(plugin) and store.is_trusted(late)
    assert store.revoke(project / ".modelport" / "plugins")
    assert not store.is_trusted(plugin)


async def test_the_host_starts_project_plugins_only_when_trusted(
    make_host: HostFactory, home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "proj" / ".modelport" / "plugins"
    write_plugin(folder, "proj-plugin", scripted("ok", "proj"), triggers=["startup"])
    host = make_host(PluginDir(folder, "project"))
    await host.load()
    await host.start_startup_plugins()
    info = host.describe("proj-plugin")
    assert info["state"] == "loaded" and not info["trusted"] and info["source"] == "project"
    with pytest.raises(ConfigError, match="not trusted.*modelport plugins trust"):
        await host.start("proj-plugin")

    TrustStore(home).trust(folder)
    await host.start_startup_plugins()
    assert host.describe("proj-plugin")["state"] == "running"
    assert "proj" in host.providers


def test_trusting_a_project_folder_trusts_its_config_by_content(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    folder = project / ".modelport" / "plugins"
    write_plugin(folder, "p", ["x"])
    config = project / ".modelport" / "config.toml"
    config.write_text('[connections.work]\nbase_url = "http://a/v1"\n')
    store = TrustStore(tmp_path / "home")
    assert not store.is_config_trusted(config)

    store.trust(plugins_folder(project))
    assert store.is_config_trusted(config)
    assert store.is_trusted(folder / "p")  # the plugin records are unchanged
    config.write_text('[connections.work]\nbase_url = "http://b/v1"\n')
    assert not store.is_config_trusted(config)  # a changed config needs trust again

    digest = store.trust_config(config)
    assert store.is_config_trusted(config, digest)
    assert not store.is_config_trusted(config, "0" * 64)  # what was read is what counts
    store.trust(folder)  # trusting plugins again keeps the config record
    assert store.is_config_trusted(config) and store.is_trusted(folder / "p")

    assert store.revoke(folder)
    assert not store.is_config_trusted(config) and not store.is_trusted(folder / "p")


def test_a_project_without_plugins_or_config_can_still_be_trusted(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / ".modelport").mkdir(parents=True)
    store = TrustStore(tmp_path / "home")
    assert store.trust(plugins_folder(project)) == {}  # no plugins folder: nothing to list
    config = project / ".modelport" / "config.toml"
    config.write_text('default_model = "a/b"\n')
    assert not store.is_config_trusted(config)  # it did not exist when trust was given
    store.trust(plugins_folder(project))
    assert store.is_config_trusted(config)


def test_the_trust_command_covers_the_project_config(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelport.config import load_config

    project = tmp_path / "proj"
    write_plugin(project / ".modelport" / "plugins", "p", ["x"])
    (project / ".modelport" / "config.toml").write_text(
        '[connections.work]\nbase_url = "http://proj/v1"\n'
    )
    monkeypatch.chdir(project)
    assert "work" not in load_config().connections
    result = cli("plugins", "trust")
    assert result.exit_code == 0, result.stderr
    assert load_config().connections["work"].base_url == "http://proj/v1"


def test_the_trust_command_trusts_a_project_that_has_only_a_config(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The warning about an ignored project config tells the user to run this
    # command, so it must work without a plugins folder.
    from modelport.config import load_config

    project = tmp_path / "proj"
    (project / ".modelport").mkdir(parents=True)
    config = project / ".modelport" / "config.toml"
    config.write_text('[connections.work]\nbase_url = "http://proj/v1"\n')
    monkeypatch.chdir(project)
    assert "work" not in load_config().connections
    result = cli("plugins", "trust")
    assert result.exit_code == 0, result.stderr
    assert f"trusted {config.resolve()}" in result.stdout
    assert load_config().connections["work"].base_url == "http://proj/v1"


async def test_trust_covers_the_manifest_that_runs_not_the_one_read_before(
    make_host: HostFactory, home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "proj" / ".modelport" / "plugins"
    plugin = write_plugin(folder, "p", scripted("ok", "from-a"))
    host = make_host(PluginDir(folder, "project"))
    await host.load()  # the host parsed manifest A
    manifest = plugin / "modelport-plugin.toml"
    manifest.write_text(manifest.read_text().replace("from-a", "from-b"))
    TrustStore(home).trust(folder)  # the user reviewed and trusted B
    assert not host.is_trusted("p")  # what the host holds is A, and nobody trusted A
    await host.start("p")
    assert list(host.providers) == ["from-b"]  # B runs, never A
    assert host.is_trusted("p")


async def test_a_changed_manifest_is_not_restarted_and_not_retried(
    make_host: HostFactory, home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "proj" / ".modelport" / "plugins"
    plugin = write_plugin(folder, "p", scripted("ok"), triggers=["startup"])
    TrustStore(home).trust(folder)
    host = make_host(PluginDir(folder, "project"), restart_backoff=0.05, max_restarts=5)
    await host.load()
    await host.start_startup_plugins()
    pid = host.describe("p")["pid"]
    assert pid
    manifest = plugin / "modelport-plugin.toml"
    manifest.write_text(manifest.read_text() + 'description = "changed upstream"\n')
    os.kill(pid, signal.SIGKILL)  # it crashes; the restart must see the new manifest
    for _ in range(60):
        await asyncio.sleep(0.05)
    record = host._plugins["p"]
    assert record.runs == 1  # never spawned again, with either command
    assert record.crashes == 1 and record.restart_task is None  # a ConfigError is not retried
    info = host.describe("p")
    assert info["state"] == "crashed" and "not trusted" in info["error"]
    assert not info["trusted"]


async def test_a_symlinked_project_plugin_can_be_trusted(
    make_host: HostFactory, home: Path, tmp_path: Path
) -> None:
    real = write_plugin(tmp_path / "elsewhere", "real-name", scripted("ok", "linked"))
    folder = tmp_path / "proj" / ".modelport" / "plugins"
    folder.mkdir(parents=True)
    (folder / "p").symlink_to(real, target_is_directory=True)
    store = TrustStore(home)
    assert list(store.trust(folder)) == ["p"]
    assert store.is_trusted(folder / "p")
    host = make_host(PluginDir(folder, "project"))
    await host.load()
    await host.start("real-name")
    assert list(host.providers) == ["linked"]


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


async def test_a_pull_that_changes_a_trusted_plugins_code_needs_trust_again(
    make_host: HostFactory, home: Path, tmp_path: Path
) -> None:
    # The team's repository, with a project plugin whose manifest runs plugin.py.
    upstream = tmp_path / "upstream"
    plugins = upstream / ".modelport" / "plugins"
    code = (
        "import runpy, sys\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    write_plugin(plugins, "p", ["python", "plugin.py", *scripted("ok", "before")[1:]])
    (plugins / "p" / "plugin.py").write_text(code)
    _git(upstream, "init", "-q", "-b", "main")
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "-qm", "plugin")
    # My clone of it, reviewed and trusted.
    mine = tmp_path / "mine"
    _git(tmp_path, "clone", "-q", str(upstream), str(mine))
    folder = mine / ".modelport" / "plugins"
    TrustStore(home).trust(folder)
    host = make_host(PluginDir(folder, "project"))
    await host.load()
    await host.start("p")
    assert list(host.providers) == ["before"]
    await host.stop("p")

    # Upstream changes the code (not the manifest); I pull.
    (plugins / "p" / "plugin.py").write_text(code + "print('new code', file=sys.stderr)\n")
    (plugins / "p" / "helper.py").write_text("EVIL = True\n")
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "-qm", "new code")
    _git(mine, "pull", "-q", "--ff-only")

    assert (folder / "p" / "modelport-plugin.toml").read_bytes() == (
        plugins / "p" / "modelport-plugin.toml"
    ).read_bytes()  # the manifest is unchanged: only the code moved
    with pytest.raises(ConfigError, match=r"not trusted: plugin.py changed, helper.py was added"):
        await host.start("p")
    info = host.describe("p")
    assert info["state"] == "stopped" and info["pid"] is None and not info["trusted"]
    assert "run 'modelport plugins trust" in (await _start_error(host))

    TrustStore(home).trust(folder)
    await host.start("p")
    assert host.describe("p")["state"] == "running"


async def _start_error(host: object) -> str:
    try:
        await host.start("p")  # type: ignore[attr-defined]
    except ConfigError as exc:
        return str(exc)
    return ""


def test_trust_leaves_out_git_dependencies_virtualenvs_and_bytecode(tmp_path: Path) -> None:
    folder = tmp_path / "proj" / ".modelport" / "plugins"
    plugin = write_plugin(folder, "p", ["node", "index.js"], files={"index.js": "1"})
    for noise in ("node_modules/dep/index.js", ".git/HEAD", "__pycache__/x.pyc", "venv/bin/py"):
        (plugin / noise).parent.mkdir(parents=True, exist_ok=True)
        (plugin / noise).write_text("x")
    (plugin / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (plugin / "lib").mkdir()
    (plugin / "lib" / "util.js").write_text("module.exports = 1\n")
    (plugin / "linked").symlink_to(tmp_path, target_is_directory=True)
    assert list(plugin_files(plugin)) == [
        "index.js",
        "lib/util.js",
        "linked",
        "modelport-plugin.toml",
    ]
    assert plugin_files(plugin)["linked"] == f"link:{tmp_path}"

    store = TrustStore(tmp_path / "home")
    store.trust(folder)
    for noise in ("node_modules/dep/index.js", ".git/HEAD", "__pycache__/x.pyc", "venv/bin/py"):
        (plugin / noise).write_text("changed")  # npm install, git fetch, python runs
    assert store.check(plugin).trusted
    (plugin / "lib" / "util.js").write_text("module.exports = 2\n")
    assert store.check(plugin).reason == "lib/util.js changed since you trusted it"
    (plugin / "lib" / "util.js").unlink()
    assert store.check(plugin).reason == "lib/util.js was removed since you trusted it"


def test_a_trust_record_from_before_files_were_covered_needs_trust_again(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "proj" / ".modelport" / "plugins"
    plugin = write_plugin(folder, "p", ["x"])
    store = TrustStore(tmp_path / "home")
    digest = hashlib.sha256((plugin / "modelport-plugin.toml").read_bytes()).hexdigest()
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps({"folders": {str(folder.resolve()): {"p": digest}}}))
    check = store.check(plugin)
    assert not check and "before trust covered a plugin's files" in check.reason


def test_a_package_json_plugin_is_trusted_with_its_files(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    plugin = project / ".modelport" / "plugins" / "node-plugin"
    plugin.mkdir(parents=True)
    (plugin / "package.json").write_text(
        '{"name": "node-plugin", "version": "1.0.0", "main": "dist/index.js",'
        ' "modelport": {"plugin": {"type": "llmProvider"}}}'
    )
    (plugin / "dist").mkdir()
    (plugin / "dist" / "index.js").write_text("// built\\n")
    monkeypatch.chdir(project)
    result = cli("plugins", "trust")
    assert result.exit_code == 0, result.stderr
    assert "trusted node-plugin (manifest sha256" in result.stdout
    store = TrustStore(Path(os.environ["MODELPORT_HOME"]))
    assert store.check(plugin).trusted
    (plugin / "dist" / "index.js").write_text("// rebuilt after a pull\\n")
    assert store.check(plugin).reason == "dist/index.js changed since you trusted it"
