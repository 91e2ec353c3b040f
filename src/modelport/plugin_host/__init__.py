"""The plugin host: finds, checks, trusts and runs plugins, and lists provider packages.

* :class:`~modelport.plugin_host.host.PluginHost` discovers plugin folders
  (:mod:`~modelport.plugin_host.discovery`), checks their manifests
  (:mod:`~modelport.plugin_host.manifest`) and trust (:mod:`modelport.trust`),
  runs each as a child process speaking the plugin protocol over stdio
  (:mod:`~modelport.plugin_host.process`, :mod:`modelport.plugin_protocol`), and
  registers the providers they announce (:mod:`~modelport.plugin_host.provider`).
* :mod:`~modelport.plugin_host.entrypoints` lists Python packages in the
  ``modelport.providers`` entry-point group, reporting a broken one by name.

The SDK plugin authors import (:mod:`modelport.plugin_sdk`) shares only
:mod:`modelport.plugin_protocol` with this package and never loads it.
"""

from __future__ import annotations

from modelport.plugin_host.discovery import PluginDir, default_dirs, discover
from modelport.plugin_host.entrypoints import EntryPointPlugin, entry_point_plugins
from modelport.plugin_host.host import PluginHost
from modelport.plugin_host.manifest import Manifest, ManifestError, load_manifest

__all__ = [
    "EntryPointPlugin",
    "Manifest",
    "ManifestError",
    "PluginDir",
    "PluginHost",
    "default_dirs",
    "discover",
    "entry_point_plugins",
    "load_manifest",
]
