"""The plugin host against real child processes that behave well and badly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from modelport.aggregate import aaggregate
from modelport.errors import ConfigError, PluginError, RateLimitError
from modelport.events import FinishEvent, TextEvent
from modelport.types import ChatRequest, Message
from tests.plugin_host.conftest import FakeRegistry, HostFactory, scripted, write_plugin


def _request(model: str = "m1") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="hi")])


async def _started(make_host: HostFactory, home: Path, mode: str, **options: object):
    write_plugin(home / "plugins", "p", scripted(mode), triggers=["startup"])
    host = make_host(**options)
    await host.load()
    await host.start_startup_plugins()
    return host


async def test_a_started_plugin_registers_models_and_streams(
    make_host: HostFactory, home: Path, registry: FakeRegistry
) -> None:
    host = await _started(make_host, home, "ok")
    info = host.describe("p")
    assert info["state"] == "running" and info["pid"]
    assert info["providers"][0]["id"] == "scripted"
    assert [m.address for m in registry.models["scripted"]] == ["scripted/m1"]
    assert registry.models["scripted"][0].context_window == 1000

    provider = host.providers["scripted"]
    events = [event async for event in provider.stream(_request())]
    assert [e.text for e in events if isinstance(e, TextEvent)] == ["Hel", "lo"]
    assert isinstance(events[-1], FinishEvent) or any(isinstance(e, FinishEvent) for e in events)
    response = await provider.complete(_request())
    assert response.content == "Hello" and response.usage.input_tokens == 3


async def test_a_crash_mid_stream_fails_only_that_plugin(
    make_host: HostFactory, home: Path, registry: FakeRegistry
) -> None:
    write_plugin(home / "plugins", "good", scripted("ok", "good"), triggers=["startup"])
    write_plugin(home / "plugins", "bad", scripted("crash_mid_stream", "bad"), triggers=["startup"])
    host = make_host(max_restarts=0)
    await host.load()
    await host.start_startup_plugins()

    seen = []
    with pytest.raises(PluginError) as caught:
        async for event in host.providers["bad"].stream(_request()):
            seen.append(event)
    assert seen == [TextEvent(text="Hel")]
    assert caught.value.plugin == "bad"
    assert "exit code 5" in str(caught.value)
    # The plugin's log stays out of errors that reach API clients ...
    assert "dying mid-stream" not in str(caught.value)
    await asyncio.sleep(0.05)
    info = host.describe("bad", stderr=True)
    assert info["state"] == "crashed" and info["exit_code"] == 5
    assert "dying mid-stream" not in info["error"]
    assert "dying mid-stream" in info["stderr"]  # ... and is shown where operators look
    assert "bad" not in registry.providers  # its models are gone

    response = await host.providers["good"].complete(_request())  # the other one carries on
    assert response.content == "Hello"


async def test_a_hanging_plugin_times_out_and_gets_a_cancel(
    make_host: HostFactory, home: Path
) -> None:
    host = await _started(make_host, home, "hang", request_timeout=0.3)
    with pytest.raises(PluginError, match="did not answer provider.stream within 0.3 s"):
        [e async for e in host.providers["scripted"].stream(_request())]
    await asyncio.sleep(0.2)
    assert any(
        line.startswith("cancelled req-") for line in host.describe("p", stderr=True)["stderr"]
    )
    assert host.describe("p")["state"] == "running"  # a slow plugin is not a dead one


async def test_garbage_on_stdout_is_a_plugin_error_naming_the_plugin(
    make_host: HostFactory, home: Path
) -> None:
    host = await _started(make_host, home, "garbage", max_restarts=0)
    with pytest.raises(PluginError) as caught:
        [e async for e in host.providers["scripted"].stream(_request())]
    assert caught.value.plugin == "p"
    assert "not the protocol" in str(caught.value) and "this is not json" in str(caught.value)
    await asyncio.sleep(0.1)
    assert host.describe("p")["state"] == "crashed"


async def test_registering_twice_is_refused_and_reported(
    make_host: HostFactory, home: Path
) -> None:
    host = await _started(make_host, home, "register_twice")
    info = host.describe("p", stderr=True)
    assert info["state"] == "running"
    assert [p["id"] for p in info["providers"]] == ["scripted"]
    assert any("already registered" in problem for problem in info["problems"])
    second = next(line for line in info["stderr"] if line.startswith("second register"))
    assert json.loads(second.split(": ", 1)[1])["error"]["data"]["class"] == "InvalidRequestError"


async def test_a_provider_id_may_not_shadow_a_builtin_or_another_plugin(
    make_host: HostFactory, home: Path
) -> None:
    write_plugin(home / "plugins", "one", scripted("ok", "Same Name"), triggers=["startup"])
    write_plugin(home / "plugins", "two", scripted("ok", "same-name"), triggers=["startup"])
    write_plugin(home / "plugins", "three", scripted("shadow_builtin"), triggers=["startup"])
    host = make_host()
    await host.load()
    await host.start_startup_plugins()
    owners = {pid: p.registration.plugin for pid, p in host.providers.items()}
    assert list(owners) == ["same-name"]  # normalised: lower case, no spaces
    loser = "two" if owners["same-name"] == "one" else "one"
    assert "registered it first" in host.describe(loser)["problems"][0]
    assert "shadow the built-in 'openai'" in host.describe("three")["problems"][0]


async def test_exit_during_initialize(make_host: HostFactory, home: Path) -> None:
    write_plugin(home / "plugins", "p", scripted("exit_in_initialize"))
    host = make_host()
    await host.load()
    with pytest.raises(PluginError, match="failed to start") as caught:
        await host.start("p")
    assert "exit code 7" in str(caught.value) and "cannot initialize" not in str(caught.value)
    info = host.describe("p", stderr=True)
    assert info["state"] == "crashed" and info["exit_code"] == 7
    assert "fatal: cannot initialize" in info["stderr"]


async def test_initialize_times_out(make_host: HostFactory, home: Path) -> None:
    write_plugin(home / "plugins", "p", scripted("no_initialize_answer"))
    host = make_host(initialize_timeout=0.3)
    await host.load()
    with pytest.raises(PluginError, match="did not answer initialize within 0.3 s"):
        await host.start("p")
    assert host.describe("p")["state"] == "crashed"
    assert host.describe("p")["pid"] is None  # the silent child was killed


async def test_an_error_keeps_its_class_status_and_retry_after(
    make_host: HostFactory, home: Path
) -> None:
    host = await _started(make_host, home, "error_reply")
    with pytest.raises(RateLimitError) as caught:
        await host.providers["scripted"].complete(_request())
    assert caught.value.status == 429 and caught.value.retry_after == 7
    assert caught.value.connection == "scripted" and caught.value.model == "m1"


async def test_a_cancelled_caller_sends_cancel_request(make_host: HostFactory, home: Path) -> None:
    host = await _started(make_host, home, "slow")
    stream = host.providers["scripted"].stream(_request())
    assert await anext(stream) == TextEvent(text="Hel")
    await stream.aclose()  # the caller went away
    for _ in range(50):
        await asyncio.sleep(0.02)
        if any(line.startswith("cancelled") for line in host.describe("p", stderr=True)["stderr"]):
            break
    else:
        raise AssertionError("the plugin never saw $/cancelRequest")


async def test_a_crashed_startup_plugin_restarts_with_backoff_then_gives_up(
    make_host: HostFactory, home: Path
) -> None:
    host = await _started(
        make_host, home, "crash_after_start", max_restarts=2, restart_backoff=0.05
    )
    for _ in range(200):
        await asyncio.sleep(0.05)
        info = host.describe("p")
        if info["error"] and "gave up" in info["error"]:
            break
    else:
        raise AssertionError(f"never gave up: {host.describe('p')}")
    assert info["restarts"] == 2 and info["state"] == "crashed" and info["exit_code"] == 9


async def test_a_manual_start_after_giving_up_works(make_host: HostFactory, home: Path) -> None:
    folder = write_plugin(home / "plugins", "p", scripted("crash_if_file"), triggers=["startup"])
    (folder / "crash").write_text("")
    host = make_host(max_restarts=1, restart_backoff=0.05)
    await host.load()
    await host.start_startup_plugins()
    for _ in range(200):
        await asyncio.sleep(0.05)
        if "gave up" in (host.describe("p")["error"] or ""):
            break
    else:
        raise AssertionError(f"never gave up: {host.describe('p')}")
    assert host.describe("p")["state"] == "crashed" and host.providers == {}
    (folder / "crash").unlink()  # the user fixed the problem
    await host.start("p")
    assert host.describe("p")["state"] == "running" and "scripted" in host.providers
    assert host.describe("p")["error"] is None


async def test_restarts_back_off_exponentially_up_to_the_maximum(
    make_host: HostFactory, home: Path
) -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    host = await _started(
        make_host,
        home,
        "crash_after_start",
        max_restarts=5,
        restart_backoff=0.5,
        max_backoff=3.0,
        sleep=sleep,
    )
    for _ in range(200):
        await asyncio.sleep(0.05)
        if "gave up" in (host.describe("p")["error"] or ""):
            break
    else:
        raise AssertionError(f"never gave up: {host.describe('p')}")
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert host.describe("p")["restarts"] == 5


async def test_stop_kills_a_plugin_that_ignores_shutdown(
    make_host: HostFactory, home: Path
) -> None:
    host = await _started(make_host, home, "ignore_shutdown", shutdown_timeout=0.2, kill_grace=0.3)
    await host.stop("p")
    info = host.describe("p")
    assert info["state"] == "stopped" and info["pid"] is None


async def test_the_child_gets_a_minimal_environment(
    make_host: HostFactory, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret")
    monkeypatch.setenv("ALLOWED_THING", "yes")
    monkeypatch.setenv("NOT_ALLOWED", "no")
    write_plugin(home / "plugins", "p", scripted("env"), env=["ALLOWED_THING"])
    host = make_host()
    await host.load()
    await host.start("p")
    events = [e async for e in host.providers["scripted"].stream(_request())]
    env = json.loads("".join(e.text for e in events if isinstance(e, TextEvent)))
    assert env["ALLOWED_THING"] == "yes" and "PATH" in env
    assert not {"OPENAI_API_KEY", "GITHUB_TOKEN", "NOT_ALLOWED", "MODELPORT_HOME"} & set(env)


async def test_a_missing_program_is_reported(make_host: HostFactory, home: Path) -> None:
    write_plugin(home / "plugins", "p", ["definitely-not-a-program-xyz"])
    host = make_host()
    await host.load()
    with pytest.raises(ConfigError, match="'definitely-not-a-program-xyz' is not installed"):
        await host.start("p")


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["definitely-not-a-program-xyz"], "its command 'definitely-not-a-program-xyz' is not "
         "installed or not on PATH"),
        ([sys.executable, "no_such_plugin.py"], "no_such_plugin.py does not exist: correct "
         "'command' in its modelport-plugin.toml"),
    ],
)  # fmt: skip
async def test_a_startup_plugin_that_cannot_launch_says_why_once_and_is_not_restarted(
    make_host: HostFactory, home: Path, command: list[str], said: str
) -> None:
    """Found before anything starts, as `modelport doctor` finds it; a restart cannot help."""
    write_plugin(home / "plugins", "p", command, triggers=["startup"])
    host = make_host(max_restarts=3, restart_backoff=0.01)
    await host.load()
    await host.start_startup_plugins()
    await asyncio.sleep(0.2)  # several backoffs: none may start it
    info = host.describe("p", stderr=True)
    assert said in info["error"]
    assert info["restarts"] == 0 and info["state"] != "running"
    assert not [line for line in info["stderr"] if "--- run" in line]  # never launched


async def test_an_invalid_manifest_is_listed_with_its_error(
    make_host: HostFactory, home: Path
) -> None:
    folder = home / "plugins" / "broken"
    folder.mkdir()
    (folder / "modelport-plugin.toml").write_text('name = "broken"\nversion = "1"\n')
    write_plugin(home / "plugins", "fine", scripted("ok"))
    host = make_host()
    await host.load()
    assert host.describe("broken")["state"] == "invalid"
    assert "'type' must be" in host.describe("broken")["error"]
    with pytest.raises(ConfigError):
        await host.start("broken")
    await host.start("fine")
    assert host.describe("fine")["state"] == "running"


async def test_stream_and_complete_share_one_aggregate(make_host: HostFactory, home: Path) -> None:
    host = await _started(make_host, home, "ok")
    streamed = await aaggregate(host.providers["scripted"].stream(_request()), model="m1")
    assert streamed.content == "Hello" and streamed.finish_reason == "stop"
    assert streamed.usage.input_tokens == 3  # usage taken from the final answer


async def test_a_cancelled_task_sends_cancel_request(make_host: HostFactory, home: Path) -> None:
    host = await _started(make_host, home, "slow")
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in host.providers["scripted"].stream(_request()):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()  # a gateway client disconnecting looks like this
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        await asyncio.sleep(0.02)
        if any(line.startswith("cancelled") for line in host.describe("p", stderr=True)["stderr"]):
            break
    else:
        raise AssertionError("the plugin never saw $/cancelRequest")
    assert host.describe("p")["state"] == "running"


async def test_request_ids_are_unique_across_plugins_and_answers_match_by_id(
    make_host: HostFactory, home: Path
) -> None:
    write_plugin(home / "plugins", "a", scripted("reverse", "a"), triggers=["startup"])
    write_plugin(home / "plugins", "b", scripted("reverse", "b"), triggers=["startup"])
    host = make_host()
    await host.load()
    await host.start_startup_plugins()

    def ask(pid: str, text: str):
        request = ChatRequest(model="m1", messages=[Message(role="user", content=text)])
        return host.providers[pid].complete(request)

    asks = [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2"), ("a", "a3"), ("b", "b3")]
    results = await asyncio.wait_for(asyncio.gather(*(ask(pid, t) for pid, t in asks)), 10)
    # Each plugin answered its three requests last-first: every answer still found its caller.
    assert [r.content for r in results] == [text for _, text in asks]
    ids = [
        int(line.removeprefix("rpc id "))
        for name in ("a", "b")
        for line in host.describe(name, stderr=True)["stderr"]
        if line.startswith("rpc id ")
    ]
    assert len(ids) == 6 and len(set(ids)) == 6, ids  # as seen on the wire


NODE_SCRIPTED = Path(__file__).with_name("_scripted_plugin.js")


def _node(mode: str) -> list[str]:
    return ["node", str(NODE_SCRIPTED), mode, "node-scripted"]


async def test_a_node_plugin_streams_crashes_and_prints_garbage(
    make_host: HostFactory, home: Path
) -> None:
    for mode in ("ok", "crash_mid_stream", "garbage"):
        write_plugin(home / "plugins", f"node-{mode}", _node(mode))
    host = make_host(max_restarts=0)
    await host.load()

    await host.start("node-ok")
    events = [e async for e in host.providers["node-scripted"].stream(_request())]
    assert "".join(e.text for e in events if isinstance(e, TextEvent)) == "Hello"
    await host.stop("node-ok")

    await host.start("node-crash_mid_stream")
    with pytest.raises(PluginError, match="exit code 5"):
        [e async for e in host.providers["node-scripted"].stream(_request())]
    await asyncio.sleep(0.05)
    assert host.describe("node-crash_mid_stream")["state"] == "crashed"

    await host.start("node-garbage")
    with pytest.raises(PluginError, match="not the protocol.*<html>") as caught:
        [e async for e in host.providers["node-scripted"].stream(_request())]
    assert caught.value.plugin == "node-garbage"


async def test_a_node_plugin_that_exits_during_initialize(
    make_host: HostFactory, home: Path
) -> None:
    write_plugin(home / "plugins", "n", _node("exit_in_initialize"))
    host = make_host()
    await host.load()
    with pytest.raises(PluginError, match="exit code 7"):
        await host.start("n")
    assert "node: cannot initialize" in host.describe("n", stderr=True)["stderr"]


async def test_ensure_started_loads_once_and_starts_what_never_ran(
    make_host: HostFactory, home: Path
) -> None:
    write_plugin(home / "plugins", "p", scripted("ok"), triggers=["startup"])
    write_plugin(home / "plugins", "manual", scripted("ok", "manual"))
    host = make_host()
    await host.ensure_started()
    assert host.describe("p")["state"] == "running"
    assert host.describe("manual")["state"] == "loaded"
    pid = host.describe("p")["pid"]
    await host.ensure_started()  # idempotent
    assert host.describe("p")["pid"] == pid


async def test_a_grandchild_holding_the_pipes_does_not_hide_a_crash(
    make_host: HostFactory, home: Path
) -> None:
    command = " ".join(scripted("crash_mid_stream"))
    write_plugin(home / "plugins", "p", ["sh", "-c", f"sleep 30 & exec {command}"])
    host = make_host(max_restarts=0)
    await host.load()
    await host.start("p")
    with pytest.raises(PluginError, match="exit code 5"):
        await asyncio.wait_for(
            aaggregate(host.providers["scripted"].stream(_request()), model="m1"), 10
        )


async def test_a_start_cancelled_during_initialize_leaves_no_child(
    make_host: HostFactory, home: Path
) -> None:
    write_plugin(home / "plugins", "p", scripted("no_initialize_answer"))
    host = make_host(initialize_timeout=30)
    await host.load()
    task = asyncio.create_task(host.start("p"))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if host.describe("p")["pid"]:
            break
    process = host._plugins["p"].process
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert process is not None and await asyncio.wait_for(process.wait(), 5) is not None
    assert host.describe("p")["state"] == "stopped"


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie nobody reaped yet counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def _wait_gone(pid: int, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if _gone(pid):
            return True
        await asyncio.sleep(0.05)
    return _gone(pid)


@pytest.mark.parametrize("how", ["stop", "crash"])
async def test_background_children_do_not_outlive_the_plugin(
    make_host: HostFactory, home: Path, how: str
) -> None:
    mode = "ok" if how == "stop" else "crash_after_start"
    command = " ".join(scripted(mode))
    folder = write_plugin(
        home / "plugins",
        "p",
        ["sh", "-c", f"sleep 777 </dev/null >/dev/null 2>&1 & echo $! > sleep.pid; exec {command}"],
    )
    host = make_host(max_restarts=0, kill_grace=0.5)
    await host.load()
    sleeper = 0
    try:
        await host.start("p")
        sleeper = int((folder / "sleep.pid").read_text())
        assert not _gone(sleeper)
        if how == "stop":
            await host.stop("p")
            assert host.describe("p")["exit_code"] == 0
        else:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if host.describe("p")["state"] == "crashed":
                    break
            assert host.describe("p")["exit_code"] == 9
        assert await _wait_gone(sleeper), "the plugin's background child is still running"
    finally:
        if sleeper:
            with contextlib.suppress(ProcessLookupError):
                os.kill(sleeper, signal.SIGKILL)


async def test_each_run_is_marked_in_the_log(make_host: HostFactory, home: Path) -> None:
    folder = write_plugin(home / "plugins", "p", scripted("crash_if_file"))
    (folder / "crash").write_text("")
    host = make_host(max_restarts=0)
    await host.load()
    await host.start("p")
    for _ in range(100):
        await asyncio.sleep(0.05)
        if host.describe("p")["state"] == "crashed":
            break
    first_error = host.describe("p")["error"]
    assert "exit code 9" in first_error and "crashing because" not in first_error
    (folder / "crash").unlink()
    await host.start("p")
    await host.stop("p")
    log = host.describe("p", stderr=True)["stderr"]
    second = log.index("[modelport] --- run 2 ---")
    assert log.index("[modelport] --- run 1 ---") < log.index("crashing because ./crash exists")
    assert "crashing because ./crash exists" not in log[second:]  # the old run stays in its part


def test_log_lines_are_numbered_so_a_reader_gets_only_what_is_new() -> None:
    from modelport.plugin_host.host import LogLines

    lines = LogLines(3)
    assert lines.since(0) == [] and lines.total == 0
    for text in ("a", "b"):
        lines.append(text)
    assert lines.since(0) == ["a", "b"] and lines.since(1) == ["b"] and lines.since(2) == []
    for text in ("c", "d", "e"):
        lines.append(text)
    # Five lines written, three kept: a reader at 1 missed "b" (dropped) and gets what is kept.
    assert lines.total == 5 and lines.since(1) == ["c", "d", "e"] and lines.since(4) == ["e"]
