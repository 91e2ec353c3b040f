"""``modelport vkeys``: issue, list, rotate and revoke virtual keys; budgets, limits, audit."""

from __future__ import annotations

import json
import os
from pathlib import Path

from modelport.governance import open_catalog
from modelport.governance._secrets import digest
from tests.cli.conftest import RunCli


def test_a_key_is_shown_once_stored_hashed_and_audited(cli: RunCli) -> None:
    created = cli(
        "vkeys",
        "create",
        "ci bot",
        "--team",
        "platform",
        "--model",
        "oai/gpt-test",
        "--expires",
        "30d",
        "--meta",
        "owner=ann",
    )
    assert created.exit_code == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("mpvk-") and "shown this once" in created.stderr
    catalog = open_catalog()
    try:
        [key] = catalog.snapshot().keys
        assert key.digest == digest(secret) and key.metadata == {"owner": "ann"}
        assert key.team == "platform" and key.models == ["oai/gpt-test"]
        # Never the secret itself, anywhere in the database.
        database = Path(os.environ["MODELPORT_HOME"]) / "usage.db"
        assert secret.encode() not in database.read_bytes()
    finally:
        catalog.close()
    listed = cli("vkeys", "list")
    assert key.id in listed.stdout and secret not in listed.stdout
    assert f"…{secret[-4:]}" in listed.stdout
    rotated = cli("vkeys", "rotate", key.id)
    assert rotated.exit_code == 0 and rotated.stdout.strip() != secret
    assert cli("vkeys", "budget", "set", "team", "platform", "--dollars", "50").exit_code == 0
    assert cli("vkeys", "limit", "set", "key", key.id, "--rpm", "60").exit_code == 0
    assert cli("vkeys", "revoke", key.id).exit_code == 0
    assert "revoked" in cli("vkeys", "list").stdout
    audit = cli("vkeys", "audit", "--json")
    actions = [line.split('"action": "')[1].split('"')[0] for line in audit.stdout.splitlines()]
    assert actions == ["key.revoke", "limit.set", "budget.set", "key.rotate", "key.create"]
    assert "cli:" in audit.stdout


def test_mistakes_are_refused_with_a_reason(cli: RunCli) -> None:
    unknown = cli("vkeys", "revoke", "vk_nope")
    assert unknown.exit_code == 1 and "no virtual key" in unknown.stderr
    period = cli("vkeys", "budget", "set", "team", "t", "--period", "year", "--dollars", "1")
    assert period.exit_code == 1 and "day, week, month, total" in period.stderr
    empty = cli("vkeys", "limit", "set", "team", "t")
    assert empty.exit_code == 1 and "rpm, tpm or both" in empty.stderr


def test_the_audit_log_pages_on_with_before_and_keys_show_their_spend(cli: RunCli) -> None:
    for n in range(5):
        assert cli("vkeys", "create", f"k{n}").exit_code == 0
    pages: list[list[str]] = []
    arguments = ["vkeys", "audit", "--json", "--limit", "2"]
    while True:
        lines = cli(*arguments).stdout.splitlines()
        if not lines:
            break
        entries = [json.loads(line) for line in lines]
        pages.append([e["detail"]["name"] for e in entries])
        arguments = ["vkeys", "audit", "--json", "--limit", "2", "--before", str(entries[-1]["id"])]
    assert pages == [["k4", "k3"], ["k2", "k1"], ["k0"]]
    table = cli("vkeys", "audit", "--limit", "2")
    assert "--before" in table.stderr  # says how to read the next page
    assert cli("vkeys", "audit", "--limit", "0").exit_code != 0
    # No budget anywhere: every key still shows what it spent this month.
    listed = cli("vkeys", "list").stdout
    assert "spent" in listed and listed.count("$0.0000 · 0 tokens") == 5
