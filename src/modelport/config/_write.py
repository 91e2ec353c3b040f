"""Writing ``config.toml`` back: comments and formatting survive, saves are atomic.

The public names are re-exported from :mod:`modelport.config` (import them
from there); they live here so that reading the configuration does not carry
the tomlkit-based editing code.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.config._load import (
    CONFIG_FILE,
    PROJECT_DIR,
    _merge,
    _read,
    _read_project,
    ensure_private_dir,
    find_project_dir,
    global_config_path,
    modelport_home,
    parse_config,
)
from modelport.errors import ConfigError

if TYPE_CHECKING:
    import tomlkit.container
    import tomlkit.toml_document

__all__ = [
    "edit_config",
    "get_value",
    "remove_connection",
    "set_connection",
    "set_default_model",
    "set_value",
]


@contextlib.contextmanager
def edit_config(
    path: Path | str | None = None,
) -> Iterator[tomlkit.toml_document.TOMLDocument]:
    """Yield the file as a tomlkit document and save it on a clean exit.

    Comments and formatting survive. The result is validated before it is
    written (a change that would break the file raises ConfigError and writes
    nothing), and it replaces the old file atomically. ``path`` defaults to the
    global ``config.toml``; missing directories and files are created.
    """
    import tomlkit

    target = Path(path) if path is not None else global_config_path()
    try:
        document = tomlkit.parse(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        document = tomlkit.document()
    except OSError as exc:
        raise ConfigError(f"Cannot read {target}: {exc.strerror or exc}") from exc
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{target} is not valid TOML: {exc}") from exc
    yield document
    text = tomlkit.dumps(document)
    parse_config(text, target)
    _write_atomic(target, text)


def _write_atomic(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` atomically; a failure is a ConfigError naming the file."""
    try:
        _replace_file(target, text)
    except OSError as exc:
        raise ConfigError(f"Cannot write {target}: {exc.strerror or exc}") from exc


def _replace_file(target: Path, text: str) -> None:
    private = _in_home(target)
    if private:
        ensure_private_dir(target.parent)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        # A new file in MODELPORT_HOME is its owner's alone; a project's gets the usual mode.
        mode = 0o600 if private else None
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; keep an existing file's mode, else the usual umask default.
        os.chmod(temporary, mode if mode is not None else 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _in_home(target: Path) -> bool:
    home = modelport_home()
    return target.parent == home or home in target.parents


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _table(container: tomlkit.container.Container | Any, key: str, *, create: bool) -> Any | None:
    import tomlkit

    if key not in container:
        if not create:
            return None
        container[key] = tomlkit.table()
    return container[key]


def set_connection(name: str, values: Mapping[str, Any], *, path: Path | str | None = None) -> None:
    """Create ``[connections.<name>]`` or update its keys; a value of ``None`` removes the key."""
    if not name or "/" in name:
        raise ConfigError(f"A connection name cannot be empty or contain '/': {name!r}")
    import tomlkit

    with edit_config(path) as document:
        connections = _table(document, "connections", create=True)
        if name not in connections:
            table = tomlkit.table()
            connections[name] = table
        table = connections[name]
        for key, value in values.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value


def remove_connection(name: str, *, path: Path | str | None = None) -> bool:
    """Remove ``[connections.<name>]``; ``False`` if it was not there."""
    with edit_config(path) as document:
        connections = _table(document, "connections", create=False)
        if connections is None or name not in connections:
            return False
        del connections[name]
        return True


def set_default_model(address: str | None, *, path: Path | str | None = None) -> None:
    """Set ``default_model``, or remove it with ``None``."""
    set_value("default_model", address, path=path)


def _split_key(dotted_key: str) -> list[str]:
    parts = dotted_key.split(".")
    if not all(parts):
        raise ConfigError(f"Not a valid key: {dotted_key!r} (write it like 'gateway.port')")
    return parts


def set_value(dotted_key: str, value: Any, *, path: Path | str | None = None) -> None:
    """Set one value by dotted key (``gateway.port``, ``aliases.fast``); ``None`` removes it.

    Connection names and aliases that contain dots cannot be reached this way;
    use :func:`set_connection` or :func:`edit_config`.
    """
    *parents, last = _split_key(dotted_key)
    with edit_config(path) as document:
        container: Any = document
        for part in parents:
            container = _table(container, part, create=value is not None)
            if container is None:
                return
            if not isinstance(container, Mapping):
                raise ConfigError(f"{dotted_key!r}: {part!r} is a value, not a table")
        if value is None:
            container.pop(last, None)
        else:
            container[last] = value


def get_value(dotted_key: str, *, path: Path | str | None = None) -> Any:
    """The value at a dotted key, or ``None`` if unset.

    With ``path`` it reads that file alone; without, the merged view of the
    global and project files (what a call would actually use: an untrusted
    project file counts only for what it may set).
    """
    parts = _split_key(dotted_key)
    if path is not None:
        data: Any = _read(Path(path)) or {}
    else:
        data = _read(global_config_path()) or {}
        project = find_project_dir()
        if project is not None:
            _merge(data, _read_project(project / PROJECT_DIR / CONFIG_FILE, project, None)[0] or {})
    for part in parts:
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data
