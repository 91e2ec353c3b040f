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


def _count_in_another_process(path: Path) -> int:
    """The rows another process reads, its connection the last one it closes."""
    script = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        "print(db.execute('SELECT count(*) FROM t').fetchone()[0])\n"
        "db.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    return int(result.stdout)


def test_opening_the_database_again_keeps_this_process_locks(tmp_path: Path) -> None:
    # Opening and closing the file (to make it private) used to drop every POSIX lock
    # this process held on it: another process closing last then deleted the -wal file
    # under the open connection, whose later writes nobody else saw until it closed
    # (the workers of `serve --workers N` hid their ledger rows that way).
    path = tmp_path / "usage.db"
    engine, _ = ledger_module.make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            conn.commit()
            again, _ = ledger_module.make_engine(f"sqlite:///{path}")
            again.dispose()
            assert _count_in_another_process(path) == 1
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
            conn.commit()
            assert _count_in_another_process(path) == 2
            assert path.with_name("usage.db-wal").exists()
    finally:
        engine.dispose()
