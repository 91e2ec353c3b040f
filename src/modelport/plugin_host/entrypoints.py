"""In-process plugins: Python packages in the ``modelport.providers`` entry-point group.

Each entry point names a compat name and a provider factory (``"pkg.mod:Factory"``).
:func:`~modelport.providers.load_factory` loads one lazily when a connection
uses it; :func:`entry_point_plugins` is for listing and doctor-style reports,
loading each on request and reporting a broken one by name without stopping
at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from modelport.providers import BUILTIN_PROVIDERS, ENTRY_POINT_GROUP

__all__ = ["EntryPointPlugin", "entry_point_plugins"]


@dataclass(frozen=True, kw_only=True)
class EntryPointPlugin:
    """One ``modelport.providers`` entry point and, if it was loaded, whether that worked."""

    name: str
    target: str
    package: str | None = None
    version: str | None = None
    ok: bool | None = None
    error: str | None = None


def _describe(entry_point: EntryPoint, *, load: bool) -> EntryPointPlugin:
    dist = entry_point.dist
    package = dist.metadata["Name"] if dist is not None else None
    version = dist.version if dist is not None else None
    base = {"name": entry_point.name, "target": entry_point.value}
    if entry_point.name in BUILTIN_PROVIDERS:
        error = f"the compat name {entry_point.name!r} is built in; this entry point is ignored"
        return EntryPointPlugin(**base, package=package, version=version, ok=False, error=error)
    if not load:
        return EntryPointPlugin(**base, package=package, version=version)
    try:
        factory = entry_point.load()
    except Exception as exc:  # report a broken package by name; never stop at it
        error = f"{type(exc).__name__}: {exc}"
        return EntryPointPlugin(**base, package=package, version=version, ok=False, error=error)
    if not callable(factory):
        error = f"{entry_point.value} is not a provider factory (not callable)"
        return EntryPointPlugin(**base, package=package, version=version, ok=False, error=error)
    return EntryPointPlugin(**base, package=package, version=version, ok=True)


def entry_point_plugins(*, load: bool = True) -> list[EntryPointPlugin]:
    """Every installed provider package; with ``load``, each is imported to check it."""
    found = entry_points(group=ENTRY_POINT_GROUP)
    return [_describe(ep, load=load) for ep in sorted(found, key=lambda ep: ep.name)]
