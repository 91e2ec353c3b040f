"""In-process plugins: ``modelport.providers`` entry points, a broken one reported by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.errors import ConfigError
from modelport.plugin_host.entrypoints import entry_point_plugins
from modelport.providers import load_factory


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two installed-looking packages: one good provider, one whose import fails."""
    (tmp_path / "good_provider.py").write_text(
        "from modelport.providers import BaseProvider\n\n"
        "class GoodProvider(BaseProvider):\n    pass\n"
    )
    (tmp_path / "broken_provider.py").write_text("raise ImportError('needs libfoo')\n")
    for name, target in (
        ("good", "good_provider:GoodProvider"),
        ("broken", "broken_provider:Provider"),
    ):
        dist = tmp_path / f"mp_{name}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: mp-{name}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[modelport.providers]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_entry_points_are_listed_and_a_broken_one_named(packages: Path) -> None:
    found = {p.name: p for p in entry_point_plugins()}
    assert (
        found["good"].ok and found["good"].package == "mp-good" and found["good"].version == "1.0"
    )
    assert found["broken"].ok is False and "needs libfoo" in found["broken"].error
    unloaded = {p.name: p for p in entry_point_plugins(load=False)}
    assert unloaded["broken"].ok is None  # listing alone imports nothing


def test_load_factory_finds_the_good_one_and_names_the_broken_one(packages: Path) -> None:
    assert load_factory("good").__name__ == "GoodProvider"
    with pytest.raises(ConfigError, match="'broken' failed to load.*needs libfoo"):
        load_factory("broken")


def test_diagnose_reports_plugins_and_packages(packages: Path, tmp_path: Path) -> None:
    import sys

    from modelport.plugin_host.diagnose import diagnose
    from modelport.plugin_host.discovery import PluginDir
    from tests.plugin_host.conftest import write_plugin

    home, project = tmp_path / "h" / "plugins", tmp_path / "p" / ".modelport" / "plugins"
    write_plugin(home, "fine", [sys.executable, "x.py"], files={"x.py": ""})
    write_plugin(home, "missing", ["no-such-program-xyz"])
    write_plugin(project, "untrusted", ["python", "x.py"])
    dirs = [PluginDir(home, "home"), PluginDir(project, "project")]
    found = {(f.kind, f.name): f for f in diagnose(dirs, tmp_path / "h")}
    assert found[("plugin", "fine")].level == "ok"
    assert found[("plugin", "missing")].level == "error"
    assert "not installed" in found[("plugin", "missing")].message
    assert found[("plugin", "untrusted")].level == "warning"
    assert found[("package", "good")].level == "ok"
    assert found[("package", "broken")].level == "error"
    assert "needs libfoo" in found[("package", "broken")].message
