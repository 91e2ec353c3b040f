"""The web UI in a real browser: Debian's Chromium driven by Playwright, against a real
``modelport serve`` subprocess with a fake upstream and a real plugin process.

Chromium comes from the system (``apt-get install chromium``, as ``.ci/run`` does),
never from ``playwright install``. Screenshots go to ``build/screenshots/`` (ignored
by git).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelport.plugin_host.scaffold import render
from modelport.testing import FakeUpstream, Reply

CHROMIUM = Path(os.environ.get("MODELPORT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "build" / "screenshots"
#: The plugin every UI test runs: the `modelport plugins new` template, which forwards
#: chats to an OpenAI-compatible API with the key and base URL from its configFields.
PLUGIN = "acme"
ADMIN_KEY = "admin-key-for-the-ui-0123456789"
GATEWAY_KEY = "gateway-key-for-tools-0123456789"


def sse(*events: dict[str, Any]) -> tuple[bytes, list[int]]:
    """An OpenAI stream of ``events`` (chunk dicts) ending in [DONE], and each event's size."""
    frames = [f"data: {json.dumps(event)}\n\n".encode() for event in events]
    frames.append(b"data: [DONE]\n\n")
    return b"".join(frames), [len(frame) for frame in frames]


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-ui",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-ui",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m1",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def streamed_reply(pieces: list[str], *, delay: float = 0.0, **more: Any) -> Reply:
    """A stream that sends each piece of text as its own write, ``delay`` seconds apart."""
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    events += [chunk({}, "stop"), usage_chunk(11, len(pieces))]
    body, sizes = sse(*events)
    return Reply(
        body=body, content_type="text/event-stream", chunks=sizes, chunk_delay=delay, **more
    )


def last_chat(upstream: FakeUpstream) -> Any:
    """The last chat request the upstream got (the UI also lists models meanwhile)."""
    return [r for r in upstream.requests if r.path == "/v1/chat/completions"][-1]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A running ``modelport serve``: its URL, home folder and process."""

    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    def wait_plugin(self, name: str, state: str = "running", **headers: str) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while True:
            info = httpx.get(f"{self.url}/plugins/{name}", headers=headers).json()
            if info.get("state") == state or time.monotonic() > deadline:
                return info
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace")


def start_serve(
    home: Path,
    *,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Served:
    port = free_port()
    log = home / "serve.log"
    environ = {
        **os.environ,
        "MODELPORT_HOME": str(home),
        # Keys go to the owner-only file under MODELPORT_HOME, never the test machine's keyring.
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        **(env or {}),
    }
    for name in ("MODELPORT_GATEWAY_KEY", "MODELPORT_ADMIN_KEY"):
        if env is None or name not in env:
            environ.pop(name, None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelport",
                "serve",
                "--host",
                host,
                "--port",
                str(port),
                "--grace",
                "1",
            ],
            env=environ,
            cwd=cwd or home,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code in (200, 401):
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"modelport serve did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return Served(url=url, home=home, process=process, log=log)


def stop_serve(served: Served) -> None:
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
        try:
            served.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait()


def write_home(home: Path, upstream: FakeUpstream, *, plugin_triggers: str = '["startup"]') -> None:
    """A MODELPORT_HOME with the connection ``up`` (the fake upstream) and the plugin."""
    (home / "plugins").mkdir(parents=True)
    (home / "config.toml").write_text(
        "# written by the UI tests: this comment must survive the UI's edits\n"
        'default_model = "up/m1"\n\n'
        "[connections.up]\n"
        'compat = "openai"\n'
        f'base_url = "{upstream.url}/v1"\n'
        "max_retries = 0\n"
        "\n"
        "[connections.up.prices.m1]\n"
        "input = 1.0\n"
        "output = 2.0\n"
    )
    plugin = home / "plugins" / PLUGIN
    plugin.mkdir()
    for relative, text in render("python", PLUGIN).items():
        if relative == "modelport-plugin.toml":
            text = text.replace('triggers = ["startup"]', f"triggers = {plugin_triggers}")
        (plugin / relative).write_text(text, "utf-8")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API keeps an event loop running on
    # this thread while it is open, which would break every asyncio test after it.
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium (`apt-get install -y chromium`, "
            "as .ci/run does) or point MODELPORT_TEST_CHROMIUM at a Chromium binary"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        fake.route(
            "GET",
            "/v1/models",
            Reply.json({"object": "list", "data": [{"id": "m1", "object": "model"}]}),
        )
        yield fake


@pytest.fixture
def home(tmp_path: Path, upstream: FakeUpstream) -> Path:
    home = tmp_path / "home"
    write_home(home, upstream)
    return home


@pytest.fixture
def served(home: Path) -> Iterator[Served]:
    gateway = start_serve(home)
    try:
        yield gateway
    finally:
        stop_serve(gateway)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed browser test's report shows a screenshot's path, the page's errors and
    the gateway's log: a failure seen once on a loaded CI machine is otherwise hard to
    explain."""
    report = yield
    fixtures = getattr(item, "funcargs", {})
    if report.when == "call" and report.failed and "page" in fixtures:
        page, lines = fixtures["page"], []
        try:
            path = screenshot(page, "failed-" + item.name.replace("/", "_"))
            lines.append(f"screenshot: {path}; page at {page.url}")
        except Exception as exc:  # the page may have gone with the failure
            lines.append(f"no screenshot: {exc}")
        lines.append(f"page errors: {page.errors}")
        if isinstance(served := fixtures.get("served"), Served):
            lines.append("serve log (tail):\n" + served.output()[-4000:])
        report.sections.append(("browser", "\n".join(lines)))
    return report


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    # The CSP is bypassed: what the tests check (text stays text, nothing is fetched
    # from elsewhere) must hold by the UI's own code; the policy on top is checked apart.
    context = browser.new_context(
        base_url=served.url,
        viewport={"width": 1100, "height": 760},
        service_workers="block",
        bypass_csp=True,
    )
    # The UI may reach the gateway only: anything else would be a CDN or a leak.
    foreign: list[str] = []
    context.route("**/*", _only_the_gateway(served.url, foreign))
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: page.errors.append(str(error)))  # type: ignore[attr-defined]
    page.on(
        "console",
        lambda message: (
            page.errors.append(message.text)  # type: ignore[attr-defined]
            if message.type == "error"
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert foreign == [], "the UI asked for something beyond the gateway"


def _only_the_gateway(url: str, foreign: list[str]) -> Any:
    def handle(route: Any) -> None:
        if route.request.url.startswith(url + "/"):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    return handle


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


@pytest.fixture(autouse=True)
def _keep_screenshots_dir() -> None:
    # build/ is git-ignored; make sure an earlier `make clean` does not trip the tests.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
