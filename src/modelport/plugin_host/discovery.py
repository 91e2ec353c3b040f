"""Finding plugins: shipped, ``MODELPORT_HOME/plugins/``, and the project's ``.modelport/plugins/``.

The folders are always passed in (:func:`discover` takes them as arguments;
:func:`default_dirs` computes the usual ones from a home and a project
folder), so tests hand over temporary directories and no code here asks
whether it runs under test. Later folders override earlier ones by plugin
name, which is how a project's plugin replaces a global one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelport.plugin_host.manifest import (
    MANIFEST_NAME,
    PACKAGE_JSON,
    Manifest,
    ManifestError,
    NotAPlugin,
    load_manifest,
)

__all__ = [
    "SHIPPED_DIR",
    "DiscoveredPlugin",
    "PluginDir",
    "Scan",
    "SkippedFolder",
    "Source",
    "default_dirs",
    "discover",
    "scan",
]

Source = Literal["shipped", "home", "project"]

#: Plugins that ship inside the modelport package (a folder per plugin; none ship yet).
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


@dataclass(frozen=True)
class PluginDir:
    """A folder that holds plugin folders, and where it comes from.

    Plugins from a ``project`` folder run only once the user trusts it.
    """

    path: Path
    source: Source

    @property
    def needs_trust(self) -> bool:
        return self.source == "project"


@dataclass(frozen=True, kw_only=True)
class DiscoveredPlugin:
    """One plugin folder: its manifest, or the error that stopped us reading it."""

    name: str
    dir: Path
    origin: PluginDir
    manifest: Manifest | None = None
    error: str | None = None
    overrides: Path | None = None


def default_dirs(home: Path, project_dir: Path | None = None) -> list[PluginDir]:
    """Shipped, then ``home/plugins``, then ``project_dir/.modelport/plugins``."""
    dirs = [PluginDir(SHIPPED_DIR, "shipped"), PluginDir(home / "plugins", "home")]
    if project_dir is not None:
        dirs.append(PluginDir(project_dir / ".modelport" / "plugins", "project"))
    return dirs


@dataclass(frozen=True)
class SkippedFolder:
    """A folder that looks like a plugin but is not one (a ``package.json`` without a
    plugin section), and why: ``modelport plugins list`` shows it rather than hiding it."""

    dir: Path
    origin: PluginDir
    reason: str


@dataclass(frozen=True)
class Scan:
    """What :func:`scan` found: the plugins, and the folders it skipped."""

    plugins: list[DiscoveredPlugin]
    skipped: list[SkippedFolder]


def discover(dirs: Iterable[PluginDir]) -> list[DiscoveredPlugin]:
    """Every plugin under ``dirs`` (see :func:`scan`)."""
    return scan(dirs).plugins


def _exists(path: Path) -> bool:
    try:
        path.lstat()
    except OSError:
        return False
    return True


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return []  # unreadable: as if it held nothing (diagnose says why)


def _read_one(child: Path, origin: PluginDir) -> DiscoveredPlugin | SkippedFolder | None:
    """One entry of a plugins folder: a plugin, a skipped folder, or None (not a plugin)."""
    if child.is_symlink() and not child.exists():
        return DiscoveredPlugin(
            name=child.name,
            dir=child,
            origin=origin,
            error=f"{child} is a symbolic link that leads nowhere (a loop, or a missing target)",
        )
    if not child.is_dir():
        return None
    if not (_exists(child / MANIFEST_NAME) or _exists(child / PACKAGE_JSON)):
        return None
    try:
        manifest = load_manifest(child)
    except NotAPlugin as exc:
        return SkippedFolder(child, origin, str(exc))
    except ManifestError as exc:
        return DiscoveredPlugin(name=child.name, dir=child, origin=origin, error=str(exc))
    except Exception as exc:  # whatever a broken folder throws, it is that plugin's problem
        error = f"{child}: its manifest could not be read ({type(exc).__name__}: {exc})"
        return DiscoveredPlugin(name=child.name, dir=child, origin=origin, error=error)
    return DiscoveredPlugin(name=manifest.name, dir=child, origin=origin, manifest=manifest)


def scan(dirs: Iterable[PluginDir]) -> Scan:
    """Every plugin under ``dirs``, later folders overriding earlier ones by name.

    A folder without a manifest is not a plugin and is skipped; a
    ``package.json`` without a plugin section is skipped and listed with the
    reason; a manifest that fails validation is kept with its error (named by
    its folder), so that it is reported rather than silently missing. Nothing
    a folder holds makes this raise.
    """
    found: dict[str, DiscoveredPlugin] = {}
    skipped: list[SkippedFolder] = []
    for origin in dirs:
        for child in _children(origin.path):
            try:
                plugin = _read_one(child, origin)
            except OSError as exc:  # a folder we may not even look into
                error = f"{child}: cannot be read ({exc.strerror or exc})"
                plugin = DiscoveredPlugin(name=child.name, dir=child, origin=origin, error=error)
            if plugin is None:
                continue
            if isinstance(plugin, SkippedFolder):
                skipped.append(plugin)
                continue
            previous = found.get(plugin.name)
            if previous is not None and previous.origin == origin:
                # Two folders in one place claim one name: neither wins silently.
                found[plugin.name] = DiscoveredPlugin(
                    name=plugin.name,
                    dir=child,
                    origin=origin,
                    error=f"{child} and {previous.dir} both declare the plugin name "
                    f"{plugin.name!r}; rename one of them",
                )
                continue
            if previous is not None:
                plugin = DiscoveredPlugin(
                    name=plugin.name,
                    dir=plugin.dir,
                    origin=origin,
                    manifest=plugin.manifest,
                    error=plugin.error,
                    overrides=previous.dir,
                )
            found[plugin.name] = plugin
    return Scan(list(found.values()), skipped)
