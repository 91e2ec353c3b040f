"""One run of one plugin's child process, and the JSON-RPC session over its pipes.

:class:`PluginProcess` owns the child: it spawns it with a minimal
environment, reads stdout line by line (every line must be a protocol
message), keeps the last lines of stderr, matches replies to requests by id
alone, routes ``provider.chunk`` notifications to the request they name, and
fails every pending call with :class:`~modelport.errors.PluginError` when the
child exits or breaks the protocol. Lifecycle decisions (restart, registration)
belong to :mod:`modelport.plugin_host.host`, which receives callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from modelport import plugin_protocol
from modelport.errors import ModelportError, PluginError

__all__ = ["Call", "MethodNotFound", "PluginProcess", "ProcessHandler", "minimal_env"]

#: Variables every child gets (when the host has them): enough to find
#: programs, a home and a locale, and nothing that could be a secret.
BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SYSTEMROOT")

_MAX_LINE = 16 * 1024 * 1024


def minimal_env(
    allow: Iterable[str] = (), source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The child's environment: :data:`BASE_ENV`, ``LC_*``, and the manifest's allow-list."""
    source = os.environ if source is None else source
    names = {*BASE_ENV, *allow, *(name for name in source if name.startswith("LC_"))}
    return {name: source[name] for name in sorted(names) if name in source}


def resolve_command(command: Iterable[str]) -> list[str]:
    # "python" means the interpreter running modelport, so that a plugin using
    # the SDK finds it wherever modelport is installed (a venv, pipx, uv tool).
    parts = list(command)
    if parts and parts[0] in ("python", "python3"):
        parts[0] = sys.executable
    return parts


class MethodNotFound(Exception):
    """Raised by a handler for a method the host does not implement."""


class ProcessHandler(Protocol):
    """What the host does with the messages a plugin sends on its own initiative."""

    async def handle_request(self, process: PluginProcess, method: str, params: Any) -> Any: ...

    def handle_exit(self, process: PluginProcess, error: PluginError | None) -> None: ...


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The stream protocol, plus an event for the moment the child exits."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exit_seen = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exit_seen.set()


class Call:
    """A request in flight. Its queue receives ``("chunk", obj)``, then ``("result", obj)``.

    ``error_reply`` is the JSON-RPC error object the plugin answered with, as sent
    (``None`` until then, and for any other way the call ended).
    """

    __slots__ = ("error_reply", "id", "method", "queue", "request_id")

    def __init__(self, id: int, method: str, request_id: str | None) -> None:
        self.id = id
        self.method = method
        self.request_id = request_id
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.error_reply: dict[str, Any] | None = None


