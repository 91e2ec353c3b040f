"""An idle ``modelport serve`` holds only what serving needs.

``modelport serve`` replaces its process with :mod:`modelport.server._standalone`
(the CLI's libraries stay behind); that process must not load what only calls
need either. Both are checked on real processes, before any chat traffic.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

#: Loaded on first use, never by a gateway waiting for its first call: the upstream
#: HTTP stacks (aiohttp is imported by the first call), SDKs, test and other servers'
#: libraries, websockets (uvicorn's ws="none": no route takes one), and the CLI's
#: own (Typer, Rich, pydantic through Typer), left behind by the exec (Click stays:
#: uvicorn imports it).
NOT_AT_IDLE = [
    "aiohttp",
    "anthropic",
    "authlib",
    "h11",
    "httpx",
    "hypothesis",
    "openai",
    "pydantic",
    "pytest",
    "redis",
    "rich",
    "typer",
    "websockets",
]

# What the exec runs, with a thread that reports once /health answers.
_PROBE = """
import json, os, signal, sys, threading, time, urllib.request

port = json.loads(sys.argv[1])["port"]

def report():
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            break
        except Exception:
            if time.monotonic() > deadline:
                os._exit(3)
            time.sleep(0.05)
    print(json.dumps(sorted(sys.modules)), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=report, daemon=True).start()
from modelport.server._standalone import main
main(sys.argv[1:])
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[connections.up]\ncompat = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    return home


def test_the_gateway_process_has_not_loaded_what_its_first_call_needs(tmp_path: Path) -> None:
    home = _home(tmp_path)
    options = {"host": "127.0.0.1", "port": _free_port()}
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
        env=env,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("[")), None)
    assert line is not None, result.stderr[-2000:]
    loaded = sorted({name.split(".")[0] for name in json.loads(line)} & set(NOT_AT_IDLE))
    assert loaded == []


def test_serve_becomes_the_lean_gateway_process(tmp_path: Path) -> None:
    home = _home(tmp_path)
    port = _free_port()
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "modelport", "serve", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
                break
            except httpx.TransportError:
                assert process.poll() is None, "serve exited"
                assert time.monotonic() < deadline, "serve did not answer /health"
                time.sleep(0.05)
        # The same process (its PID), now running the gateway module alone.
        command = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert b"modelport.server._standalone" in command
        status = Path(f"/proc/{process.pid}/status").read_text()
        rss = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS"))
        print(f"idle gateway: {rss / 1000:.1f} MB resident")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    # uvicorn ends a SIGTERM'd server by re-raising the signal once it has shut down.
    assert process.returncode in (0, -15), err.decode(errors="replace")[-2000:]
    assert b"Application shutdown complete" in err
