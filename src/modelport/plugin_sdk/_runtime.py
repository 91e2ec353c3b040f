"""The plugin side of the protocol: read requests from stdin, answer on stdout.

One :class:`Runtime` per plugin process. It dispatches every request as its
own task (so a ``$/cancelRequest`` can reach a request in progress), calls the
author's handlers, and turns whatever they produce — an async generator of
chunks, a returned ``chat.completion`` or embeddings list, explicit ``send_*``
calls or a raised error — into protocol messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from modelport import plugin_protocol
from modelport.errors import ModelNotFoundError, ModelportError, PluginError
from modelport.plugin_sdk._assemble import ChunkAssembler, normalise_chunk

__all__ = ["InitializeInfo", "Request", "Runtime", "embeddings_answer"]

Handler = Callable[..., Any]


@dataclass(frozen=True)
class InitializeInfo:
    """What the host said in ``initialize``."""

    plugin_name: str
    plugin_dir: str
    host: dict[str, str]
    protocol_version: str


@dataclass
class Request:
    """One ``provider.stream`` / ``provider.complete`` call.

    ``options`` is the request in OpenAI form with its ``providerConfig`` (the
    user's values for the provider's ``configFields``), as the host sent it;
    ``config`` is that ``providerConfig``, and :attr:`body` is ``options``
    without it: what to forward to an OpenAI-compatible upstream.
    """

    request_id: str
    provider_id: str
    options: dict[str, Any]
    config: dict[str, Any]
    stream: bool
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def body(self) -> dict[str, Any]:
        """``options`` without ``providerConfig``: safe to send upstream as it is."""
        return {k: v for k, v in self.options.items() if k != "providerConfig"}

    @property
    def model(self) -> str:
        return str(self.options.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.options.get("messages") or [])

    @property
    def inputs(self) -> list[Any]:
        """What a ``provider.embed`` request asks to embed: texts (or token arrays)."""
        value = self.options.get("input")
        if value is None:
            return []
        return [value] if isinstance(value, str) else list(value)


class _Open:
    __slots__ = ("assembler", "last_chunk", "request", "rpc_id", "task")

    def __init__(self, rpc_id: int | str, request: Request, assembler: ChunkAssembler) -> None:
        self.rpc_id = rpc_id
        self.request = request
        self.assembler = assembler
        self.task: asyncio.Task[None] | None = None
        self.last_chunk: Any = None


def _is_chunk(result: Any) -> bool:
    if not isinstance(result, dict):
        return False
    choices = result.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    return result.get("object") == "chat.completion.chunk" or (
        isinstance(first, dict) and "delta" in first and "message" not in first
    )


def _failure_message(result: Any) -> str:
    """What a ``send_reply(..., success=False)`` payload says went wrong."""
    if isinstance(result, str) and result:
        return result
    error = result.get("error") if isinstance(result, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str) and error:
        return error
    if isinstance(result, dict) and isinstance(result.get("message"), str):
        return result["message"]
    return "the plugin reported a failure"


def embeddings_answer(produced: Any, request: Request) -> dict[str, Any]:
    """An embed handler's result as an OpenAI embeddings ``list``.

    A handler may return that whole object, or just the vectors (one list of
    floats per input), which are wrapped with no usage.
    """
    if isinstance(produced, dict):
        return produced
    if isinstance(produced, list | tuple) and all(isinstance(v, list | tuple) for v in produced):
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": list(vector)}
                for index, vector in enumerate(produced)
            ],
            "model": request.model,
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }
    raise PluginError(
        "An embed handler must return an embeddings list object or one vector per input, "
        f"not {type(produced).__name__}"
    )


def normalise_id(provider_id: str) -> str:
    """The provider id as the host stores it (lower case, spaces to ``-``)."""
    return re.sub(r"\s+", "-", provider_id.strip().lower())


async def _call(handler: Handler, *args: Any) -> Any:
    # Handlers may take fewer arguments than offered (an on_start that ignores its info).
    try:
        wanted = len(inspect.signature(handler).parameters)
    except (TypeError, ValueError):
        wanted = len(args)
    result = handler(*args[:wanted])
    return await result if inspect.isawaitable(result) else result


class Runtime:
    """Handlers, open requests and the stdio loop of one plugin process."""

    def __init__(self) -> None:
        self.start_handlers: list[Handler] = []
        self.stop_handlers: list[Handler] = []
        self.stream_handler: Handler | None = None
        self.complete_handler: Handler | None = None
        self.embed_handler: Handler | None = None
        self.info: InitializeInfo | None = None
        self._out: BinaryIO | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._open: dict[str, _Open] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._done: asyncio.Event | None = None
        #: Provider ids the host accepted, normalised as the host does.
        self.registered: set[str] = set()

    # --- output ---------------------------------------------------------

    def _write(self, message: dict[str, Any]) -> None:
        if self._out is None:
            raise RuntimeError("the plugin is not running: call plugin.run() first")
        self._out.write(plugin_protocol.encode(message))
        self._out.flush()

    def notify(self, method: str, params: Any = None) -> None:
        self._write(plugin_protocol.notification(method, params))

    async def call(self, method: str, params: Any = None, *, timeout: float = 30.0) -> Any:
        """Send a request to the host and wait for its answer (raises its error)."""
        id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[id] = future
        try:
            self._write(plugin_protocol.request(id, method, params))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(id, None)

    def send_chunk(self, request_id: str, chunk: Any) -> None:
        open_ = self._open.get(request_id)
        if open_ is None:
            return  # cancelled or answered already: the host no longer listens
        full = normalise_chunk(
            chunk,
            model=open_.request.model,
            id=open_.assembler.id,
            created=open_.assembler.created,
        )
        open_.assembler.add(full)
        open_.last_chunk = chunk
        if open_.request.stream:
            self.notify(plugin_protocol.PROVIDER_CHUNK, {"requestId": request_id, "chunk": full})

    def send_reply(
        self, request_id: str, result: dict[str, Any] | None = None, success: bool = True
    ) -> None:
        if not success:
            self.send_error(request_id, PluginError(_failure_message(result)))
            return
        open_ = self._open.pop(request_id, None)
        if open_ is None:
            return
        if _is_chunk(result):
            # The last chunk as the final answer (as the most common SDK's guide
            # does): answer with the whole response the chunks add up to.
            if result is not open_.last_chunk:
                open_.assembler.add(
                    normalise_chunk(
                        result,
                        model=open_.request.model,
                        id=open_.assembler.id,
                        created=open_.assembler.created,
                    )
                )
            result = None
        final = result if result else open_.assembler.result()
        self._write(plugin_protocol.response(open_.rpc_id, result=final))

    def send_error(self, request_id: str, error: BaseException | str) -> None:
        open_ = self._open.pop(request_id, None)
        if open_ is None:
            return
        if isinstance(error, str):
            error = PluginError(error)
        self._write(
            plugin_protocol.response(open_.rpc_id, error=plugin_protocol.error_to_rpc(error))
        )

    # --- input ----------------------------------------------------------

    def run(self) -> None:
        """Serve the host on stdin/stdout until it says ``exit`` or closes stdin."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        # stdout belongs to the protocol; a stray print() goes to the log instead.
        self._out = sys.stdout.buffer
        sys.stdout = sys.stderr
        self._done = asyncio.Event()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
        try:
            reading = loop.create_task(self._read(reader))
            done = loop.create_task(self._done.wait())
            await asyncio.wait({reading, done}, return_when=asyncio.FIRST_COMPLETED)
            for task in (reading, done, *self._tasks):
                task.cancel()
            await asyncio.gather(reading, done, *self._tasks, return_exceptions=True)
        finally:
            transport.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            if not line.strip():
                continue
            try:
                message = plugin_protocol.parse_line(line)
            except plugin_protocol.ProtocolError as exc:
                print(
                    f"modelport.plugin_sdk: ignoring a bad line from the host: {exc}",
                    file=sys.stderr,
                )
                continue
            self._dispatch(message)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:
            future = self._waiting.get(message["id"])
            if future is not None and not future.done():
                if "error" in message:
                    error = plugin_protocol.error_from_rpc(message["error"], plugin="host")
                    future.set_exception(error)
                else:
                    future.set_result(message.get("result"))
            return
        params = message.get("params") or {}
        if "id" not in message:
            if method == plugin_protocol.EXIT and self._done is not None:
                self._done.set()
            elif method == plugin_protocol.CANCEL_REQUEST:
                self._cancel(str(params.get("requestId")))
            return
        rpc_id = message["id"]
        if method == plugin_protocol.INITIALIZE:
            self._spawn(self._initialize(rpc_id, params))
        elif method == plugin_protocol.SHUTDOWN:
            self._spawn(self._shutdown(rpc_id))
        elif method in (plugin_protocol.PROVIDER_STREAM, plugin_protocol.PROVIDER_COMPLETE):
            self._start_request(rpc_id, method, params)
        elif method == plugin_protocol.PROVIDER_EMBED and self.embed_handler is not None:
            self._start_request(rpc_id, method, params)
        else:
            # provider.embed without an embed handler lands here too: the host reads
            # METHOD_NOT_FOUND as "this provider does not offer embeddings".
            error: plugin_protocol.RpcError = {
                "code": plugin_protocol.METHOD_NOT_FOUND,
                "message": f"this plugin has no method {method!r}",
            }
            self._write(plugin_protocol.response(rpc_id, error=error))

    async def _initialize(self, rpc_id: int | str, params: dict[str, Any]) -> None:
        plugin = params.get("plugin") or {}
        self.info = InitializeInfo(
            plugin_name=str(plugin.get("name", "")),
            plugin_dir=str(plugin.get("dir", "")),
            host=dict(params.get("host") or {}),
            protocol_version=str(params.get("protocolVersion", "")),
        )
        try:
            for handler in self.start_handlers:
                await _call(handler, self.info)
        except Exception as exc:
            traceback.print_exc()
            self._write(plugin_protocol.response(rpc_id, error=plugin_protocol.error_to_rpc(exc)))
            return
        self._write(plugin_protocol.response(rpc_id, result={}))

    async def _shutdown(self, rpc_id: int | str) -> None:
        for open_ in list(self._open.values()):
            if open_.task is not None:
                open_.task.cancel()
        for handler in self.stop_handlers:
            with contextlib.suppress(Exception):
                await _call(handler)
        self._write(plugin_protocol.response(rpc_id, result={}))

    def _start_request(self, rpc_id: int | str, method: str, params: dict[str, Any]) -> None:
        options = dict(params.get("options") or {})
        config = options.get("providerConfig") or {}
        request = Request(
            request_id=str(params.get("requestId")),
            provider_id=str(params.get("providerId")),
            options=options,
            config=config,
            stream=method == plugin_protocol.PROVIDER_STREAM,
        )
        open_ = _Open(rpc_id, request, ChunkAssembler(model=request.model))
        self._open[request.request_id] = open_
        serve = self._serve_embed if method == plugin_protocol.PROVIDER_EMBED else self._serve
        open_.task = self._spawn(serve(open_))

    async def _serve(self, open_: _Open) -> None:
        request = open_.request
        rid = request.request_id
        try:
            if request.provider_id not in self.registered:
                raise ModelNotFoundError(
                    f"This plugin has no provider {request.provider_id!r}",
                    connection=request.provider_id,
                )
            handler = self.stream_handler
            if not request.stream and self.complete_handler is not None:
                handler = self.complete_handler
            if handler is None:
                # A plugin with only a completion handler still streams: no chunks,
                # and its completion as the final answer (the protocol allows it).
                handler = self.complete_handler
            if handler is None:
                kind = "stream" if request.stream else "completion"
                raise PluginError(f"this plugin has no {kind} handler")
            produced = handler(request)
            if inspect.isasyncgen(produced):
                async for chunk in produced:
                    self.send_chunk(rid, chunk)
                final = None
            elif inspect.isgenerator(produced):
                for chunk in produced:
                    self.send_chunk(rid, chunk)
                final = None
            else:
                final = await produced if inspect.isawaitable(produced) else produced
            self.send_reply(rid, final)
        except asyncio.CancelledError:
            request.cancelled.set()
            error: plugin_protocol.RpcError = {
                "code": plugin_protocol.CANCELLED,
                "message": "request cancelled",
            }
            if self._open.pop(rid, None) is not None:
                self._write(plugin_protocol.response(open_.rpc_id, error=error))
        except ModelportError as exc:
            self.send_error(rid, exc)
        except Exception as exc:
            traceback.print_exc()
            self.send_error(rid, exc)

    async def _serve_embed(self, open_: _Open) -> None:
        request = open_.request
        rid = request.request_id
        try:
            if request.provider_id not in self.registered:
                raise ModelNotFoundError(
                    f"This plugin has no provider {request.provider_id!r}",
                    connection=request.provider_id,
                )
            assert self.embed_handler is not None
            produced = await _call(self.embed_handler, request)
            self.send_reply(rid, embeddings_answer(produced, request))
        except asyncio.CancelledError:
            request.cancelled.set()
            error: plugin_protocol.RpcError = {
                "code": plugin_protocol.CANCELLED,
                "message": "request cancelled",
            }
            if self._open.pop(rid, None) is not None:
                self._write(plugin_protocol.response(open_.rpc_id, error=error))
        except ModelportError as exc:
            self.send_error(rid, exc)
        except Exception as exc:
            traceback.print_exc()
            self.send_error(rid, exc)

    def _cancel(self, request_id: str) -> None:
        open_ = self._open.get(request_id)
        if open_ is not None and open_.task is not None:
            open_.request.cancelled.set()
            open_.task.cancel()
