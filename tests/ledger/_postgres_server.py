"""A throwaway PostgreSQL server of our own, to stop and start under a test.

The outage tests stop the database mid-run. They do that to a server of their
own (``initdb`` in a temporary folder, ``pg_ctl`` on a free loopback port),
never to the shared cluster that ``.ci/run`` starts: stopping that one would
fail whatever else is using it at the moment (the other ledger tests, or
another checkout's suite on the same machine). The binaries are Debian's
(``apt-get install postgresql``, as ``.ci/run`` does); the server refuses to run
as root, so as root it runs as the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "postgres_bindir", "why_no_postgres"]


def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` with ``initdb`` and ``pg_ctl``, else pg_config's."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()],
    )
    for folder in reversed(candidates):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    pg_config = shutil.which("pg_config")
    if pg_config:
        folder = Path(
            subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        )
        if (folder / "initdb").exists():
            return folder
    return None


def why_no_postgres() -> str | None:
    """Why a private server cannot run here (None: it can)."""
    if postgres_bindir() is None:
        return "no PostgreSQL server binaries (apt-get install postgresql, as .ci/run does)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to become the postgres user"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """``initdb`` + ``pg_ctl``: a server on 127.0.0.1 that trusts local connections."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        assert bindir is not None, why_no_postgres()
        self._bin = bindir
        self.port = _free_port()
        self._root = Path(tempfile.mkdtemp(prefix="modelport-pg-"))
        self.data = self._root / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self._root, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        command = [str(self._bin / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}):\n{result.stderr[-2000:]}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self._root / "log"), "-w",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop at once, dropping every client connection (``-m fast``)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        """Stop (if running) and remove the whole folder."""
        try:
            if self.running():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
