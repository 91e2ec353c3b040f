"""Trust in a project folder's plugins and config, kept in ``MODELPORT_HOME/trusted-plugins.json``.

A project's ``.modelport/plugins/`` runs code from a checked-out repository,
so none of it starts until the user says ``modelport plugins trust``. Trust is
granted to a folder by its resolved path *and* to the exact bytes of each
manifest in it: a manifest that changes (a new command, say) or a plugin that
appears later needs trust again.

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
from pathlib import Path

from modelport.plugin_protocol import MANIFEST_NAME

__all__ = ["TRUST_FILE", "TrustStore", "config_hash", "plugins_folder", "project_config_file"]

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


class TrustStore:
    """Which project plugin folders, and which manifests in them, the user trusts."""

    def __init__(self, home: Path) -> None:
        self.path = home / TRUST_FILE

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def _read(self) -> dict[str, dict[str, str]]:
        return self._load().get("folders", {})

    def _read_configs(self) -> dict[str, str]:
        return self._load().get("configs", {})

    def _write(
        self, folders: dict[str, dict[str, str]], configs: dict[str, str] | None = None
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
        """Trust every plugin now in ``folder``; returns plugin folder name → manifest hash.

        The project's ``.modelport/config.toml`` beside ``folder`` is trusted too,
        as it is now.
        """
        folder = folder.resolve()
        hashes = {
            child.name: _file_hash(child / MANIFEST_NAME)
            for child in (sorted(folder.iterdir()) if folder.is_dir() else [])
            if (child / MANIFEST_NAME).is_file()
        }
        folders = self._read()
        folders[str(folder)] = hashes
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

    def is_trusted(self, plugin_dir: Path, digest: str | None = None) -> bool:
        """Whether the plugin in ``plugin_dir`` has trust for this manifest.

        ``digest`` is the SHA-256 of the manifest bytes the caller parsed (so what
        is checked is what will run); without it the manifest is read again.
        A plugin is known by its name inside the resolved plugins folder, as
        :meth:`trust` records it, so a symlinked plugin folder works too.
        """
        hashes = self._read().get(str(plugin_dir.parent.resolve()))
        if not hashes:
            return False
        if digest is None:
            try:
                digest = _file_hash(plugin_dir / MANIFEST_NAME)
            except OSError:
                return False
        return hashes.get(plugin_dir.name) == digest

    def trusted_folders(self) -> list[str]:
        return sorted(self._read())
