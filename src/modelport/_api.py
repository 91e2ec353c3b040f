"""The module-level Python API: ``modelport.stream``, ``complete``, ``embed``, ``list_models``
and their sync twins.

::

    async for event in modelport.stream("local/llama3.1:8b", [{"role": "user", "content": "hi"}]):
        ...
    response = modelport.complete_sync("anthropic/claude-sonnet-4-5", messages)
    vectors = modelport.embed_sync("openai/text-embedding-3-small", ["a", "b"]).embeddings

Messages, tools and tool choices may be canonical values or the OpenAI-shaped
dicts every SDK user already writes. Without ``router=``, calls share a default
:class:`~modelport.routing.Router` built from ``load_config()`` — one per event
loop, because pooled HTTP clients belong to the loop that opened them, and it
is closed when that loop shuts down its async generators (as ``asyncio.run``
does). The sync twins run on one background event loop in a daemon thread, so
their pooled connections live on one loop too.

The default router reaches plugin models (``<provider id>/<model>``): its plugin
host starts on the first call that needs it — an address that is not a
configured or ready-made connection, or :func:`list_models` — and stops with
the router.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from modelport.errors import InvalidRequestError
from modelport.events import StreamEvent
from modelport.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
    ModelInfo,
    Reasoning,
    ToolChoice,
    ToolDefinition,
)

if TYPE_CHECKING:
    from modelport.routing import OnRetry, Router

__all__ = [
    "complete",
    "complete_sync",
    "embed",
    "embed_sync",
    "list_models",
    "list_models_sync",
    "stream",
    "stream_sync",
]

_T = TypeVar("_T")
_P = ParamSpec("_P")
_EFFORTS = ("minimal", "low", "medium", "high")

# --- converting what callers pass ---------------------------------------------


def _messages(messages: Sequence[Message | dict[str, Any]]) -> list[Message]:
    if isinstance(messages, str | bytes | dict):
        raise InvalidRequestError("messages must be a list of messages, not a single value")
    converted: list[Message] = []
    pending: list[dict[str, Any]] = []
    for item in messages:
        if isinstance(item, Message):
            converted.extend(_parse_messages(pending))
            pending = []
            converted.append(item)
        elif isinstance(item, dict):
            pending.append(item)
        else:
            raise InvalidRequestError(
                f"A message must be a modelport.Message or an OpenAI-style dict, "
                f"not {type(item).__name__}"
            )
    converted.extend(_parse_messages(pending))
    return converted


def _parse_messages(items: list[dict[str, Any]]) -> list[Message]:
    if not items:
        return []
    from modelport.wire.openai_chat_server import parse_messages

    return list(parse_messages(items))


def _tools(tools: Sequence[ToolDefinition | dict[str, Any]] | None) -> list[ToolDefinition]:
    if not tools:
        return []
    if all(isinstance(tool, ToolDefinition) for tool in tools):
        return list(tools)  # type: ignore[arg-type]
    from modelport.wire.openai_chat_server import parse_tools

    return [tool if isinstance(tool, ToolDefinition) else parse_tools([tool])[0] for tool in tools]


def _tool_choice(choice: ToolChoice | str | dict[str, Any] | None) -> ToolChoice | None:
    if choice is None or isinstance(choice, ToolChoice):
        return choice
    from modelport.wire.openai_chat_server import parse_tool_choice

    return parse_tool_choice(choice)


def _reasoning(reasoning: Reasoning | str | int | None) -> Reasoning | None:
    if reasoning is None or isinstance(reasoning, Reasoning):
        return reasoning
    if isinstance(reasoning, bool):
        raise InvalidRequestError("reasoning must be an effort string or a token budget")
    if isinstance(reasoning, int):
        if reasoning <= 0:
            raise InvalidRequestError(f"A reasoning budget must be positive, not {reasoning}")
        return Reasoning(budget_tokens=reasoning)
    if isinstance(reasoning, str) and reasoning in _EFFORTS:
        return Reasoning(effort=reasoning)  # type: ignore[arg-type]
    raise InvalidRequestError(
        f"reasoning must be one of {', '.join(_EFFORTS)}, a token budget (int) "
        f"or a modelport.Reasoning, not {reasoning!r}"
    )


def _request(
    model: str, messages: Sequence[Message | dict[str, Any]], **fields: Any
) -> ChatRequest:
    stop = fields.pop("stop")
    return ChatRequest(
        model=model,
        messages=_messages(messages),
        tools=_tools(fields.pop("tools")),
        tool_choice=_tool_choice(fields.pop("tool_choice")),
        reasoning=_reasoning(fields.pop("reasoning")),
        stop=[stop] if isinstance(stop, str) else (list(stop) if stop is not None else None),
        extra=dict(fields.pop("extra") or {}),
        **fields,
    )


def _overrides(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


# --- the default router, one per event loop -------------------------------------

_routers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Router] = weakref.WeakKeyDictionary()
_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]] = (
    weakref.WeakKeyDictionary()
)


async def _close_at_shutdown(router: Router) -> AsyncIterator[None]:
    # The loop's shutdown_asyncgens() (asyncio.run does it) closes every async
    # generator that is still suspended: this one's `finally` is our hook to
    # close the router's pooled clients while their loop still runs.
    try:
        yield
    finally:
        await router.aclose()


class _LoopPlugins:
    """The default router's plugin host, stopped with the loop it runs on.

    ``asyncio.run`` cancels every task before it closes async generators (our
    hook to close the router), so by then the host's own tasks — the ones
    that notice a child exit — are gone and a graceful stop would wait in vain.
    A guard task notices that cancellation and kills the children at once;
    a loop shut down without it (the sync twins' loop) gets the graceful stop.
    """

    def __init__(self, router: Router) -> None:
        from modelport.plugin_host.host import PluginHost

        self.host = PluginHost.from_config(router, router.config)
        self._guard: asyncio.Task[None] | None = None
        self._closing = False
        self._killed = False

    async def ensure_started(self) -> None:
        if self._guard is None:
            self._guard = asyncio.get_running_loop().create_task(self._watch())
        await self.host.ensure_started()

    async def _watch(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            if not self._closing:
                self._kill()
            raise

    def _kill(self) -> None:
        self._killed = True
        # Each plugin's process group is killed and its pipes closed while the loop
        # still runs: the tasks that would close them on the exit are cancelled.
        self.host.abandon()

    async def aclose(self) -> None:
        self._closing = True
        if self._guard is not None:
            self._guard.cancel()
        if not self._killed:
            await self.host.aclose()


async def _default_router() -> Router:
    loop = asyncio.get_running_loop()
    router = _routers.get(loop)
    if router is None:
        from modelport.routing import Router

        router = Router(provider_source=_LoopPlugins)
        _routers[loop] = router
        closer = _close_at_shutdown(router)
        await closer.__anext__()
        _closers[loop] = closer
    return router


# --- async API ----------------------------------------------------------------


async def stream(
    model: str,
    messages: Sequence[Message | dict[str, Any]],
    *,
    tools: Sequence[ToolDefinition | dict[str, Any]] | None = None,
    tool_choice: ToolChoice | str | dict[str, Any] | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    stop: str | Sequence[str] | None = None,
    response_format: dict[str, Any] | None = None,
    reasoning: Reasoning | str | int | None = None,
    metadata: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    on_retry: OnRetry | None = None,
    router: Router | None = None,
) -> AsyncIterator[StreamEvent]:
    """Stream the answer of ``model`` (an address or alias) as canonical events.

    Closing the iterator early (``break``, cancellation) aborts the upstream
    request. ``api_key``, ``base_url``, ``timeout`` and ``max_retries``
    override the connection's settings for this call. ``on_retry(attempt,
    error, delay)`` is called before each retry: attempt number ``attempt``
    (1 for the first) failed with ``error``, the next starts in ``delay``
    seconds. It may be a coroutine function; with the ``*_sync`` twins it
    runs on modelport's background thread.
    """
    request = _request(
        model,
        messages,
        tools=tools,
        tool_choice=tool_choice,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=stop,
        response_format=response_format,
        reasoning=reasoning,
        metadata=metadata,
        extra=extra,
    )
    active = router if router is not None else await _default_router()
    events = active.stream(
        request,
        **_overrides(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            on_retry=on_retry,
        ),
    )
    try:
        async for event in events:
            yield event
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


async def complete(
    model: str,
    messages: Sequence[Message | dict[str, Any]],
    *,
    tools: Sequence[ToolDefinition | dict[str, Any]] | None = None,
    tool_choice: ToolChoice | str | dict[str, Any] | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    stop: str | Sequence[str] | None = None,
    response_format: dict[str, Any] | None = None,
    reasoning: Reasoning | str | int | None = None,
    metadata: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    on_retry: OnRetry | None = None,
    router: Router | None = None,
) -> ChatResponse:
    """The whole answer of ``model`` at once: the aggregate of :func:`stream`.

    ``on_retry`` is called before each retry, as for :func:`stream`.
    """
    request = _request(
        model,
        messages,
        tools=tools,
        tool_choice=tool_choice,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=stop,
        response_format=response_format,
        reasoning=reasoning,
        metadata=metadata,
        extra=extra,
    )
    active = router if router is not None else await _default_router()
    return await active.complete(
        request,
        **_overrides(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            on_retry=on_retry,
        ),
    )


async def embed(
    model: str,
    input: str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]],
    *,
    dimensions: int | None = None,
    extra: dict[str, Any] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    router: Router | None = None,
) -> EmbeddingResponse:
    """Vectors for ``input`` from ``model`` (an address or alias), one per input, in order.

    ``input`` is a string, a list of strings, or token arrays (one, or a list
    of them) for servers that read tokens. ``dimensions`` asks for shorter
    vectors where the model can give them. The overrides work as for :func:`stream`.
    """
    request = EmbeddingRequest(
        model=model, input=_embedding_input(input), dimensions=dimensions, extra=dict(extra or {})
    )
    active = router if router is not None else await _default_router()
    return await active.embed(
        request,
        **_overrides(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries),
    )


def _embedding_input(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes | dict) or not isinstance(value, Sequence):
        raise InvalidRequestError("input must be a string, a list of strings or token arrays")
    items = list(value)
    if items and all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        return [items]  # one token array
    converted: list[str | list[int]] = []
    for item in items:
        if isinstance(item, str):
            converted.append(item)
        elif isinstance(item, Sequence) and all(
            isinstance(token, int) and not isinstance(token, bool) for token in item
        ):
            converted.append(list(item))
        else:
            raise InvalidRequestError(
                f"Each input must be a string or a list of token ids, not {type(item).__name__}"
            )
    return converted


async def list_models(
    connection: str | None = None, *, router: Router | None = None
) -> list[ModelInfo]:
    """Models of one connection, or of every configured one and every plugin's.

    See ``Router.list_models``.
    """
    active = router if router is not None else await _default_router()
    return await active.list_models(connection)


# --- sync twins ---------------------------------------------------------------


class _BackgroundLoop:
    """One event loop in a daemon thread, started on first use, shut down at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="modelport-sync", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self.shutdown)
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        loop = self.loop()
        if asyncio._get_running_loop() is loop:
            coroutine.close()
            # Waiting here for work queued behind us on our own loop would never end.
            raise RuntimeError(
                "A modelport *_sync function was called from code running on modelport's "
                "background loop; await the async function instead."
            )
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C in the caller's thread: stop the work on the loop too.
            future.cancel()
            raise

    def shutdown(self) -> None:
        """Close the default router and stop the loop (registered with ``atexit``)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(timeout=5)
        except Exception:  # exiting anyway; a stuck close must not hang the interpreter
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


_background = _BackgroundLoop()


def _blocking(function: Callable[_P, Coroutine[Any, Any, _T]], name: str) -> Callable[_P, _T]:
    """The sync twin of an async API function: same parameters, run on the background loop."""

    @functools.wraps(function)
    def twin(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return _background.run(function(*args, **kwargs))

    twin.__name__ = twin.__qualname__ = name
    twin.__doc__ = f":func:`{function.__name__}` for code without an event loop (same arguments)."
    return twin


def _iterating(
    function: Callable[_P, AsyncIterator[StreamEvent]], name: str
) -> Callable[_P, Iterator[StreamEvent]]:
    """The sync twin of an async generator: a plain iterator over the background loop."""

    @functools.wraps(function)
    def twin(*args: _P.args, **kwargs: _P.kwargs) -> Iterator[StreamEvent]:
        return _iterate(function(*args, **kwargs))

    twin.__name__ = twin.__qualname__ = name
    twin.__doc__ = (
        f":func:`{function.__name__}` as a plain iterator (same arguments).\n\n"
        "Leaving the loop early (``break``, an exception) closes the stream and\n"
        "aborts the upstream request."
    )
    signature = inspect.signature(function)
    twin.__signature__ = signature.replace(  # type: ignore[attr-defined]
        return_annotation=Iterator[StreamEvent]
    )
    return twin


# Derived rather than written out, so the twins can never drift from the async API.
complete_sync = _blocking(complete, "complete_sync")
embed_sync = _blocking(embed, "embed_sync")
list_models_sync = _blocking(list_models, "list_models_sync")
stream_sync = _iterating(stream, "stream_sync")


async def _step(events: AsyncIterator[StreamEvent]) -> tuple[bool, StreamEvent | None]:
    try:
        return False, await events.__anext__()
    except StopAsyncIteration:
        return True, None


def _iterate(events: AsyncIterator[StreamEvent]) -> Iterator[StreamEvent]:
    interrupted = False
    try:
        while True:
            try:
                done, event = _background.run(_step(events))
            except BaseException:
                # The cancelled step unwinds the stream (and its upstream) by itself.
                interrupted = True
                raise
            if done:
                return
            assert event is not None
            yield event
    finally:
        close = getattr(events, "aclose", None)
        if close is not None and not interrupted:
            _background.run(close())
