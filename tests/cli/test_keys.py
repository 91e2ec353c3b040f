"""``modelport keys``: stored in the owner-only file (tests run with the null keyring)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.cli.conftest import RunCli

SECRET = "sk-test-0123456789abcdef"


def test_set_from_stdin_stores_in_the_file_fallback(cli: RunCli, home: Path) -> None:
    result = cli("keys", "set", "anthropic", "--stdin", input=SECRET + "\n")

    assert result.exit_code == 0, result.stderr
    keys_file = home / "keys.json"
    assert json.loads(keys_file.read_text())["keys"] == {"anthropic": SECRET}
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert SECRET not in result.stdout + result.stderr
    assert "keys.json" in result.stderr


def test_set_prompts_with_hidden_input(cli: RunCli, home: Path) -> None:
    result = cli("keys", "set", "work", input=SECRET + "\n")

    assert result.exit_code == 0, result.stderr
    assert json.loads((home / "keys.json").read_text())["keys"] == {"work": SECRET}
    # The prompt is shown; the typed key is not echoed back.
    assert "Key for work" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_empty_key_is_refused(cli: RunCli, home: Path) -> None:
    result = cli("keys", "set", "work", "--stdin", input="\n")

    assert result.exit_code == 1
    assert "error: empty key" in result.stderr
    assert not (home / "keys.json").exists()


def test_list_shows_names_and_sources_never_values(cli: RunCli, write_config, monkeypatch) -> None:
    write_config(
        '[connections.work]\ncompat = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "WORK_KEY"\n\n'
        '[connections.bare]\ncompat = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    assert cli("keys", "set", "anthropic", "--stdin", input=SECRET).exit_code == 0
    monkeypatch.setenv("WORK_KEY", "env-secret-value")

    result = cli("keys", "list")

    assert result.exit_code == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert "stored" in lines["anthropic"]
    assert "$WORK_KEY" in lines["work"]
    assert lines["bare"].split()[1] == "none"
    assert "openai" not in lines  # a preset with no key is not listed
    assert SECRET not in result.stdout + result.stderr
    assert "env-secret-value" not in result.stdout + result.stderr
    assert "keys.json" in result.stderr


def test_remove_forgets_the_key(cli: RunCli, home: Path) -> None:
    cli("keys", "set", "anthropic", "--stdin", input=SECRET)

    result = cli("keys", "remove", "anthropic")

    assert result.exit_code == 0, result.stderr
    assert json.loads((home / "keys.json").read_text())["keys"] == {}
    again = cli("keys", "remove", "anthropic")
    assert again.exit_code == 1
    assert "no key stored for 'anthropic'" in again.stderr


def test_subprocess_round_trip(cli_process: RunCli, home: Path) -> None:
    stored = cli_process("keys", "set", "openrouter", "--stdin", input=SECRET)
    listed = cli_process("keys", "list")

    assert stored.exit_code == 0, stored.stderr
    assert listed.exit_code == 0, listed.stderr
    assert "openrouter" in listed.stdout
    assert SECRET not in stored.stdout + stored.stderr + listed.stdout + listed.stderr
    assert "Traceback" not in stored.stderr + listed.stderr


def test_set_with_a_locked_keyring_says_the_key_went_to_the_file_and_why(
    cli: RunCli, home: Path, monkeypatch
) -> None:
    import keyring

    from tests.auth.test_keys import LockedKeyring

    monkeypatch.setattr(keyring.core, "_keyring_backend", LockedKeyring())

    result = cli("keys", "set", "anthropic", "--stdin", input=SECRET)

    assert result.exit_code == 0, result.stderr
    assert json.loads((home / "keys.json").read_text())["keys"] == {"anthropic": SECRET}
    message = " ".join(result.stderr.split())
    assert "OS keyring (" not in message.split("because")[0]  # never "stored in the keyring"
    assert f"in the file {home / 'keys.json'}" in message
    assert "because the OS keyring" in message and "refused it (KeyringLocked)" in message
    assert SECRET not in result.stdout + result.stderr
