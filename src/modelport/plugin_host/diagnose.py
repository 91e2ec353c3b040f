"""Doctor-style findings about plugins, without starting any of them.

``modelport doctor`` (and anything else that wants a health report) calls
:func:`diagnose`: one :class:`Finding` per plugin folder and per
``modelport.providers`` package, each ``ok``, ``warning`` or ``error`` with a
message that says what to do. A broken package is named; the others are
still checked. A folder that was skipped (a ``package.json`` without a plugin
section) and a plugins folder that cannot be read are warnings that say why,
so nothing is left out without a word.

:func:`launch_problem` says why a manifest's command cannot start (its program
missing, its main file missing) without starting it; ``modelport plugins
check`` asks it before spawning anything.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelport.plugin_host.discovery import PluginDir, scan
from modelport.plugin_host.entrypoints import entry_point_plugins
from modelport.plugin_host.manifest import MANIFEST_NAME, Manifest
from modelport.plugin_host.process import resolve_command
from modelport.trust import TrustStore

__all__ = ["Finding", "diagnose", "launch_problem"]

#: Arguments of a manifest's command taken for its script: a missing one is named.
_SCRIPT_SUFFIXES = (".py", ".js", ".mjs", ".cjs", ".ts")

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True)
class Finding:
    name: str
    kind: Literal["plugin", "package", "folder"]
    level: Level
    message: str


def _program_found(program: str, cwd: Path) -> bool:
    if program == sys.executable:
        return True
    if "/" in program or "\\" in program:
        path = Path(program)
        return (path if path.is_absolute() else cwd / path).exists()
    return shutil.which(program) is not None


def _script(arguments: list[str]) -> str | None:
    """The script a command runs (``python plugin.py``), if an argument names one."""
    for argument in arguments:
        if not argument.startswith("-") and argument.endswith(_SCRIPT_SUFFIXES):
            return argument
    return None


def launch_problem(manifest: Manifest) -> str | None:
    """Why ``manifest``'s command cannot start, found without starting it; ``None`` if none.

    One line naming what is missing: the program, or the main file
    (``package.json``'s ``main``, or the script a ``modelport-plugin.toml``
    command runs).
    """
    command = resolve_command(manifest.command)
    if not _program_found(command[0], manifest.dir):
        return f"its command {command[0]!r} is not installed or not on PATH"
    if manifest.entry is not None:
        if not (manifest.dir / manifest.entry).is_file():
            return (
                f"its main file {manifest.dir / manifest.entry} does not exist: build the "
                f"plugin first (npm install, then npm run build, in {manifest.dir}), or "
                "correct 'main' in its package.json"
            )
        return None
    script = _script(command[1:])
    if script is not None and not (manifest.dir / script).is_file():
        return (
            f"its script {manifest.dir / script} does not exist: correct 'command' in "
            f"its {MANIFEST_NAME}"
        )
    return None


def _folder_problem(folder: PluginDir) -> str | None:
    """Why a plugins folder that is there cannot be looked into, if it cannot."""
    path = folder.path
    try:
        if not path.exists():
            return None
        if not path.is_dir():
            return f"{path} is not a folder, so no plugin in it is loaded"
        next(path.iterdir(), None)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc}), so no plugin in it is loaded"
    return None


def diagnose(dirs: list[PluginDir], home: Path, *, load_packages: bool = True) -> list[Finding]:
    """Check every plugin folder under ``dirs`` and every installed provider package."""
    findings: list[Finding] = []
    trust = TrustStore(home)
    for folder in dirs:
        problem = _folder_problem(folder)
        if problem is not None:
            findings.append(Finding(folder.path.name, "folder", "warning", problem))
    scanned = scan(dirs)
    for skipped in scanned.skipped:
        findings.append(
            Finding(skipped.dir.name, "plugin", "warning", f"skipped: {skipped.reason}")
        )
    for plugin in scanned.plugins:
        manifest = plugin.manifest
        if manifest is None:
            findings.append(Finding(plugin.name, "plugin", "error", plugin.error or "invalid"))
            continue
        program = resolve_command(manifest.command)[0]
        if not _program_found(program, manifest.dir):
            message = f"its command {program!r} is not installed or not on PATH"
            findings.append(Finding(plugin.name, "plugin", "error", message))
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
        elif (problem := launch_problem(manifest)) is not None:
            findings.append(Finding(plugin.name, "plugin", "error", problem))
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
