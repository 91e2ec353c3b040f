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

from modelport.plugin_host.manifest import MANIFEST_NAME, Manifest, ManifestError, load_manifest

__all__ = [
    "SHIPPED_DIR",
    "DiscoveredPlugin",
    "PluginDir",
    "Source",
    "default_dirs",
    "discover",
]

Source = Literal["shipped", "home", "project"]

#: Plugins that ship inside the modelport package (a folder per plugin).
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


def discover(dirs: Iterable[PluginDir]) -> list[DiscoveredPlugin]:
    """Every plugin under ``dirs``, later folders overriding earlier ones by name.

    A folder without a manifest is not a plugin and is skipped; a manifest that
    fails validation is kept with its error (named by its folder), so that it
    is reported rather than silently missing.
    """
    found: dict[str, DiscoveredPlugin] = {}
    for origin in dirs:
        if not origin.path.is_dir():
            continue
        for child in sorted(origin.path.iterdir()):
            if not child.is_dir() or not (child / MANIFEST_NAME).is_file():
                continue
            try:
                manifest = load_manifest(child)
            except ManifestError as exc:
                plugin = DiscoveredPlugin(name=child.name, dir=child, origin=origin, error=str(exc))
            else:
                plugin = DiscoveredPlugin(
                    name=manifest.name, dir=child, origin=origin, manifest=manifest
                )
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
    return list(found.values())
