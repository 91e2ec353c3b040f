"""``modelport usage`` and ``modelport logs`` over a populated ledger under MODELPORT_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelport.cli import build_app
from modelport.cli.usage import _parse_since
from modelport.ledger import CallRecord, open_ledger

NOW = datetime.now(UTC).replace(microsecond=0)


def call(minutes_ago: float, **fields: object) -> CallRecord:
    base: dict[str, object] = {
        "started_at": NOW - timedelta(minutes=minutes_ago),
        "connection": "openai",
        "model": "gpt-4o",
        "api": "openai",
    }
    base.update(fields)
    return CallRecord(**base)  # type: ignore[arg-type]


RECORDS = [
    call(1, input_tokens=100, output_tokens=20, cost=0.01, latency_ms=100, ttft_ms=40),
    call(2, input_tokens=300, output_tokens=40, cost=0.03, latency_ms=300, ttft_ms=60),
    call(3, outcome="RateLimitError", error="Rate limited; retry in 3 s", latency_ms=50),
    call(4, connection="local", model="llama3.1:8b", api="python", input_tokens=7),
    # Three days old: inside --since 7d, outside --since 1h.
    call(3 * 24 * 60, model="gpt-4o-mini", input_tokens=1000, output_tokens=1, cost=0.5),
]


@pytest.fixture
def populated() -> None:
    with open_ledger() as ledger:
        for record in RECORDS:
            ledger.record(record)
        assert ledger.flush(10)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(build_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def by_key(rows: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {row["key"]: row for row in rows}


@pytest.mark.usefixtures("populated")
def test_usage_by_model_json(runner: CliRunner) -> None:
    code, out, _ = run(runner, "usage", "--by", "model", "--json")
    assert code == 0
    rows = by_key(json.loads(out))
    assert set(rows) == {"openai/gpt-4o", "openai/gpt-4o-mini", "local/llama3.1:8b"}
    gpt = rows["openai/gpt-4o"]
    assert gpt["calls"] == 3
    assert gpt["errors"] == 1
    assert gpt["input_tokens"] == 400
    assert gpt["output_tokens"] == 60
    assert gpt["cost"] == pytest.approx(0.04)
    assert gpt["avg_latency_ms"] == pytest.approx(150.0)
    assert gpt["avg_ttft_ms"] == pytest.approx(50.0)
    assert rows["local/llama3.1:8b"]["cost"] is None


@pytest.mark.usefixtures("populated")
def test_usage_by_connection_json(runner: CliRunner) -> None:
    code, out, _ = run(runner, "usage", "--by", "connection", "--json")
    assert code == 0
    rows = by_key(json.loads(out))
    assert set(rows) == {"openai", "local"}
    assert rows["openai"]["calls"] == 4
    assert rows["openai"]["input_tokens"] == 1400
    assert rows["openai"]["cost"] == pytest.approx(0.54)


@pytest.mark.usefixtures("populated")
def test_usage_since(runner: CliRunner) -> None:
    _, out, _ = run(runner, "usage", "--since", "1h", "--json")
    assert "openai/gpt-4o-mini" not in by_key(json.loads(out))
    _, out, _ = run(runner, "usage", "--since", "7d", "--json")
    assert "openai/gpt-4o-mini" in by_key(json.loads(out))
    _, out, _ = run(runner, "usage", "--since", "2000-01-01", "--json")
    assert len(json.loads(out)) == 3


@pytest.mark.usefixtures("populated")
def test_usage_table(runner: CliRunner) -> None:
    code, out, _ = run(runner, "usage")
    assert code == 0
    assert "openai/gpt-4o" in out
    assert "local/llama3.1:8b" in out
    assert "$0.0400" in out
    assert "150 ms" in out


def test_usage_with_nothing_recorded(runner: CliRunner) -> None:
    code, out, err = run(runner, "usage", "--json")
    assert code == 0
    assert json.loads(out) == []
    code, out, err = run(runner, "usage")
    assert code == 0
    assert out == ""
    assert "No calls recorded" in err


def test_usage_rejects_a_bad_since(runner: CliRunner) -> None:
    code, _, err = run(runner, "usage", "--since", "last tuesday")
    assert code == 1
    assert "--since 'last tuesday'" in err
    code, _, _ = run(runner, "usage", "--by", "colour")
    assert code == 2


@pytest.mark.usefixtures("populated")
def test_logs_json_newest_first(runner: CliRunner) -> None:
    code, out, _ = run(runner, "logs", "-n", "3", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["connection"], r["model"], r["outcome"]) for r in rows] == [
        ("openai", "gpt-4o", "ok"),
        ("openai", "gpt-4o", "ok"),
        ("openai", "gpt-4o", "RateLimitError"),
    ]
    assert rows[0]["input_tokens"] == 100
    assert datetime.fromisoformat(rows[0]["started_at"]) == RECORDS[0].started_at
    code, out, _ = run(runner, "logs", "--json")
    assert len(json.loads(out)) == len(RECORDS)


@pytest.mark.usefixtures("populated")
def test_logs_table(runner: CliRunner) -> None:
    code, out, _ = run(runner, "logs")
    assert code == 0
    assert "RateLimitError" in out
    assert "Rate limited; retry in 3 s" in out
    assert "local/llama3.1:8b" in out
    assert out.index("openai/gpt-4o-mini") > out.index("local/llama3.1:8b")  # oldest last


def test_model_names_and_errors_are_shown_verbatim_not_as_markup(runner: CliRunner) -> None:
    # A client picks the model name; "[/x]" is a closing tag Rich would choke on.
    with open_ledger() as ledger:
        ledger.record(call(1, connection="oai", model="[/x]", error="[bold]boom[/] [/nope]"))
        ledger.record(call(2, connection="oai", model="[red]m[/red]", outcome="[/]"))
        assert ledger.flush(10)
    code, out, err = run(runner, "logs")
    assert code == 0, err
    assert "oai/[/x]" in out and "[bold]boom[/] [/nope]" in out
    assert "oai/[red]m[/red]" in out and "[/]" in out
    code, out, err = run(runner, "usage")
    assert code == 0, err
    assert "oai/[/x]" in out and "oai/[red]m[/red]" in out


def test_database_url_from_config_toml(runner: CliRunner, tmp_path: Path) -> None:
    database = tmp_path / "gateway.db"
    with open_ledger(url=f"sqlite:///{database}") as ledger:
        ledger.record(call(1, connection="work", model="big"))
        assert ledger.flush(10)
    home = Path(os.environ["MODELPORT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'database_url = "sqlite:///{database}"\n')
    code, out, _ = run(runner, "usage", "--json")
    assert code == 0
    assert [row["key"] for row in json.loads(out)] == ["work/big"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("1.5h", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_parse_since_ages(text: str, expected: timedelta) -> None:
    assert _parse_since(text, now=NOW) == NOW - expected


def test_parse_since_dates() -> None:
    assert _parse_since("2026-11-01T00:00:00+00:00") == datetime(2026, 11, 1, tzinfo=UTC)
    local_midnight = datetime(2026, 11, 1).astimezone()
    assert _parse_since("2026-11-01") == local_midnight


@pytest.mark.usefixtures("populated")
def test_real_command_line() -> None:
    executable = Path(sys.executable).parent / "modelport"
    result = subprocess.run(
        [str(executable), "usage", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = by_key(json.loads(result.stdout))
    assert rows["openai/gpt-4o"]["calls"] == 3
    assert rows["openai/gpt-4o-mini"]["cost"] == pytest.approx(0.5)
