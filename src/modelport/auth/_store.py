"""Where secrets live: the OS keyring, else an owner-only JSON file under ``MODELPORT_HOME``.

One :class:`SecretStore` per kind of secret: API keys (``keys.json``, keyring
username ``connection:<name>``) and OAuth tokens (``tokens.json``,
``oauth:<name>``). The keyring is used when a usable backend exists (not the
``fail`` or ``null`` backends, not an empty chain). When it is missing, or
refuses a write (a locked keychain, a broken D-Bus), the secret goes to the
file, created with mode 0600 in a 0700 directory from the first byte, and
:meth:`SecretStore.set` says so and why (:class:`Stored`), so nobody is told
"stored in the OS keyring" about a secret that went to a file.

A secret is never logged and never part of an error; a failing keyring is
named by its exception's class only, since a message might quote what it was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelport.config import ensure_private_dir, modelport_home
from modelport.errors import ConfigError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = ["SERVICE", "SecretStore", "Stored"]

#: The keyring service every modelport secret is filed under.
SERVICE = "modelport"


@dataclass(frozen=True, slots=True)
class Stored:
    """Where :meth:`SecretStore.set` put a secret, and why there.

    ``place`` is ``"keyring"`` or ``"file"``; ``backend`` names the keyring
    backend (for the keyring) and ``path`` the file; ``reason`` says why the
    file was used (no keyring, or the keyring refused the write).
    """

    place: Literal["keyring", "file"]
    backend: str | None = None
    path: Path | None = None
    reason: str | None = None

    def describe(self) -> str:
        """In words: ``the OS keyring (…)`` or ``the file … (readable by you only), because …``."""
        if self.place == "keyring":
            return f"the OS keyring ({self.backend})"
        because = f", because {self.reason}" if self.reason else ""
        return f"the file {self.path} (readable by its owner only){because}"


def _backend_name(backend: KeyringBackend) -> str:
    kind = type(backend)
    return f"{kind.__module__}.{kind.__qualname__}"


def usable_backend(backend: KeyringBackend | None) -> KeyringBackend | None:
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


class SecretStore:
    """Secrets of one kind, by connection name: the keyring first, else ``MODELPORT_HOME/<file>``.

    Every method takes ``backend=`` so that tests (and callers with their own
    keyring) can choose it; by default keyring picks one as usual.
    """

    def __init__(self, *, file_name: str, prefix: str) -> None:
        self.file_name = file_name
        self.prefix = prefix

    def path(self) -> Path:
        """The fallback file, ``MODELPORT_HOME/<file_name>`` (read at each call)."""
        return modelport_home() / self.file_name

    def _username(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def get(self, name: str, *, backend: KeyringBackend | None = None) -> str | None:
        keyring_backend = usable_backend(backend)
        if keyring_backend is not None:
            with contextlib.suppress(Exception):
                value = keyring_backend.get_password(SERVICE, self._username(name))
                if value:
                    return value
        return self._read_file().get(name) or None

    def set(self, name: str, value: str, *, backend: KeyringBackend | None = None) -> Stored:
        """Store ``value`` for ``name``: the keyring, else the file; say which and why."""
        keyring_backend = usable_backend(backend)
        if keyring_backend is None:
            reason = "no OS keyring is available"
        else:
            try:
                keyring_backend.set_password(SERVICE, self._username(name), value)
            except Exception as exc:  # a locked or broken keyring: keep it in the file instead
                reason = (
                    f"the OS keyring ({_backend_name(keyring_backend)}) refused it "
                    f"({type(exc).__name__})"
                )
            else:
                # A stale copy in the file would come back after a delete from the keyring.
                self._update_file(lambda secrets: secrets.pop(name, None) is not None)
                return Stored("keyring", backend=_backend_name(keyring_backend))

        def store(secrets: dict[str, str]) -> bool:
            secrets[name] = value
            return True

        self._update_file(store)
        return Stored("file", path=self.path(), reason=reason)

    def delete(self, name: str, *, backend: KeyringBackend | None = None) -> bool:
        """Forget ``name``'s secret wherever it is; ``False`` if there was none."""
        deleted = False
        keyring_backend = usable_backend(backend)
        if keyring_backend is not None:
            with contextlib.suppress(Exception):
                if keyring_backend.get_password(SERVICE, self._username(name)) is not None:
                    keyring_backend.delete_password(SERVICE, self._username(name))
                    deleted = True
        return self._update_file(lambda secrets: secrets.pop(name, None) is not None) or deleted

    def storage(self, *, backend: KeyringBackend | None = None) -> str:
        """Where new secrets go, in words (for ``modelport doctor``)."""
        keyring_backend = usable_backend(backend)
        if keyring_backend is not None:
            return (
                f"OS keyring ({_backend_name(keyring_backend)}); the file {self.path()} "
                "if the keyring refuses a write"
            )
        return f"file {self.path()} (readable by its owner only; no OS keyring available)"

    # --- the file ------------------------------------------------------------

    def _read_file(self) -> dict[str, str]:
        path = self.path()
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # The message names the file, never its content.
            raise ConfigError(f"Cannot read the file {path}: {type(exc).__name__}") from None
        # keys.json has kept its secrets under "keys" since its first version.
        secrets = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(secrets, dict):
            raise ConfigError(f"The file {path} is not in the expected format")
        return {str(k): str(v) for k, v in secrets.items()}

    def _update_file(self, change: Callable[[dict[str, str]], bool]) -> bool:
        """Apply ``change(secrets) -> bool``; write the file only when it reports a change."""
        path = self.path()
        secrets = self._read_file()
        if not change(secrets):
            return False
        _write_private(path, json.dumps({"version": 1, "keys": secrets}, indent=2) + "\n")
        return True


def _write_private(path: Path, text: str) -> None:
    """Replace ``path``; a failure is a ConfigError naming the file, never its content."""
    try:
        _replace_private(path, text)
    except OSError as exc:
        raise ConfigError(f"Cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def _replace_private(path: Path, text: str) -> None:
    ensure_private_dir(path.parent)  # and any missing folder above it, 0700 too
    # mkstemp opens with O_EXCL and mode 0600: the secret is never readable by others,
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
