"""An idle ``modelport serve`` loads only what serving needs: heavy modules wait for first use.

The gateway runs for real (``python -m modelport serve``) in a child process; a
thread in it waits for ``/health`` and reports the modules loaded and the
resident memory, before any chat traffic.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

#: Loaded on first use, never by a gateway waiting for its first call: the upstream
#: HTTP stacks (aiohttp is imported by the first call), SDKs, test and other servers'
#: libraries, and websockets (uvicorn's ws="none": no route takes one).
NOT_AT_IDLE = [
    "aiohttp",
    "anthropic",
    "authlib",
    "h11",
    "httpx",
    "hypothesis",
    "openai",
    "pytest",
    "redis",
    "websockets",
]

_PROBE = """
import json, os, runpy, signal, sys, threading, time, urllib.request

port = int(sys.argv[1])

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
    status = open("/proc/self/status").read()
    rss = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS"))
    print(json.dumps({"modules": sorted(sys.modules), "rss_kb": rss}), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=report, daemon=True).start()
sys.argv = ["modelport", "serve", "--port", str(port)]
runpy.run_module("modelport", run_name="__main__", alter_sys=True)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_idle_gateway_has_not_loaded_what_its_first_call_needs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[connections.up]\ncompat = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    env = {**os.environ, "MODELPORT_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(_free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
        env=env,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("{")), None)
    assert line is not None, result.stderr[-2000:]
    report = json.loads(line)
    loaded = sorted({name.split(".")[0] for name in report["modules"]} & set(NOT_AT_IDLE))
    print(f"idle gateway: {report['rss_kb'] / 1000:.1f} MB resident")
    assert loaded == []
