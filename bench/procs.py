"""The two server processes (fake upstream, gateway) and what /proc says about them.

psutil is not a dependency, so CPU and memory come straight from
``/proc/PID/stat`` (utime + stime, in clock ticks) and ``/proc/PID/status``
(``VmRSS`` now, ``VmHWM`` the peak since start).
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Process",
    "free_port",
    "raise_fd_limit",
    "start_gateway",
    "start_upstream",
    "stop",
]

_TICK = os.sysconf("SC_CLK_TCK")
_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Process:
    """A server we started: its Popen, port, log file and start-up time."""

    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time so far (all threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of stat(5), counted after the ")" that ends the command name.
        return (int(fields[11]) + int(fields[12])) / _TICK

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB (10^6 bytes)."""
        values: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024 / 1e6
        return values["VmRSS"], values["VmHWM"]


def raise_fd_limit(wanted: int = 8192) -> None:
    """Lift the soft open-files limit (children inherit it): 1,000 streams need ~2,000."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_upstream(folder: Path) -> Process:
    """``python -m bench.upstream`` in its own process; returns once it listens."""
    log = folder / "upstream.log"
    started = time.perf_counter()
    popen = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream", "--port", "0"],
        cwd=_ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
    )
    assert popen.stdout is not None
    line = popen.stdout.readline().decode()
    if not line.startswith("PORT "):
        popen.kill()
        popen.wait()
        raise RuntimeError(f"the fake upstream did not start:\n{_tail(log)}")
    process = Process(popen, int(line.split()[1]), log)
    process.ready_s = time.perf_counter() - started
    return process


def start_gateway(
    upstream_port: int,
    folder: Path,
    extra_args: list[str],
    env: dict[str, str] | None = None,
    *,
    extra_config: str = "",
    prepare: Callable[[Path], None] | None = None,
) -> Process:
    """``modelport serve`` with a fresh MODELPORT_HOME that points at the upstream.

    ``env`` adds to the environment (``PYTHONPATH`` to run another build);
    ``extra_config`` goes at the top of its ``config.toml`` (``{upstream}`` in it
    becomes the upstream's base URL), and ``prepare`` gets the home folder
    before the gateway starts (to issue virtual keys in it).

    Readiness is timed from just before the process is spawned to the first
    ``200`` from ``GET /health``: interpreter start, imports, config, the
    ledger and uvicorn's bind are all inside it, as a user would see it.
    """
    home = Path(tempfile.mkdtemp(prefix="home-", dir=folder))
    (home / "config.toml").write_text(
        extra_config.replace("{upstream}", f"http://127.0.0.1:{upstream_port}/v1")
        + "\n[connections.bench]\n"
        'compat = "openai"\n'
        f'base_url = "http://127.0.0.1:{upstream_port}/v1"\n'
        "max_retries = 0\n"
    )
    if prepare is not None:
        prepare(home)
    # cwd is the fresh home too, so no project .modelport/ is discovered.
    env = dict(os.environ, **(env or {}), MODELPORT_HOME=str(home))
    port = free_port()
    log = home / "gateway.log"
    command = [sys.executable, "-m", "modelport", "serve", "--port", str(port), *extra_args]
    started = time.perf_counter()
    popen = subprocess.Popen(
        command,
        cwd=home,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/health"
    # Loopback only: never let an http_proxy variable route the probe elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = started + 30
    while time.perf_counter() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"the gateway exited with {popen.returncode}:\n{_tail(log)}")
        try:
            with opener.open(url, timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            time.sleep(0.005)
    else:
        popen.kill()
        raise RuntimeError(f"the gateway did not answer {url} within 30 s:\n{_tail(log)}")
    process = Process(popen, port, log)
    process.ready_s = time.perf_counter() - started
    return process


def _tail(log: Path, size: int = 3000) -> str:
    """The end of a server's log, for an error message (the folder is removed afterwards)."""
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


def stop(process: Process | None) -> None:
    """Terminate a server we started (only ours, by its pid) and reap it."""
    if process is None or process.popen.poll() is not None:
        return
    process.popen.terminate()
    try:
        process.popen.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.popen.kill()
        process.popen.wait()
