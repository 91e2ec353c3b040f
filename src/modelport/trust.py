"""Trust in a project folder's plugins and config, kept in ``MODELPORT_HOME/trusted-plugins.json``.

A project's ``.modelport/plugins/`` runs code from a checked-out repository,
so none of it starts until the user says ``modelport plugins trust``. Trust is
granted to a folder by its resolved path, to the exact bytes of each
manifest in it, *and* to every file of each plugin (:func:`plugin_files`):
a manifest or a file that changes (a ``git pull`` that brings a new
``index.js``), or a plugin that appears later, needs trust again, and
:meth:`TrustStore.check` names what changed. Left out of the files: ``.git``,
``node_modules``, virtualenvs (a folder holding ``pyvenv.cfg``) and Python's
bytecode caches, which tools rewrite without the author changing anything.

Trusting a project's ``.modelport/plugins`` folder also trusts the
``.modelport/config.toml`` beside it, by the SHA-256 of its bytes: until then
a project's config may set only ``default_model`` and ``[aliases]`` (see
:mod:`modelport.config`), and a config that changes needs trust again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.plugin_protocol import MANIFEST_NAME, PACKAGE_JSON

__all__ = [
    "TRUST_FILE",
    "TrustCheck",
    "TrustStore",
    "config_hash",
    "plugin_files",
    "plugins_folder",
    "project_config_file",
]

TRUST_FILE = "trusted-plugins.json"
_CONFIG_NAME = "config.toml"
_PROJECT_DIR = ".modelport"


def plugins_folder(path: Path) -> Path:
    """The ``.modelport/plugins`` folder a path stands for (a project or the folder itself)."""
    path = path.resolve()
    nested = path / ".modelport" / "plugins"
    if not nested.is_dir() and path.name == "plugins" and path.is_dir():
        return path
    return nested


def project_config_file(folder: Path) -> Path | None:
    """The ``config.toml`` beside ``folder``, if ``folder`` is a ``.modelport/plugins``."""
    folder = folder.resolve()
    if folder.name != "plugins" or folder.parent.name != _PROJECT_DIR:
        return None
    return folder.parent / _CONFIG_NAME


def config_hash(data: bytes) -> str:
    """SHA-256 of a config file's bytes: what trust in a project's config is granted to."""
    return hashlib.sha256(data).hexdigest()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: Folders a plugin's trust does not cover: version control, and dependencies
#: that package managers rewrite (a virtualenv is any folder with pyvenv.cfg).
EXCLUDED_DIRS = frozenset({".git", "node_modules", "__pycache__"})


def _manifest_file(plugin_dir: Path) -> Path:
    """The manifest the host reads: the TOML file, else ``package.json``."""
    toml = plugin_dir / MANIFEST_NAME
    return toml if toml.is_file() else plugin_dir / PACKAGE_JSON


def _is_plugin_folder(path: Path) -> bool:
    return path.is_dir() and ((path / MANIFEST_NAME).is_file() or (path / PACKAGE_JSON).is_file())


def plugin_files(plugin_dir: Path) -> dict[str, str]:
    """Every file of a plugin, by path relative to its folder, with what trust binds.

    A file is bound by the SHA-256 of its bytes; a symbolic link by where it
    points (``link:<target>``), never followed. See :data:`EXCLUDED_DIRS`.
    """
    files: dict[str, str] = {}
    for root, dirs, names in os.walk(plugin_dir, followlinks=False):
        here = Path(root)
        kept = []
        for name in sorted(dirs):
            path = here / name
            if path.is_symlink():
                names.append(name)  # a link to a folder: bound by its target, not walked
            elif name not in EXCLUDED_DIRS and not (path / "pyvenv.cfg").exists():
                kept.append(name)
        dirs[:] = kept
        for name in names:
            path = here / name
            relative = path.relative_to(plugin_dir).as_posix()
            if name.endswith(".pyc"):
                continue
            if path.is_symlink():
                files[relative] = f"link:{os.readlink(path)}"
                continue
            try:
                files[relative] = _file_hash(path)
            except OSError as exc:
                files[relative] = f"unreadable:{exc.errno}"
    return dict(sorted(files.items()))


@dataclass(frozen=True)
class TrustCheck:
    """Whether a plugin is trusted as it is now, and if not, why (what changed)."""

    trusted: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.trusted


def _changes(trusted: dict[str, Any], now: dict[str, str]) -> str:
    changed = [f for f in now if f in trusted and trusted[f] != now[f]]
    added = [f for f in now if f not in trusted]
    removed = [f for f in trusted if f not in now]
    parts = [f"{f} changed" for f in changed]
    parts += [f"{f} was added" for f in added] + [f"{f} was removed" for f in removed]
    shown = ", ".join(parts[:5]) + (f" and {len(parts) - 5} more" if len(parts) > 5 else "")
    return f"{shown} since you trusted it"


class TrustStore:
    """Which project plugin folders, and which manifests in them, the user trusts."""

    def __init__(self, home: Path) -> None:
        self.path = home / TRUST_FILE

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def _read(self) -> dict[str, dict[str, Any]]:
        return self._load().get("folders", {})

    def _read_configs(self) -> dict[str, str]:
        return self._load().get("configs", {})

    def _write(
        self, folders: dict[str, dict[str, Any]], configs: dict[str, str] | None = None
    ) -> None:
        data: dict[str, object] = {
            "folders": folders,
            "configs": self._read_configs() if configs is None else configs,
        }
        # MODELPORT_HOME is its owner's alone (mkstemp makes the file itself 0600).
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Write-then-rename so a crash never leaves half a trust file behind.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".trust-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    def trust(self, folder: Path) -> dict[str, str]:
        """Trust every plugin now in ``folder``, manifest and files; returns plugin
        folder name → manifest hash.

        The project's ``.modelport/config.toml`` beside ``folder`` is trusted too,
        as it is now.
        """
        folder = folder.resolve()
        records = {
            child.name: {
                "manifest": _file_hash(_manifest_file(child)),
                "files": plugin_files(child),
            }
            for child in (sorted(folder.iterdir()) if folder.is_dir() else [])
            if _is_plugin_folder(child)
        }
        hashes = {name: str(record["manifest"]) for name, record in records.items()}
        folders = self._read()
        folders[str(folder)] = records
        configs = self._read_configs()
        config = project_config_file(folder)
        if config is not None:
            try:
                configs[str(config)] = config_hash(config.read_bytes())
            except OSError:  # no config file (yet): nothing to trust
                configs.pop(str(config), None)
        self._write(folders, configs)
        return hashes

    def revoke(self, folder: Path) -> bool:
        """Withdraw trust from ``folder`` (and the project config beside it)."""
        folders = self._read()
        configs = self._read_configs()
        removed = folders.pop(str(folder.resolve()), None) is not None
        config = project_config_file(folder)
        if config is not None and configs.pop(str(config), None) is not None:
            removed = True
        if removed:
            self._write(folders, configs)
        return removed

    def trust_config(self, path: Path) -> str:
        """Trust the project config file at ``path`` as it is now; returns its hash."""
        path = path.resolve()
        digest = config_hash(path.read_bytes())
        configs = self._read_configs()
        configs[str(path)] = digest
        self._write(self._read(), configs)
        return digest

    def is_config_trusted(self, path: Path, digest: str | None = None) -> bool:
        """Whether the config file at ``path`` is trusted with these contents.

        ``digest`` is :func:`config_hash` of the bytes the caller read (so what
        is checked is what is used); without it the file is read again.
        """
        recorded = self._read_configs().get(str(path.resolve()))
        if not recorded:
            return False
        if digest is None:
            try:
                digest = config_hash(path.read_bytes())
            except OSError:
                return False
        return recorded == digest

    def is_trusted(
        self,
        plugin_dir: Path,
        digest: str | None = None,
        files: dict[str, str] | None = None,
    ) -> bool:
        """Whether the plugin in ``plugin_dir`` is trusted as it is (see :meth:`check`)."""
        return self.check(plugin_dir, digest, files).trusted

    def check(
        self,
        plugin_dir: Path,
        digest: str | None = None,
        files: dict[str, str] | None = None,
    ) -> TrustCheck:
        """Whether the plugin in ``plugin_dir`` has trust for this manifest and these files.

        ``digest`` is the SHA-256 of the manifest bytes the caller parsed and
        ``files`` what :func:`plugin_files` gave it (so what is checked is what
        will run); without them both are read again. A plugin is known by its
        name inside the resolved plugins folder, as :meth:`trust` records it,
        so a symlinked plugin folder works too.
        """
        records = self._read().get(str(plugin_dir.parent.resolve()))
        record = records.get(plugin_dir.name) if records else None
        if record is None:
            return TrustCheck(False, "it was never trusted")
        if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
            return TrustCheck(False, "it was trusted before trust covered a plugin's files")
        if digest is None:
            try:
                digest = _file_hash(_manifest_file(plugin_dir))
            except OSError:
                return TrustCheck(False, "its manifest cannot be read")
        if record.get("manifest") != digest:
            return TrustCheck(False, "its manifest changed since you trusted it")
        now = plugin_files(plugin_dir) if files is None else files
        if record["files"] != now:
            return TrustCheck(False, _changes(record["files"], now))
        return TrustCheck(True)

    def trusted_folders(self) -> list[str]:
        return sorted(self._read())
