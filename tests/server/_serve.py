"""A real ``modelport serve`` child process for tests that need a whole gateway process:
signals, its memory, its open files, its exit.

``ServeProcess.start(home, ...)`` writes nothing itself: put ``config.toml`` (and
plugins) in ``home`` first. The process runs with ``home`` as ``MODELPORT_HOME``
and as its working directory (so no project ``.modelport/`` is found), on a
free loopback port, its output in ``home/gateway.log`` (``log_name``).
``launch`` then ``wait_ready`` starts several side by side.
:func:`upstream_app` serves an upstream that computes its answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.routing import BaseRoute


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def upstream_app(routes: list[BaseRoute]) -> Iterator[str]:
    """A small Starlette upstream of ``routes`` on a loopback port, in a thread: its ``/v1`` URL.

    For tests whose upstream must compute its answer from the request (honest usage,
    a stream that never ends) where :class:`~modelport.testing.FakeUpstream` replays.
    """
    import uvicorn
    from starlette.applications import Starlette

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=routes), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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

    log_name: str = "gateway.log"

    @classmethod
    def start(
        cls,
        home: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 30.0,
        log_name: str = "gateway.log",
    ) -> ServeProcess:
        """Start one and wait until it answers ``/health``."""
        process = cls.launch(home, *args, env=env, log_name=log_name)
        process.wait_ready(ready_timeout)
        return process

    @classmethod
    def launch(
        cls,
        home: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        log_name: str = "gateway.log",
    ) -> ServeProcess:
        """Start one without waiting (several start side by side, then each waits ready).

        Several in one ``home`` need a ``log_name`` each.
        """
        port = free_port()
        environ = {**os.environ, **(env or {}), "MODELPORT_HOME": str(home)}
        log = (home / log_name).open("wb")
        popen = subprocess.Popen(
            [sys.executable, "-m", "modelport", "serve", "--port", str(port), *args],
            cwd=home,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return cls(popen, home, port, log_name)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until it answers ``/health``; kill it and raise if it exits or never does."""
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"modelport serve exited ({self.popen.returncode}):\n{self.log[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"modelport serve never became ready:\n{self.log[-3000:]}")
            time.sleep(0.02)

    @property
    def log(self) -> str:
        try:
            return (self.home / self.log_name).read_text(errors="replace")
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
