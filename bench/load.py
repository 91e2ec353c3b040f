"""Closed-loop load from ``wrk``: requests per second and p50/p99 latency.

wrk is the lean client here (C, one thread, LuaJIT only to set the POST body):
it costs far less CPU per request than any Python client, which matters on a
2-core machine where the client, the upstream and the gateway share the cores.
Its latency is request sent → response complete (the whole stream for SSE).
Time to first byte comes from :mod:`bench.client` instead, which wrk cannot
measure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkResult", "ensure_wrk", "run_wrk", "write_script"]

# wrk reports latency in microseconds; done() prints one JSON line we can parse
# instead of scraping its human-readable table.
_LUA = """\
wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%%d,"duration_us":%%d,"bytes":%%d,"p50_us":%%d,"p90_us":%%d,' ..
    '"p99_us":%%d,"mean_us":%%f,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,' ..
    '"timeout":%%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    """The path to ``wrk``; installs the Debian package when running as root, else says how."""
    found = shutil.which("wrk")
    if found:
        return found
    install = ["apt-get", "install", "-y", "wrk"]
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing; installing the Debian package: " + " ".join(install), flush=True)
        done = subprocess.run(install, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            # The package index may be empty on a fresh image.
            subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL, check=False)
            subprocess.run(install, stdout=subprocess.DEVNULL, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(
        "The benchmark drives load with wrk, which is not installed.\n"
        "Install it with:  sudo apt-get install -y wrk   (Debian/Ubuntu)\n"
        "             or:  brew install wrk              (macOS)"
    )


#: Appended to the script by ``vary=True``: each request's body gets a number of its own
#: in place of ``__N__`` (wrk then builds each request, at a small cost to its own CPU).
#: The run's own tag keeps one run's requests apart from an earlier run's (wrk runs the
#: script afresh each time, so a counter alone would repeat them).
_VARY = """
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000)) .. "-"
local counter = 0
local head, tail = wrk.body:match("^(.-)__N__(.*)$")
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, head .. run .. counter .. tail)
end
"""


def write_script(body: bytes, folder: Path | None = None, *, vary: bool = False) -> Path:
    """A wrk Lua script that POSTs ``body`` and prints a ``BENCH {json}`` line.

    With ``vary``, ``__N__`` in the body becomes a number that differs for every
    request (so no two requests are alike: cache misses).
    """
    folder = folder or Path(tempfile.mkdtemp(prefix="modelport-bench-"))
    text = body.decode()
    if "]==]" in text:
        raise ValueError("the body must not contain ]==]")
    if vary and "__N__" not in text:
        raise ValueError("vary needs __N__ in the body")
    path = folder / f"post-{abs(hash((body, vary))):x}.lua"
    path.write_text(_LUA % text + (_VARY if vary else ""))
    return path


def run_wrk(wrk: str, url: str, script: Path, *, connections: int, seconds: float) -> WrkResult:
    """One closed-loop run: ``connections`` keep-alive connections, one thread."""
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            raw = json.loads(line[6:])
            break
    else:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1e3,
        p99_ms=raw["p99_us"] / 1e3,
        mean_ms=raw["mean_us"] / 1e3,
        errors=errors,
    )
