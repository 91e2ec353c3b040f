"""Doctor-style findings about plugins, without starting any of them.

``modelport doctor`` (and anything else that wants a health report) calls
:func:`diagnose`: one :class:`Finding` per plugin folder and per
``modelport.providers`` package, each ``ok``, ``warning`` or ``error`` with a
message that says what to do. A broken package is named; the others are
still checked.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelport.plugin_host.discovery import PluginDir, discover
from modelport.plugin_host.entrypoints import entry_point_plugins
from modelport.plugin_host.process import resolve_command
from modelport.trust import TrustStore

__all__ = ["Finding", "diagnose"]

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Finding:
    name: str
    kind: Literal["plugin", "package"]
    level: Level
    message: str


def _program_found(program: str, cwd: Path) -> bool:
    if program == sys.executable:
        return True
    if "/" in program or "\\" in program:
        path = Path(program)
        return (path if path.is_absolute() else cwd / path).exists()
    return shutil.which(program) is not None


def diagnose(dirs: list[PluginDir], home: Path, *, load_packages: bool = True) -> list[Finding]:
    """Check every plugin folder under ``dirs`` and every installed provider package."""
    findings: list[Finding] = []
    trust = TrustStore(home)
    for plugin in discover(dirs):
        manifest = plugin.manifest
        if manifest is None:
            findings.append(Finding(plugin.name, "plugin", "error", plugin.error or "invalid"))
            continue
        program = resolve_command(manifest.command)[0]
        if not _program_found(program, manifest.dir):
            findings.append(
                Finding(
                    plugin.name,
                    "plugin",
                    "error",
                    f"its command {program!r} is not installed or not on PATH",
                )
            )
        elif plugin.origin.needs_trust and not (verdict := trust.check(plugin.dir, manifest.hash)):
            findings.append(
                Finding(
                    plugin.name,
                    "plugin",
                    "warning",
                    f"project plugin not trusted ({verdict.reason}): review {plugin.dir}, "
                    f"then run 'modelport plugins trust {plugin.origin.path}'",
                )
            )
        elif manifest.entry is not None and not (manifest.dir / manifest.entry).is_file():
            findings.append(
                Finding(
                    plugin.name,
                    "plugin",
                    "error",
                    f"its main file {manifest.entry} does not exist: build the plugin first "
                    f"(npm install, then npm run build, in {plugin.dir})",
                )
            )
        else:
            where = f"{plugin.origin.source}, {plugin.dir}"
            findings.append(Finding(plugin.name, "plugin", "ok", f"{manifest.version} ({where})"))
    for package in entry_point_plugins(load=load_packages):
        if package.ok is False:
            findings.append(Finding(package.name, "package", "error", package.error or "broken"))
        else:
            findings.append(
                Finding(package.name, "package", "ok", f"{package.target} ({package.package})")
            )
    return findings
