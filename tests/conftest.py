from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.testing import FakeUpstream
from tests._fixtures import FIXTURES

_real_connect = socket.socket.connect
_LOOPBACK = ("127.", "::1", "localhost", "0.0.0.0")


def _guarded_connect(self: socket.socket, address: object) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not host.startswith(_LOOPBACK) and self.family != socket.AF_UNIX:
        raise RuntimeError(f"Tests must not reach the network (tried {address!r})")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse a Python ``socket.connect`` beyond loopback, in this process.

    Only this process's Python sockets: uvloop connects in C and child processes
    have their own. ``make test`` runs the suite where only loopback exists
    (``tests/_netns.py``), which covers those too.
    """
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real keys, config or keyring leak into a test."""
    for name in list(os.environ):
        if name.startswith(("MODELPORT_", "OPENAI_", "ANTHROPIC_", "OLLAMA_")) or name.endswith(
            "_API_KEY"
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "modelport-home"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A fake upstream on 127.0.0.1 for the test; add routes with ``upstream.route``."""
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
