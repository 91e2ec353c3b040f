"""Which database open_ledger picks, and that importing the ledger stays light."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import modelport.ledger as ledger_module
from modelport.ledger import CallRecord, default_database_url, open_ledger


def modelport_home() -> Path:
    return Path(os.environ["MODELPORT_HOME"])


def test_default_is_sqlite_under_modelport_home() -> None:
    path = modelport_home() / "usage.db"
    assert default_database_url() == f"sqlite:///{path}"
    assert not path.exists()
    with open_ledger() as ledger:
        ledger.record(CallRecord(started_at=datetime.now(UTC), connection="c", model="m"))
        assert ledger.flush(10)
        assert len(ledger.recent()) == 1
    assert path.is_file()


def test_config_database_url_is_used(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.db"
    with open_ledger(SimpleNamespace(database_url=f"sqlite:///{path}")) as ledger:
        assert ledger.recent() == []
    assert path.is_file()
    assert not (modelport_home() / "usage.db").exists()


def test_a_config_without_database_url_means_the_default() -> None:
    with open_ledger(SimpleNamespace(database_url=None)):
        pass
    assert (modelport_home() / "usage.db").is_file()


def test_an_explicit_url_beats_the_config(tmp_path: Path) -> None:
    config = SimpleNamespace(database_url=f"sqlite:///{tmp_path / 'config.db'}")
    with open_ledger(config, url=f"sqlite:///{tmp_path / 'explicit.db'}"):
        pass
    assert (tmp_path / "explicit.db").is_file()
    assert not (tmp_path / "config.db").exists()


def test_importing_the_ledger_does_not_import_sqlalchemy() -> None:
    code = (
        "import sys, modelport, modelport.ledger; "
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'; "
        "assert 'modelport.ledger' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_public_names() -> None:
    assert sorted(ledger_module.__all__) == ledger_module.__all__
    for name in ledger_module.__all__:
        assert getattr(ledger_module, name) is not None


def test_the_database_is_shown_without_its_password(tmp_path: Path) -> None:
    with open_ledger(url=f"sqlite:///{tmp_path / 'x.db'}") as ledger:
        assert ledger.database == f"sqlite:///{tmp_path / 'x.db'}"