class PluginProcess:
    """A child process speaking the plugin protocol. Use :meth:`spawn`, then :meth:`close`."""

    def __init__(
        self,
        *,
        name: str,
        command: Iterable[str],
        cwd: Path,
        env: Mapping[str, str],
        ids: Iterator[int],
        stderr: deque[str],
        handler: ProcessHandler,
        kill_grace: float = 2.0,
    ) -> None:
        self.name = name
        self.command = resolve_command(command)
        self.cwd = cwd
        self.env = dict(env)
        self.stderr = stderr
        self._ids = ids
        self._handler = handler
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, Call] = {}
        self._by_request: dict[str, Call] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._exited = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._exit_seen = asyncio.Event()
        self._failure: PluginError | None = None
        self.kill_grace = kill_grace
        self.stopping = False

    # --- lifecycle ------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and not self._exited.is_set()

    async def spawn(self) -> None:
        loop = asyncio.get_running_loop()
        protocol = _Protocol(limit=_MAX_LINE, loop=loop)
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: protocol,
                *self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C in the terminal is the host's to handle
            )
        except OSError as exc:
            raise PluginError(
                f"Could not run {self.command[0]!r} ({exc.strerror or exc}); check 'command' "
                f"in {self.cwd / 'modelport-plugin.toml'} and that the program is installed",
                plugin=self.name,
            ) from exc
        self._proc = asyncio.subprocess.Process(transport, protocol, loop)
        self._exit_seen = protocol.exit_seen
        reader = self._spawn_task(self._read_stdout())
        errors = self._spawn_task(self._read_stderr())
        self._watcher = self._spawn_task(self._watch(reader, errors))

    def _spawn_task(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait(self) -> int | None:
        await self._exited.wait()
        return self.returncode

    def kill(self) -> None:
        """Kill the child and its process group (a wrapper's own children too)."""
        if self._proc is None or self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if hasattr(os, "killpg"):
                os.killpg(self._proc.pid, signal.SIGKILL)
            else:  # pragma: no cover - Windows has no process groups to kill
                self._proc.kill()

    def abandon(self) -> None:
        """Kill the child and close its pipes now, for a loop that is about to close.

        The tasks that would notice the exit and close the pipes are cancelled by
        then; without this the pipes stayed open in this process (and their
        transport was left for the garbage collector to warn about).
        """
        self.stopping = True
        self.kill()
        transport = getattr(self._proc, "_transport", None)
        if transport is not None:
            transport.close()

    async def close(self, *, timeout: float = 2.0, grace: float = 2.0) -> int | None:
        """``shutdown``, ``exit``, close stdin; kill what is still alive after ``grace``."""
        self.stopping = True
        if self._proc is None:
            return None
        if self.alive and self._failure is None:
            with contextlib.suppress(ModelportError):
                await self.request(plugin_protocol.SHUTDOWN, None, timeout=timeout)
            with contextlib.suppress(ModelportError):
                await self.notify(plugin_protocol.EXIT)
        self._close_stdin()
        try:
            await asyncio.wait_for(self._exit_signal(), grace)
        except TimeoutError:
            self.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_signal(), grace)
        if self._proc.returncode is not None:
            await self._end_group(grace)
        return self.returncode

    def _signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the child's process group; False once no member is left."""
        if self._proc is None or not hasattr(os, "killpg"):
            return False  # pragma: no cover - Windows has no process groups
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    async def _end_group(self, grace: float) -> None:
        """Once the child has exited, end what it left behind in its process group.

        The child runs in a session of its own, so its group holds only the
        plugin's own background processes (a wrapper's children, a daemon it
        forked): they get SIGTERM, then SIGKILL after ``grace``. The group id
        cannot be reused while any member is alive.
        """
        if not self._signal_group(signal.SIGTERM):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            if not self._signal_group(0):
                return
        self._signal_group(signal.SIGKILL)

    def _exit_signal(self) -> Any:
        """What to await for the exit: the watcher's event, or, when the watcher
        task is gone (``asyncio.run`` cancels every task before closing the loop),
        the process protocol's own exit event, which nothing else would set."""
        if self._watcher is not None and self._watcher.done() and not self._exited.is_set():
            return self._exit_seen.wait()
        return self._exited.wait()

    def _close_stdin(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(Exception):
                self._proc.stdin.close()

    # --- sending --------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        if not self.alive or self._proc is None or self._proc.stdin is None:
            raise self._failure or PluginError("The plugin is not running", plugin=self.name)
        try:
            self._proc.stdin.write(plugin_protocol.encode(message))
            await self._proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise PluginError(f"The plugin closed its input ({exc})", plugin=self.name) from exc

    async def notify(self, method: str, params: Any = None) -> None:
        await self._send(plugin_protocol.notification(method, params))

    async def call(self, method: str, params: Any = None, *, request_id: str | None = None) -> Call:
        """Send a request; its answers arrive on the returned call's queue."""
        call = Call(next(self._ids), method, request_id)
        self._pending[call.id] = call
        if request_id is not None:
            self._by_request[request_id] = call
        try:
            await self._send(plugin_protocol.request(call.id, method, params))
        except BaseException:
            self.forget(call)
            raise
        return call

    async def next(self, call: Call, timeout: float) -> tuple[str, Any]:
        """The call's next item; raises its error, or PluginError after ``timeout`` idle."""
        try:
            kind, value = await asyncio.wait_for(call.queue.get(), timeout)
        except TimeoutError:
            await self.cancel(call)
            raise PluginError(
                f"The plugin did not answer {call.method} within {timeout:g} s", plugin=self.name
            ) from None
        if kind == "error":
            raise value
        return kind, value

    async def request(self, method: str, params: Any = None, *, timeout: float) -> Any:
        call = await self.call(method, params)
        while True:
            kind, value = await self.next(call, timeout)
            if kind == "result":
                return value

    def forget(self, call: Call) -> bool:
        """Stop waiting for ``call``; True if it was still pending."""
        if call.request_id is not None:
            self._by_request.pop(call.request_id, None)
        return self._pending.pop(call.id, None) is not None

    async def cancel(self, call: Call) -> None:
        """Forget ``call`` and, if the plugin still owes an answer, send ``$/cancelRequest``."""
        if self.forget(call) and call.request_id is not None and self.alive:
            with contextlib.suppress(ModelportError):
                await self.notify(plugin_protocol.CANCEL_REQUEST, {"requestId": call.request_id})

    # --- receiving ------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        while True:
            try:
                line = await stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                self._protocol_error(f"wrote a line longer than {_MAX_LINE} bytes on stdout")
                return
            if not line:
                return
            if not line.strip():
                continue
            try:
                message = plugin_protocol.parse_line(line)
            except plugin_protocol.ProtocolError as exc:
                self._protocol_error(f"wrote something on stdout that is not the protocol: {exc}")
                return
            self._dispatch(message)

    def _protocol_error(self, message: str) -> None:
        # Nothing after a bad line can be trusted to be framed right: fail the
        # plugin's calls and stop it, but never let it reach the host's loop.
        self._failure = PluginError(f"Protocol error: the plugin {message}", plugin=self.name)
        self.stderr.append(f"[modelport] {self._failure}")
        self._fail_pending(self._failure)
        self.kill()

    def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:
            call = (
                self._pending.pop(message["id"], None) if isinstance(message["id"], int) else None
            )
            if call is None:
                return  # a late answer to a call we cancelled or timed out
            if call.request_id is not None:
                self._by_request.pop(call.request_id, None)
            if "error" in message:
                call.error_reply = message["error"]
                error = plugin_protocol.error_from_rpc(message["error"], plugin=self.name)
                call.queue.put_nowait(("error", error))
            else:
                call.queue.put_nowait(("result", message.get("result")))
            return
        params = message.get("params")
        if "id" in message:
            self._spawn_task(self._answer(message["id"], method, params))
        elif method == plugin_protocol.PROVIDER_CHUNK:
            request_id = params.get("requestId") if isinstance(params, dict) else None
            call = self._by_request.get(request_id) if isinstance(request_id, str) else None
            if call is not None:
                call.queue.put_nowait(("chunk", params.get("chunk")))
        elif method == plugin_protocol.LOG and isinstance(params, dict):
            self.stderr.append(f"[{params.get('level', 'info')}] {params.get('message', '')}")

    async def _answer(self, id: int | str, method: str, params: Any) -> None:
        try:
            result = await self._handler.handle_request(self, method, params)
        except MethodNotFound:
            error: plugin_protocol.RpcError = {
                "code": plugin_protocol.METHOD_NOT_FOUND,
                "message": f"The host has no method {method!r}",
            }
            reply = plugin_protocol.response(id, error=error)
        except Exception as exc:  # a ModelportError keeps its class; anything else is ours
            reply = plugin_protocol.response(id, error=plugin_protocol.error_to_rpc(exc))
        else:
            reply = plugin_protocol.response(id, result=result)
        with contextlib.suppress(ModelportError):
            await self._send(reply)

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        buffer = b""
        while chunk := await self._proc.stderr.read(65536):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self.stderr.append(line.decode("utf-8", "replace").rstrip("\r"))
            if len(buffer) > 65536:  # a runaway line still shows up, in pieces
                self.stderr.append(buffer.decode("utf-8", "replace"))
                buffer = b""
        if buffer:
            self.stderr.append(buffer.decode("utf-8", "replace"))

    async def _watch(self, reader: asyncio.Task[None], errors: asyncio.Task[None]) -> None:
        assert self._proc is not None
        # Process.wait() (3.11) also waits for every pipe to close, which a
        # grandchild can hold open for ever; the protocol sees the exit itself.
        exited = asyncio.ensure_future(self._exit_seen.wait())
        await asyncio.wait({reader, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            try:
                await asyncio.wait_for(asyncio.shield(exited), 5.0)
            except TimeoutError:
                # Its stdout closed but it lives on: it can never answer again.
                if self._failure is None:
                    self._failure = PluginError(
                        "The plugin closed its stdout but kept running; stopped it",
                        plugin=self.name,
                    )
                    self._fail_pending(self._failure)
                self.kill()
                await exited
        # The child is gone; its background processes go too (TERM, then KILL).
        self._spawn_task(self._end_group(self.kill_grace))
        # Let the readers drain what the child wrote before it exited; a grandchild
        # holding the pipes open must not keep this plugin from counting as exited.
        _, lingering = await asyncio.wait({reader, errors}, timeout=2.0)
        if lingering and hasattr(os, "killpg"):
            # Whatever still holds its pipes is a leftover of this plugin's group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        for task in lingering:
            task.cancel()
        await asyncio.gather(reader, errors, return_exceptions=True)
        if lingering:
            transport = getattr(self._proc, "_transport", None)
            if transport is not None:
                transport.close()
        await self._proc.wait()
        self._close_stdin()
        error = self._failure
        if error is None and not self.stopping:
            error = PluginError(self._exit_message(), plugin=self.name)
        self._fail_pending(error or PluginError("The plugin was stopped", plugin=self.name))
        self._exited.set()
        self._handler.handle_exit(self, error)

    def _exit_message(self) -> str:
        # No stderr here: this message reaches API clients, and a plugin's log may
        # hold anything. The log is shown by `modelport plugins logs` and
        # GET /plugins/{name}.
        code = self.returncode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else "exited"
        return f"The plugin {how} (exit code {code}); see `modelport plugins logs {self.name}`"

    def _fail_pending(self, error: PluginError) -> None:
        pending, self._pending = self._pending, {}
        self._by_request.clear()
        for call in pending.values():
            call.queue.put_nowait(("error", error))
