from __future__ import annotations

import gc
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from modelport.testing import FakeUpstream
from tests._fixtures import FIXTURES

# Property tests check what parsers do, not how fast: on a loaded 2-core machine one
# example took 417 ms against hypothesis's default 200 ms deadline and failed a run.
settings.register_profile("modelport", deadline=None)
settings.load_profile("modelport")

_real_connect = socket.socket.connect
_LOOPBACK = ("127.", "::1", "localhost", "0.0.0.0")


def _guarded_connect(self: socket.socket, address: object) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not host.startswith(_LOOPBACK) and self.family != socket.AF_UNIX:
        raise RuntimeError(f"Tests must not reach the network (tried {address!r})")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(scope="session", autouse=True)
def _session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A ``MODELPORT_HOME`` of the session's own, for fixtures wider than one test.

    :func:`_clean_environ` gives each test a fresh home, but a module- or
    session-scoped fixture is set up before it: one that built a gateway (whose
    governance catalog opens ``usage.db``) wrote into the user's real home.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELPORT_HOME", str(tmp_path_factory.mktemp("session-home")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _collect_all_garbage_at_the_end() -> Iterator[None]:
    """Collect what :func:`_collect_garbage` froze, once the last test is done.

    An object that outlived its test (a module's fixture, say) and was dropped
    later lies in the frozen generation; if it held an unclosed socket, its
    ResourceWarning comes here, in the last test's teardown, rather than never.
    """
    yield
    gc.unfreeze()
    gc.collect()


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect garbage as each test ends, so a leak fails the test that made it.

    A socket, subprocess or event loop left unclosed in a reference cycle (an SDK
    client is one) is finalised only when the garbage collector next runs, and its
    ResourceWarning (an error here: ``filterwarnings`` in pyproject.toml) then failed
    whichever later test was running. Collected here, at this test's teardown and
    inside its warning capture, pytest's unraisable-exception hook reports it
    against this test. Set up before the test's other fixtures, so torn down after
    them: what they close is closed by then.

    What survives is frozen (``gc.freeze``), so the next test's collection walks
    only the objects made since: a full collection of this process (~250,000
    objects with the SDKs imported) takes ~0.2 s, a frozen one a few milliseconds.
    """
    yield
    gc.collect()
    gc.freeze()


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
