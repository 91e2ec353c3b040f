"""``modelport plugins check``: the conformance kit against good and bad plugins."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelport.plugin_host.conformance import check_plugin
from modelport.plugin_host.scaffold import install_sdk
from modelport.testing import FakeUpstream, Reply
from tests.plugin_host.conftest import scripted, write_plugin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"


@pytest.mark.parametrize("name", ["example-python", "example-node"])
async def test_the_examples_pass_every_check(name: str, tmp_path: Path) -> None:
    plugin = tmp_path / name  # a copy, with the Node SDK installed as `plugins new` does
    shutil.copytree(EXAMPLES / name, plugin)
    if (plugin / "package.json").is_file():
        install_sdk(plugin)
    with FakeUpstream() as upstream:
        upstream.route(
            "POST",
            "/v1/chat/completions",
            Reply.fixture("openai/chat-stream-text-include-usage.sse", chunks="random"),
        )
        config = {"apiKey": "sk-test", "baseUrl": f"{upstream.url}/v1"}
        results = await check_plugin(plugin, provider_config=config, timeout=10.0)
    failed = [r for r in results if not r.ok]
    assert not failed, failed
    assert [r.name for r in results] == [
        "manifest",
        "initialize",
        "register",
        "stream",
        "complete",
        "cancel",
        "errors",
        "shutdown",
    ]


async def test_a_bad_manifest_stops_at_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "modelport-plugin.toml").write_text('name = "x"\n')
    results = await check_plugin(tmp_path)
    assert [(r.name, r.ok) for r in results] == [("manifest", False)]
    assert "'version' must be" in results[0].detail


async def test_exit_during_initialize_is_reported_with_stderr(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "p", scripted("exit_in_initialize"))
    results = await check_plugin(folder, timeout=5.0)
    assert [(r.name, r.ok) for r in results] == [("manifest", True), ("initialize", False)]
    assert "exit code 7" in results[1].detail and "cannot initialize" in results[1].detail


async def test_a_hanging_plugin_fails_stream_and_complete(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "p", scripted("hang"))
    # Per step: initialize and shutdown must pass in it too (0.5 s is tight on a loaded
    # machine, where a Python plugin took 0.27 s to start).
    results = {r.name: r for r in await check_plugin(folder, timeout=1.0)}
    assert results["register"].ok
    assert not results["stream"].ok and "did not answer provider.stream" in results["stream"].detail
    assert not results["complete"].ok
    assert results["shutdown"].ok


async def test_garbage_and_a_plugin_that_ignores_unknown_providers(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "p", scripted("ok"))
    results = {r.name: r for r in await check_plugin(folder, timeout=2.0)}
    assert results["stream"].ok and results["complete"].ok and results["cancel"].ok
    assert not results["errors"].ok  # it answers for providers it never registered
    folder = write_plugin(tmp_path, "g", scripted("garbage"))
    results = {r.name: r for r in await check_plugin(folder, timeout=2.0)}
    assert not results["stream"].ok and "not the protocol" in results["stream"].detail


async def test_a_plugin_that_ignores_cancel_and_unknown_requests_fails(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path, "p", scripted("ignore_all"))
    results = {r.name: r for r in await check_plugin(folder, timeout=1.0)}
    assert results["stream"].ok and results["complete"].ok
    assert not results["cancel"].ok and "no -32800 answer" in results["cancel"].detail
    assert not results["errors"].ok
    assert "unknown method got no JSON-RPC error answer" in results["errors"].detail
