"""Plugins: the host that runs out-of-process plugins, and in-process provider packages.

* :class:`~modelport.plugins.host.PluginHost` discovers plugin folders
  (:mod:`~modelport.plugins.discovery`), checks their manifests
  (:mod:`~modelport.plugins.manifest`) and trust (:mod:`~modelport.plugins.trust`),
  runs each as a child process speaking JSON-RPC over stdio
  (:mod:`~modelport.plugins.process`, :mod:`~modelport.plugins.jsonrpc`), and
  registers the providers they announce (:mod:`~modelport.plugins.provider`).
* :mod:`~modelport.plugins.entrypoints` lists Python packages in the
  ``modelport.providers`` entry-point group, reporting a broken one by name.

Names are imported on first use so that the plugin SDK, which shares
:mod:`~modelport.plugins.jsonrpc`, starts without loading the host.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelport.plugins.discovery import PluginDir, default_dirs, discover
    from modelport.plugins.entrypoints import EntryPointPlugin, entry_point_plugins
    from modelport.plugins.host import PluginHost
    from modelport.plugins.manifest import Manifest, ManifestError, load_manifest
    from modelport.plugins.trust import TrustStore

__all__ = [
    "EntryPointPlugin",
    "Manifest",
    "ManifestError",
    "PluginDir",
    "PluginHost",
    "TrustStore",
    "default_dirs",
    "discover",
    "entry_point_plugins",
    "load_manifest",
]

_LAZY = {
    "EntryPointPlugin": "entrypoints",
    "Manifest": "manifest",
    "ManifestError": "manifest",
    "PluginDir": "discovery",
    "PluginHost": "host",
    "TrustStore": "trust",
    "default_dirs": "discovery",
    "discover": "discovery",
    "entry_point_plugins": "entrypoints",
    "load_manifest": "manifest",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelport.plugins' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"modelport.plugins.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
