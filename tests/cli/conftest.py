"""Helpers for CLI tests: run the real ``main()`` in-process or as a subprocess.

In-process runs go through ``modelport.cli.main`` (not the Typer app alone) so
that errors are rendered exactly as a user sees them. Subprocess runs start
``python -m modelport`` with the test's scrubbed environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

# The OAuth authorization server fixtures, for the login commands' tests.
from tests.auth.conftest import oauth_server, oauth_servers  # noqa: F401


@dataclass(frozen=True)
class CliResult:
    """What one run of the command printed, and how it exited."""

    exit_code: int
    stdout: str
    stderr: str


RunCli = Callable[..., CliResult]


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


@pytest.fixture
def cli() -> RunCli:
    """``cli("models", "--json", input="...")`` runs ``main()`` in-process."""
    from modelport.cli import main

    def run(*args: str, input: str | None = None) -> CliResult:
        runner = CliRunner()
        with runner.isolation(input=input) as (stdout, stderr, _output):
            code = 0
            try:
                main(list(args))
            except SystemExit as exc:
                code = _exit_code(exc)
            sys.stdout.flush()
            sys.stderr.flush()
            stdout_text = stdout.getvalue().decode()
            stderr_text = stderr.getvalue().decode()
        return CliResult(code, stdout_text, stderr_text)

    return run


@pytest.fixture
def cli_process() -> RunCli:
    """``cli_process("chat", "hi")`` runs ``python -m modelport`` as a real subprocess."""

    def run(*args: str, input: str | None = None, timeout: float = 60) -> CliResult:
        completed = subprocess.run(
            [sys.executable, "-m", "modelport", *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=dict(os.environ),  # already scrubbed by tests/conftest.py
            timeout=timeout,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

    return run


@pytest.fixture
def home() -> Path:
    """The test's ``MODELPORT_HOME`` (created)."""
    path = Path(os.environ["MODELPORT_HOME"])
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def write_config(home: Path) -> Callable[[str], Path]:
    """Write ``config.toml`` in the test's ``MODELPORT_HOME``."""

    def write(text: str) -> Path:
        path = home / "config.toml"
        path.write_text(text)
        return path

    return write


@pytest.fixture(autouse=True)
def _project_free_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty folder so no ``.modelport/`` of the checkout is picked up."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def refused_url() -> str:
    """A loopback URL where nothing listens (the port was just free)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
