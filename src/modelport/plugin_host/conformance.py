"""``modelport plugins check``: run a plugin and check that it speaks the protocol.

The checks talk to the child directly through
:class:`~modelport.plugin_host.process.PluginProcess` (not through the host), so
they see exactly what the plugin sends: ``initialize`` answered, providers
registered before that, a stream whose final answer is the whole response its
chunks add up to, a completion, a ``$/cancelRequest`` answered with -32800 (or
at least no more chunks) and survived, JSON-RPC error answers (-32601 for an
unknown method, ``ModelNotFoundError`` for an unknown provider; a timeout is
not an answer), and a clean
``shutdown`` / ``exit``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport import plugin_protocol
from modelport.aggregate import Aggregator, aggregate
from modelport.errors import ModelportError
from modelport.plugin_host.diagnose import launch_problem
from modelport.plugin_host.manifest import load_manifest
from modelport.plugin_host.process import Call, MethodNotFound, PluginProcess, minimal_env
from modelport.plugin_host.provider import Registration, parse_registration
from modelport.types import ChatRequest, ChatResponse, Message

__all__ = ["CheckResult", "check_plugin"]

# After $/cancelRequest: how long to watch for more chunks, and how late a chunk may
# be and still count as already on its way when the cancel arrived.
_CANCEL_BOUND = 2.0
_CANCEL_SETTLE = 0.3


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


class _Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.registrations: list[Registration] = []
        self.errors: list[str] = []
        self.exited = False

    async def handle_request(self, process: PluginProcess, method: str, params: Any) -> Any:
        if method == "provider.register":
            try:
                self.registrations.append(parse_registration(params, plugin=self.name))
            except ModelportError as exc:
                self.errors.append(exc.message)
                raise
            return {}
        if method == "provider.unregister":
            return {}
        raise MethodNotFound(method)

    def handle_exit(self, process: PluginProcess, error: Any) -> None:
        self.exited = True


def _summary(response: ChatResponse) -> str:
    calls = ", ".join(f"{c.name}({c.arguments})" for c in response.tool_calls)
    text = response.content if len(response.content) <= 60 else response.content[:60] + "…"
    return f"text {text!r}, tool calls [{calls}], finish {response.finish_reason}"


class _Session:
    def __init__(self, process: PluginProcess, recorder: _Recorder, timeout: float) -> None:
        self.process = process
        self.recorder = recorder
        self.timeout = timeout
        self.request_ids = itertools.count(1)

    def params(self, provider: str, model: str, config: Mapping[str, Any], stream: bool) -> Any:
        from modelport.wire.openai_chat import build_request

        request = ChatRequest(
            model=model, messages=[Message(role="user", content="Say hello.")], max_tokens=32
        )
        options = build_request(request, stream=stream)
        options["providerConfig"] = dict(config)
        rid = f"check-{next(self.request_ids)}"
        return rid, {"requestId": rid, "providerId": provider, "options": options}

    async def stream(self, provider: str, model: str, config: Mapping[str, Any]) -> str:
        from modelport.wire.openai_chat import StreamDecoder, decode_completion

        rid, params = self.params(provider, model, config, True)
        call = await self.process.call("provider.stream", params, request_id=rid)
        decoder = StreamDecoder()
        streamed = Aggregator(model=model)
        chunks = 0
        while True:
            kind, value = await self.process.next(call, self.timeout)
            if kind == "result":
                break
            chunks += 1
            for event in decoder.feed_json(value):
                streamed.add(event)
        for event in decoder.end():
            streamed.add(event)
        if not isinstance(value, dict):
            raise AssertionError(f"the final answer is not a chat.completion object: {value!r}")
        final = aggregate(decode_completion(value), model=model)
        got = streamed.response()
        if chunks:
            for field in ("content", "reasoning", "tool_calls"):
                if getattr(got, field) != getattr(final, field):
                    raise AssertionError(
                        f"the final answer is not what the chunks add up to ({field}): "
                        f"chunks gave {_summary(got)}; the answer says {_summary(final)}"
                    )
            if got.finish_reason and got.finish_reason != final.finish_reason:
                raise AssertionError(
                    f"finish reason {final.finish_reason!r} in the answer, "
                    f"{got.finish_reason!r} in the chunks"
                )
        note = f"{chunks} chunks" if chunks else "no chunks (allowed, but nothing streams)"
        return f"{note}; {_summary(final)}"

    async def complete(self, provider: str, model: str, config: Mapping[str, Any]) -> str:
        from modelport.wire.openai_chat import decode_completion

        rid, params = self.params(provider, model, config, False)
        call = await self.process.call("provider.complete", params, request_id=rid)
        while True:
            kind, value = await self.process.next(call, self.timeout)
            if kind == "result":
                break
        if not isinstance(value, dict):
            raise AssertionError(f"the answer is not a chat.completion object: {value!r}")
        return _summary(aggregate(decode_completion(value), model=model))

    async def cancel(self, provider: str, model: str, config: Mapping[str, Any]) -> str:
        """After ``$/cancelRequest`` the plugin answers -32800, or at least stops streaming."""
        rid, params = self.params(provider, model, config, True)
        call = await self.process.call("provider.stream", params, request_id=rid)
        await asyncio.sleep(0.05)
        await self.process.notify("$/cancelRequest", {"requestId": rid})
        loop = asyncio.get_running_loop()
        sent = loop.time()
        deadline = sent + min(self.timeout, _CANCEL_BOUND)
        late = 0  # chunks written well after the cancel reached the plugin
        outcome: str | None = None
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    kind, _ = await asyncio.wait_for(call.queue.get(), remaining)
                except TimeoutError:
                    break
                if kind == "chunk":
                    late += loop.time() - sent > _CANCEL_SETTLE
                    continue
                outcome = kind
                break
        finally:
            self.process.forget(call)
        reply = call.error_reply
        if outcome == "error" and reply is None:
            raise AssertionError("the plugin exited after $/cancelRequest")
        cancelled = reply is not None and reply.get("code") == plugin_protocol.CANCELLED
        if late and not cancelled:
            raise AssertionError(
                f"{late} more chunks came after $/cancelRequest (more than "
                f"{_CANCEL_SETTLE:g} s later) and no -32800 answer: stop working on a "
                "cancelled request"
            )
        if not self.process.alive:
            raise AssertionError("the plugin exited after $/cancelRequest")
        await self.complete(provider, model, config)
        if cancelled:
            how = "answered -32800"
        elif outcome == "result":
            how = "had finished before the cancel arrived"
        elif outcome == "error":
            how = f"answered with error {reply.get('code') if reply else None}"
        else:
            how = "sent nothing more"
        return f"{how} after $/cancelRequest, and still answering"

    async def _error_answer(self, call: Call, what: str) -> dict[str, Any]:
        """The JSON-RPC error object the plugin answered ``call`` with (a timeout is no answer)."""
        try:
            kind, _ = await self.process.next(call, self.timeout)
        except ModelportError as exc:
            if call.error_reply is None:
                raise AssertionError(f"{what} got no JSON-RPC error answer: {exc}") from None
            return call.error_reply
        self.process.forget(call)
        raise AssertionError(f"{what} was answered with a {kind}, not an error")

    async def errors(self, provider: str, model: str, config: Mapping[str, Any]) -> str:
        call = await self.process.call("conformance/noSuchMethod", {})
        reply = await self._error_answer(call, "an unknown method")
        if reply.get("code") != plugin_protocol.METHOD_NOT_FOUND:
            raise AssertionError(
                f"an unknown method must be answered with code -32601, not {reply.get('code')!r}"
            )
        rid, params = self.params("conformance-no-such-provider", model, config, False)
        call = await self.process.call("provider.complete", params, request_id=rid)
        reply = await self._error_answer(call, "a request for a provider it never registered")
        data = reply.get("data")
        named = data.get("class") if isinstance(data, dict) else None
        if named != "ModelNotFoundError":
            raise AssertionError(
                "a request for a provider it never registered must be answered with "
                f'data.class "ModelNotFoundError", not {named!r}'
            )
        return (
            "unknown method answered -32601; unknown provider answered ModelNotFoundError "
            f"({reply.get('message')})"
        )

    async def shutdown(self) -> str:
        await self.process.request("shutdown", None, timeout=self.timeout)
        await self.process.notify("exit")
        try:
            code = await asyncio.wait_for(self.process.wait(), self.timeout)
        except TimeoutError:
            self.process.kill()
            raise AssertionError("still running after shutdown and exit; killed it") from None
        if code != 0:
            raise AssertionError(f"exited with code {code} after exit (expected 0)")
        return "answered shutdown and exited with code 0"


async def _check(name: str, results: list[CheckResult], coro: Any) -> bool:
    try:
        detail = await coro
    except (ModelportError, AssertionError) as exc:
        results.append(CheckResult(name, False, str(exc)))
        return False
    results.append(CheckResult(name, True, detail))
    return True


async def check_plugin(
    plugin_dir: Path,
    *,
    provider_config: Mapping[str, Any] | None = None,
    model: str | None = None,
    timeout: float = 10.0,
    environ: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Start the plugin in ``plugin_dir`` and run every conformance check; one result each."""
    results: list[CheckResult] = []
    try:
        manifest = load_manifest(plugin_dir)
    except ModelportError as exc:
        return [CheckResult("manifest", False, str(exc))]
    # A missing program or main file is named here, not guessed from a failed start.
    problem = launch_problem(manifest)
    if problem is not None:
        return [CheckResult("manifest", False, f"{manifest.name} {manifest.version}: {problem}")]
    results.append(CheckResult("manifest", True, f"{manifest.name} {manifest.version}"))
    recorder = _Recorder(manifest.name)
    process = PluginProcess(
        name=manifest.name,
        command=manifest.command,
        cwd=manifest.dir,
        env=minimal_env(manifest.env, environ),
        ids=itertools.count(1),
        stderr=deque(maxlen=50),
        handler=recorder,
    )
    session = _Session(process, recorder, timeout)
    try:
        started = time.monotonic()
        await process.spawn()
        params = {
            "protocolVersion": plugin_protocol.PROTOCOL_VERSION,
            "host": {"name": "modelport-check", "version": "1"},
            "plugin": {"name": manifest.name, "dir": str(manifest.dir)},
        }
        await process.request("initialize", params, timeout=timeout)
        results.append(
            CheckResult("initialize", True, f"answered in {time.monotonic() - started:.2f} s")
        )
    except ModelportError as exc:
        tail = " | ".join(list(process.stderr)[-5:])
        results.append(CheckResult("initialize", False, f"{exc}" + (f" [{tail}]" if tail else "")))
        await process.close(timeout=0.5, grace=0.5)
        return results
    try:
        if not recorder.registrations:
            problems = "; ".join(recorder.errors) or "no provider.register before answering"
            results.append(CheckResult("register", False, problems))
            return results
        first = recorder.registrations[0]
        if not first.models:
            results.append(CheckResult("register", False, f"{first.provider_id} has no models"))
            return results
        ids = ", ".join(r.provider_id for r in recorder.registrations)
        results.append(CheckResult("register", True, f"providers: {ids}"))
        model_id = model or first.models[0].id
        config = dict(provider_config or {})
        pid = first.provider_id
        await _check("stream", results, session.stream(pid, model_id, config))
        await _check("complete", results, session.complete(pid, model_id, config))
        await _check("cancel", results, session.cancel(pid, model_id, config))
        await _check("errors", results, session.errors(pid, model_id, config))
        await _check("shutdown", results, session.shutdown())
    finally:
        await process.close(timeout=0.5, grace=1.0)
    return results
