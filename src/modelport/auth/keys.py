"""API keys per connection: the OS keyring, else an owner-only file.

Keys live in the keyring under service ``modelport`` and username
``connection:<name>``. Where no usable backend exists (the ``fail`` and
``null`` backends, an empty chain), or the keyring refuses the write (locked,
broken), they live in ``MODELPORT_HOME/keys.json``, created with mode 0600 in
a 0700 directory from the first byte; :func:`set_key` returns where the key
went and why (:class:`~modelport.auth._store.Stored`). A key is never logged
and never part of an error.

Every function takes ``backend=`` so that tests (and callers with their own
keyring) can choose it; by default keyring picks one as usual.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modelport.auth._store import SERVICE, SecretStore, Stored
from modelport.errors import ConfigError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = [
    "KEYS_FILE",
    "SERVICE",
    "Stored",
    "delete_key",
    "get_key",
    "key_storage",
    "keys_path",
    "set_key",
]

KEYS_FILE = "keys.json"

_KEYS = SecretStore(file_name=KEYS_FILE, prefix="connection")


def keys_path() -> Path:
    """The fallback file: ``MODELPORT_HOME/keys.json``."""
    return _KEYS.path()


def get_key(name: str, *, backend: KeyringBackend | None = None) -> str | None:
    """The stored key of connection ``name``, or ``None``."""
    return _KEYS.get(name, backend=backend)


def set_key(name: str, value: str, *, backend: KeyringBackend | None = None) -> Stored:
    """Store ``value`` as the key of connection ``name``; returns where it went and why."""
    if not value:
        raise ConfigError(f"Refusing to store an empty key for connection {name!r}")
    return _KEYS.set(name, value, backend=backend)


def delete_key(name: str, *, backend: KeyringBackend | None = None) -> bool:
    """Forget the key of connection ``name`` wherever it is; ``False`` if there was none."""
    return _KEYS.delete(name, backend=backend)


def key_storage(*, backend: KeyringBackend | None = None) -> str:
    """Where new keys go, in words (for ``modelport doctor`` and ``keys list``)."""
    return _KEYS.storage(backend=backend)
