"""The example plugins (Python, Node and TypeScript, each with its SDK) against a fake upstream."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shutil
import socket
import sys
import tomllib
from pathlib import Path

import pytest

from modelport.aggregate import aaggregate
from modelport.config import parse_config
from modelport.errors import AuthError, NetworkError, RateLimitError
from modelport.plugin_host.discovery import PluginDir
from modelport.plugin_host.scaffold import install_sdk, render
from modelport.testing import FakeUpstream, Reply
from modelport.types import ChatRequest, Message, ToolDefinition
from tests._node import build
from tests.plugin_host.conftest import HostFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
PLUGINS = [("example-python", "python"), ("example-node", "node"), ("example-ts", "ts")]


@pytest.fixture(scope="session")
def examples(tmp_path_factory: pytest.TempPathFactory) -> PluginDir:
    """A copy of the examples, each as a user would have it: the SDK installed, built once."""
    root = tmp_path_factory.mktemp("examples")
    for name, language in PLUGINS:
        shutil.copytree(EXAMPLES / name, root / name)
        if language in ("node", "ts"):
            install_sdk(root / name)
        if language == "ts":
            build(root / name)
    return PluginDir(root, "shipped")


def _config(name: str, base_url: str, *, key_env: str | None = "EXAMPLE_KEY"):
    lines = [f"[connections.{name}]", f'compat = "plugin:{name}"', f'baseUrl = "{base_url}/v1"']
    if key_env:
        lines.append(f'api_key_env = "{key_env}"')
    return parse_config("\n".join(lines) + "\n")


@pytest.mark.parametrize(("name", "language"), PLUGINS)
def test_the_examples_are_what_the_scaffold_writes(name: str, language: str) -> None:
    rendered = render(language, name)  # type: ignore[arg-type]
    for relative, text in rendered.items():
        assert (EXAMPLES / name / relative).read_text() == text, relative
    present = {
        path.relative_to(EXAMPLES / name).as_posix()
        for path in (EXAMPLES / name).rglob("*")
        if path.is_file() and not {"node_modules", "dist", "__pycache__"} & set(path.parts)
    }
    assert present == set(rendered)  # nothing else: the SDK copy is made by `plugins new`


def _runtime_imports() -> set[str]:
    """The import names of modelport's runtime dependencies (not its test extra)."""
    project = tomllib.loads((EXAMPLES.parents[1] / "pyproject.toml").read_text())["project"]
    wanted = {
        re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower().replace("_", "-")
        for spec in project["dependencies"]
    }
    return {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in wanted for d in distributions)
    } | {"modelport"}


def test_the_python_scaffold_imports_only_what_modelport_installs() -> None:
    # It runs on modelport's own interpreter (its manifest says "python"), so an import
    # of a test-only package (httpx, say) would work here and fail for every user.
    tree = ast.parse(render("python", "any-name")["plugin.py"])
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
    }
    tops = {name.split(".")[0] for name in imported}
    outside = tops - set(sys.stdlib_module_names) - _runtime_imports() - {"__future__"}
    assert outside == set()
    assert "aiohttp" in tops  # the check above did see the plugin's HTTP client


@pytest.mark.parametrize(("name", "language"), PLUGINS)
async def test_example_streams_tool_calls_through_the_host(
    name: str,
    language: str,
    make_host: HostFactory,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    examples: PluginDir,
) -> None:
    monkeypatch.setenv("EXAMPLE_KEY", "sk-example")
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.fixture("openai/chat-stream-parallel-tool-calls.sse", chunks="random", split_seed=3),
    )
    host = make_host(examples, config=_config(name, upstream.url))
    await host.load()
    await host.start(name)
    provider = host.providers[name]
    assert [m.id for m in await provider.list_models()] == ["gpt-4o-mini"]

    request = ChatRequest(
        model="gpt-4o-mini",
        messages=[Message(role="user", content="weather?")],
        tools=[ToolDefinition(name="GetWeatherArgs")],
    )
    response = await aaggregate(provider.stream(request), model="gpt-4o-mini")
    assert response.finish_reason == "tool_calls"
    assert [call.name for call in response.tool_calls] == ["GetWeatherArgs", "get_stock_price"]
    assert json.loads(response.tool_calls[0].arguments)["city"] == "Edinburgh"

    sent = upstream.requests[0]
    assert sent.headers["authorization"] == "Bearer sk-example"
    body = sent.json()
    assert body["model"] == "gpt-4o-mini" and body["stream"] is True
    assert "providerConfig" not in body  # the secret went in the header, not upstream JSON

    completed = await provider.complete(request)
    assert completed.tool_calls == response.tool_calls


@pytest.mark.parametrize(("name", "language"), PLUGINS)
async def test_example_without_a_key_fails_with_an_auth_error(
    name: str,
    language: str,
    make_host: HostFactory,
    upstream: FakeUpstream,
    examples: PluginDir,
) -> None:
    host = make_host(examples, config=_config(name, upstream.url))
    await host.load()
    await host.start(name)
    request = ChatRequest(model="gpt-4o-mini", messages=[Message(role="user", content="hi")])
    with pytest.raises(AuthError, match=f"modelport keys set {name}"):
        await host.providers[name].complete(request)
    assert upstream.requests == []


@pytest.mark.parametrize(("name", "language"), PLUGINS)
async def test_example_passes_on_a_rate_limit_with_its_retry_after(
    name: str,
    language: str,
    make_host: HostFactory,
    upstream: FakeUpstream,
    examples: PluginDir,
) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.json({"error": {"message": "slow down"}}, status=429, headers={"retry-after": "4"}),
    )
    host = make_host(
        examples,
        config=_config(name, upstream.url, key_env=None),
        get_key=lambda provider_id: "sk-from-keyring" if provider_id == name else None,
    )
    await host.load()
    await host.start(name)
    request = ChatRequest(model="gpt-4o-mini", messages=[Message(role="user", content="hi")])
    with pytest.raises(RateLimitError) as caught:
        [event async for event in host.providers[name].stream(request)]
    assert caught.value.status == 429 and caught.value.retry_after == 4
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-from-keyring"


@pytest.mark.parametrize(("name", "language"), PLUGINS)
async def test_example_sends_no_retry_after_when_the_api_gave_none(
    name: str,
    language: str,
    make_host: HostFactory,
    upstream: FakeUpstream,
    examples: PluginDir,
) -> None:
    upstream.route(
        "POST", "/v1/chat/completions", Reply.json({"error": {"message": "busy"}}, status=429)
    )
    host = make_host(
        examples,
        config=_config(name, upstream.url, key_env=None),
        get_key=lambda provider_id: "sk-from-keyring",
    )
    await host.load()
    await host.start(name)
    request = ChatRequest(model="gpt-4o-mini", messages=[Message(role="user", content="hi")])
    with pytest.raises(RateLimitError) as caught:
        await host.providers[name].complete(request)
    assert caught.value.status == 429
    assert caught.value.retry_after is None  # not 0, which would mean "retry at once"


@pytest.mark.parametrize(("name", "language"), PLUGINS)
async def test_example_reports_an_unreachable_api_as_a_network_error(
    name: str,
    language: str,
    make_host: HostFactory,
    monkeypatch: pytest.MonkeyPatch,
    examples: PluginDir,
) -> None:
    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("EXAMPLE_KEY", "sk-example")
    host = make_host(examples, config=_config(name, f"http://127.0.0.1:{port}"))
    await host.load()
    await host.start(name)
    request = ChatRequest(model="gpt-4o-mini", messages=[Message(role="user", content="hi")])
    with pytest.raises(NetworkError, match="reach"):
        await host.providers[name].complete(request)
