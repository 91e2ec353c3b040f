from __future__ import annotations

from pathlib import Path

from modelport.plugin_host.discovery import PluginDir, default_dirs, discover, scan
from tests.plugin_host.conftest import write_garbage_plugins, write_plugin


def test_later_folders_override_earlier_ones_by_name(tmp_path: Path) -> None:
    shipped, home, project = tmp_path / "shipped", tmp_path / "home", tmp_path / "project"
    write_plugin(shipped, "a", ["a-shipped"])
    write_plugin(home, "a", ["a-home"])
    write_plugin(home, "b", ["b-home"])
    write_plugin(project, "b", ["b-project"])
    (home / "not-a-plugin").mkdir()
    (home / "stray.txt").write_text("x")
    found = discover(
        [
            PluginDir(shipped, "shipped"),
            PluginDir(home, "home"),
            PluginDir(project, "project"),
            PluginDir(tmp_path / "missing", "home"),
        ]
    )
    by_name = {p.name: p for p in found}
    assert sorted(by_name) == ["a", "b"]
    assert by_name["a"].manifest.command == ("a-home",)
    assert by_name["a"].overrides == shipped / "a"
    assert by_name["b"].origin.source == "project" and by_name["b"].origin.needs_trust


def test_a_broken_manifest_is_kept_with_its_error(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "modelport-plugin.toml").write_text("type = 1")
    [found] = discover([PluginDir(tmp_path, "home")])
    assert found.name == "broken" and found.manifest is None and "'name' must be" in found.error


def test_two_folders_in_one_place_with_one_name_are_a_clash(tmp_path: Path) -> None:
    write_plugin(tmp_path, "x", ["one"])
    other = tmp_path / "y"
    other.mkdir()
    (other / "modelport-plugin.toml").write_text(
        (tmp_path / "x" / "modelport-plugin.toml").read_text()
    )
    [found] = discover([PluginDir(tmp_path, "home")])
    assert found.manifest is None and "both declare the plugin name 'x'" in found.error


def test_default_dirs(tmp_path: Path) -> None:
    dirs = default_dirs(tmp_path / "home", tmp_path / "proj")
    assert [d.source for d in dirs] == ["shipped", "home", "project"]
    assert dirs[1].path == tmp_path / "home" / "plugins"
    assert dirs[2].path == tmp_path / "proj" / ".modelport" / "plugins"
    assert [d.source for d in default_dirs(tmp_path)] == ["shipped", "home"]


def test_garbage_manifests_are_each_that_plugins_error_never_an_exception(
    tmp_path: Path,
) -> None:
    write_garbage_plugins(tmp_path)
    write_plugin(tmp_path, "good", ["x"], triggers=["startup"])
    found = scan([PluginDir(tmp_path, "home")])
    by_name = {p.name: p for p in found.plugins}
    assert by_name["good"].manifest is not None and by_name["good"].error is None
    broken = {name for name, p in by_name.items() if p.manifest is None}
    assert broken == {
        "objects",
        "wrong-types",
        "not-toml",
        "not-utf8",
        "huge",
        "loop",
        "loop-dir",
        "bad-json",
    }
    assert all(by_name[name].error for name in broken)
    assert "'triggers' must be" in by_name["objects"].error
    assert "leads nowhere" in by_name["loop-dir"].error
    [skipped] = found.skipped
    assert skipped.dir == tmp_path / "a-library" and "not a modelport plugin" in skipped.reason
