"""API keys per connection: the OS keyring, else an owner-only file.

Keys live in the keyring under service ``modelport`` and username
``connection:<name>``. Where no usable backend exists (the ``fail`` and
``null`` backends, an empty chain, or a backend that raises), they live in
``MODELPORT_HOME/keys.json``, created with mode 0600 in a 0700 directory
from the first byte. A key is never logged and never part of an error.

Every function takes ``backend=`` so that tests (and callers with their own
keyring) can choose it; by default keyring picks one as usual.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.config import ensure_private_dir, modelport_home
from modelport.errors import ConfigError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = ["KEYS_FILE", "SERVICE", "delete_key", "get_key", "key_storage", "keys_path", "set_key"]

SERVICE = "modelport"
KEYS_FILE = "keys.json"


def _username(name: str) -> str:
    return f"connection:{name}"


def keys_path() -> Path:
    """The fallback file: ``MODELPORT_HOME/keys.json``."""
    return modelport_home() / KEYS_FILE


def _usable_backend(backend: KeyringBackend | None) -> KeyringBackend | None:
    """The keyring to use, or ``None`` when only the file will do."""
    try:
        if backend is None:
            import keyring

            backend = keyring.get_keyring()
        from keyring.backends import fail, null

        if isinstance(backend, fail.Keyring | null.Keyring):
            return None
        # An empty chain has priority below zero and behaves like the null backend.
        return backend if backend.priority > 0 else None
    except Exception:  # keyring's detection can fail in many ways; the file still works
        return None


def get_key(name: str, *, backend: KeyringBackend | None = None) -> str | None:
    """The stored key of connection ``name``, or ``None``."""
    keyring_backend = _usable_backend(backend)
    if keyring_backend is not None:
        with contextlib.suppress(Exception):
            value = keyring_backend.get_password(SERVICE, _username(name))
            if value:
                return value
    return _read_file().get(name) or None


def set_key(name: str, value: str, *, backend: KeyringBackend | None = None) -> None:
    """Store ``value`` as the key of connection ``name`` (keyring first, else the file)."""
    if not value:
        raise ConfigError(f"Refusing to store an empty key for connection {name!r}")
    keyring_backend = _usable_backend(backend)
    if keyring_backend is not None:
        try:
            keyring_backend.set_password(SERVICE, _username(name), value)
        except Exception:  # a locked or broken keyring: keep the key in the file instead
            pass
        else:
            # A stale copy in the file would come back after a delete from the keyring.
            _update_file(lambda keys: keys.pop(name, None) is not None)
            return

    def store(keys: dict[str, str]) -> bool:
        keys[name] = value
        return True

    _update_file(store)


def delete_key(name: str, *, backend: KeyringBackend | None = None) -> bool:
    """Forget the key of connection ``name`` wherever it is; ``False`` if there was none."""
    deleted = False
    keyring_backend = _usable_backend(backend)
    if keyring_backend is not None:
        with contextlib.suppress(Exception):
            if keyring_backend.get_password(SERVICE, _username(name)) is not None:
                keyring_backend.delete_password(SERVICE, _username(name))
                deleted = True
    return _update_file(lambda keys: keys.pop(name, None) is not None) or deleted


def key_storage(*, backend: KeyringBackend | None = None) -> str:
    """Where keys are kept, in words (for ``modelport doctor``)."""
    keyring_backend = _usable_backend(backend)
    if keyring_backend is not None:
        kind = type(keyring_backend)
        return f"OS keyring ({kind.__module__}.{kind.__qualname__})"
    return f"file {keys_path()} (readable by its owner only; no OS keyring available)"


def _read_file() -> dict[str, str]:
    path = keys_path()
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        # The message names the file, never its content.
        raise ConfigError(f"Cannot read the keys file {path}: {type(exc).__name__}") from None
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, dict):
        raise ConfigError(f"The keys file {path} is not in the expected format")
    return {str(k): str(v) for k, v in keys.items()}


def _update_file(change: Callable[[dict[str, str]], bool]) -> bool:
    """Apply ``change(keys) -> bool`` and write the file only when it reports a change."""
    path = keys_path()
    keys = _read_file()
    if not change(keys):
        return False
    _write_private(path, json.dumps({"version": 1, "keys": keys}, indent=2) + "\n")
    return True


def _write_private(path: Path, text: str) -> None:
    """Replace the keys file; a failure is a ConfigError naming the file, never its content."""
    try:
        _replace_private(path, text)
    except OSError as exc:
        raise ConfigError(f"Cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def _replace_private(path: Path, text: str) -> None:
    ensure_private_dir(path.parent)
    # mkstemp opens with O_EXCL and mode 0600: the key is never readable by others,
    # not even for the moment between creating and renaming the file.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
