"""A real ``modelport serve`` child process for tests that need a whole gateway process:
signals, its memory, its open files, its exit.

``ServeProcess.start(home, ...)`` writes nothing itself: put ``config.toml`` (and
plugins) in ``home`` first. The process runs with ``home`` as ``MODELPORT_HOME``
and as its working directory (so no project ``.modelport/`` is found), on a
free loopback port, its output in ``home/gateway.log``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sse_stream(
    texts: list[str], *, model: str = "m", usage: bool = True
) -> tuple[bytes, list[int]]:
    """An OpenAI ``chat.completion.chunk`` stream of ``texts``, and the size of each event.

    Pass the sizes as a :class:`~modelport.testing.Reply`'s ``chunks`` so that
    every event is its own write (``chunk_delay`` apart).
    """
    head = {"id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": 1}
    head["model"] = model
    events: list[bytes] = []

    def event(choices: list[dict[str, object]], **extra: object) -> None:
        body = json.dumps({**head, "choices": choices, **extra}, separators=(",", ":"))
        events.append(f"data: {body}\n\n".encode())

    event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for text in texts:
        event([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
    event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if usage:
        tokens = {"prompt_tokens": 7, "completion_tokens": len(texts)}
        event([], usage={**tokens, "total_tokens": 7 + len(texts)})
    events.append(b"data: [DONE]\n\n")
    return b"".join(events), [len(e) for e in events]


@dataclass
class ServeProcess:
    """A running ``modelport serve``."""

    popen: subprocess.Popen[bytes]
    home: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @classmethod
    def start(
        cls,
        home: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 30.0,
    ) -> ServeProcess:
        port = free_port()
        environ = {**os.environ, **(env or {}), "MODELPORT_HOME": str(home)}
        log = (home / "gateway.log").open("wb")
        popen = subprocess.Popen(
            [sys.executable, "-m", "modelport", "serve", "--port", str(port), *args],
            cwd=home,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        process = cls(popen, home, port)
        deadline = time.monotonic() + ready_timeout
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"modelport serve exited ({popen.returncode}):\n{process.log}")
            try:
                if httpx.get(f"{process.url}/health", timeout=1).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"modelport serve never became ready:\n{process.log}")
            time.sleep(0.02)

    @property
    def log(self) -> str:
        try:
            return (self.home / "gateway.log").read_text(errors="replace")
        except OSError:
            return ""

    def rss_mb(self) -> float:
        """Resident memory now, in MB (10^6 bytes)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
        raise AssertionError("no VmRSS")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def terminate(self) -> None:
        self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        """Kill the process we started (by its pid) if it still runs, and reap it."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
