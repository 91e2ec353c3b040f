from __future__ import annotations

import json
import logging
import stat

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null
from keyring.errors import KeyringLocked, PasswordDeleteError

from modelport.auth import delete_key, get_key, key_storage, set_key
from modelport.auth.keys import keys_path
from modelport.config import modelport_home
from modelport.errors import ConfigError


class MemoryKeyring(KeyringBackend):
    """A working keyring that keeps passwords in a dict."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError("no such password")


class LockedKeyring(MemoryKeyring):
    """A keyring that exists but refuses every operation (a locked keychain)."""

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("locked")


# --- the keyring path ----------------------------------------------------------


def test_keys_go_to_the_keyring_under_service_modelport() -> None:
    backend = MemoryKeyring()
    set_key("openai", "sk-test-1", backend=backend)
    assert backend.passwords == {("modelport", "connection:openai"): "sk-test-1"}
    assert get_key("openai", backend=backend) == "sk-test-1"
    assert not keys_path().exists()


def test_delete_key_from_the_keyring() -> None:
    backend = MemoryKeyring()
    set_key("openai", "sk-test-1", backend=backend)
    assert delete_key("openai", backend=backend) is True
    assert delete_key("openai", backend=backend) is False
    assert get_key("openai", backend=backend) is None


def test_key_storage_names_the_keyring() -> None:
    assert "OS keyring" in key_storage(backend=MemoryKeyring())
    assert "MemoryKeyring" in key_storage(backend=MemoryKeyring())


def test_storing_in_the_keyring_removes_a_stale_file_copy() -> None:
    set_key("openai", "sk-old", backend=null.Keyring())
    backend = MemoryKeyring()
    set_key("openai", "sk-new", backend=backend)
    delete_key("openai", backend=backend)
    assert get_key("openai", backend=backend) is None


def test_a_key_in_the_file_is_found_even_with_a_keyring() -> None:
    set_key("work", "sk-file", backend=null.Keyring())
    assert get_key("work", backend=MemoryKeyring()) == "sk-file"


class UnviableKeyring(MemoryKeyring):
    """A backend keyring itself would not pick (an empty chain reports this)."""

    priority = -1  # type: ignore[assignment]


# --- the file path ---------------------------------------------------------------


@pytest.mark.parametrize(
    "backend", [null.Keyring(), fail.Keyring(), LockedKeyring(), UnviableKeyring()]
)
def test_without_a_usable_keyring_keys_live_in_the_file(backend: KeyringBackend) -> None:
    stored = set_key("anthropic", "sk-ant-test", backend=backend)
    assert (stored.place, stored.path) == ("file", keys_path())
    assert str(keys_path()) in stored.describe()
    assert get_key("anthropic", backend=backend) == "sk-ant-test"
    data = json.loads(keys_path().read_text())
    assert data["keys"] == {"anthropic": "sk-ant-test"}
    assert delete_key("anthropic", backend=backend) is True
    assert get_key("anthropic", backend=backend) is None
    assert delete_key("anthropic", backend=backend) is False
    assert str(keys_path()) in key_storage(backend=backend)


@pytest.mark.parametrize("backend", [null.Keyring(), fail.Keyring(), UnviableKeyring()])
def test_without_a_keyring_the_file_says_so(backend: KeyringBackend) -> None:
    stored = set_key("anthropic", "sk-ant-test", backend=backend)
    assert stored.reason == "no OS keyring is available"
    assert stored.describe().endswith("because no OS keyring is available")


def test_a_locked_keyring_is_named_as_the_reason_the_key_went_to_the_file() -> None:
    stored = set_key("anthropic", "sk-ant-test", backend=LockedKeyring())
    assert stored.place == "file"
    assert stored.reason is not None
    assert "LockedKeyring" in stored.reason and "refused" in stored.reason
    assert "KeyringLocked" in stored.reason
    assert "sk-ant-test" not in stored.describe()


def test_a_working_keyring_is_where_the_key_went() -> None:
    stored = set_key("openai", "sk-test-1", backend=MemoryKeyring())
    assert stored.place == "keyring"
    assert "MemoryKeyring" in stored.describe()
    assert "file" not in stored.describe()


def test_the_default_backend_in_tests_is_null_so_the_file_is_used() -> None:
    # conftest sets PYTHON_KEYRING_BACKEND to the null backend.
    set_key("groq", "gsk-test")
    assert get_key("groq") == "gsk-test"
    assert keys_path() == modelport_home() / "keys.json"
    assert str(keys_path()) in key_storage()


def test_the_key_file_is_owner_only_in_an_owner_only_directory() -> None:
    set_key("openai", "sk-test", backend=null.Keyring())
    assert stat.S_IMODE(keys_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_path().parent.stat().st_mode) == 0o700
    set_key("anthropic", "sk-ant", backend=null.Keyring())  # rewriting keeps the mode
    assert stat.S_IMODE(keys_path().stat().st_mode) == 0o600
    assert not [p for p in keys_path().parent.iterdir() if p.name.endswith(".tmp")]


def test_several_keys_share_the_file() -> None:
    backend = null.Keyring()
    set_key("a", "one", backend=backend)
    set_key("b", "two", backend=backend)
    set_key("a", "three", backend=backend)
    assert (get_key("a", backend=backend), get_key("b", backend=backend)) == ("three", "two")
    assert get_key("c", backend=backend) is None


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty key"):
        set_key("openai", "")


def test_a_corrupt_key_file_is_reported_without_its_content() -> None:
    keys_path().parent.mkdir(parents=True)
    keys_path().write_text("sk-leaked-secret {not json")
    with pytest.raises(ConfigError) as caught:
        get_key("openai", backend=null.Keyring())
    assert str(keys_path()) in str(caught.value)
    assert "sk-leaked-secret" not in str(caught.value)


def test_a_key_file_of_the_wrong_shape_is_reported() -> None:
    keys_path().parent.mkdir(parents=True)
    keys_path().write_text('["a"]')
    with pytest.raises(ConfigError, match="expected format"):
        get_key("openai", backend=null.Keyring())


def test_keys_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    set_key("openai", "sk-never-logged", backend=LockedKeyring())
    get_key("openai", backend=LockedKeyring())
    delete_key("openai", backend=LockedKeyring())
    assert "sk-never-logged" not in caplog.text


def test_a_write_failure_is_a_config_error_without_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    def refuse(*args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ConfigError, match="Cannot write .*keys.json") as caught:
        set_key("work", "sk-never-shown", backend=null.Keyring())
    assert "sk-never-shown" not in str(caught.value)
    assert "sk-never-shown" not in repr(caught.value.__cause__)
    assert [p.name for p in keys_path().parent.iterdir()] == []  # no temporary file left
