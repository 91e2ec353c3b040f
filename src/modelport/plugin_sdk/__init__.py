"""The Python SDK for modelport plugins.

A whole plugin::

    from modelport.plugin_sdk import llm_provider, plugin

    @plugin.on_start
    async def start():
        await llm_provider.register("echo", name="Echo", models=[{"id": "echo-1"}])

    @llm_provider.on_stream_request
    async def stream(request):
        for word in request.messages[-1]["content"].split():
            yield word + " "                     # or a chat.completion.chunk dict

    plugin.run()

A stream handler may be an async generator of chunks (plain text or
``chat.completion.chunk`` dicts), or a coroutine that calls :func:`send_chunk`
and returns nothing (the SDK replies with the assembled response) or a
``chat.completion`` dict. A completion handler returns a ``chat.completion``
(without one, the stream handler answers completions too). An embed handler
(``on_embed_request``, optional) returns one vector per ``request.inputs``
item. Raise a :class:`modelport.errors.ModelportError` subclass (``AuthError``,
``RateLimitError(..., retry_after=5)``, ...) and the host raises the same class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from modelport import plugin_protocol
from modelport.plugin_protocol import ConfigField, OAuthBlock
from modelport.plugin_sdk._assemble import ChunkAssembler
from modelport.plugin_sdk._runtime import InitializeInfo, Request, Runtime, normalise_id

__all__ = [
    "ChunkAssembler",
    "InitializeInfo",
    "LLMProvider",
    "Plugin",
    "Request",
    "llm_provider",
    "plugin",
    "run",
    "send_chunk",
    "send_error",
    "send_reply",
    "unregister",
]

F = TypeVar("F", bound=Callable[..., Any])

_runtime = Runtime()


class Plugin:
    """The plugin's lifecycle: what to do on start and on stop, and running it."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def on_start(self, handler: F) -> F:
        """Run ``handler(info)`` on ``initialize``, before answering: register providers here."""
        self._runtime.start_handlers.append(handler)
        return handler

    def on_stop(self, handler: F) -> F:
        """Run ``handler()`` on ``shutdown``, before answering."""
        self._runtime.stop_handlers.append(handler)
        return handler

    @property
    def info(self) -> InitializeInfo | None:
        """What the host sent in ``initialize`` (``None`` before it)."""
        return self._runtime.info

    def log(self, message: str, level: str = "info") -> None:
        """Send a line to the host's log for this plugin (stderr works too)."""
        self._runtime.notify(plugin_protocol.LOG, {"level": level, "message": message})

    def run(self) -> None:
        """Serve the host over stdin/stdout until it stops the plugin."""
        self._runtime.run()


class LLMProvider:
    """Registering providers and handling their requests."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def register(
        self,
        provider_id: str | dict[str, Any],
        *,
        models: Sequence[dict[str, Any]] = (),
        name: str | None = None,
        description: str = "",
        config_fields: Sequence[ConfigField] = (),
        requires_key: bool = False,
        capabilities: Sequence[str] | dict[str, Any] | None = None,
        oauth: OAuthBlock | None = None,
    ) -> None:
        """Register a provider; its models become ``<provider_id>/<model id>`` at once.

        Also takes the whole registration as one dict, as the protocol spells it
        (``register({"providerId": "acme", "capabilities": ["chat", "streaming"],
        "models": [...]})``). ``capabilities`` is a list of names or an object
        of booleans.

        ``oauth`` says where users log in (``authorizeUrl``, ``tokenUrl``,
        ``clientId``, ``scopes`` …): the host runs the login (``modelport login
        <provider_id>``), keeps the tokens fresh and puts the access token in
        ``request.config`` under the ``configFields`` entry of type ``oauth``
        (``accessToken`` when there is none) on every request.

        Raises the host's refusal (a clash with another provider, a bad id) as
        an :class:`~modelport.errors.InvalidRequestError`.
        """
        if isinstance(provider_id, dict):
            params = dict(provider_id)
        else:
            params = {
                "providerId": provider_id,
                "name": name or provider_id,
                "description": description,
                "capabilities": capabilities if capabilities is not None else {},
                "requiresKey": requires_key,
                "configFields": list(config_fields),
                "models": list(models),
            }
            if oauth is not None:
                params["oauth"] = dict(oauth)
        await self._runtime.call(plugin_protocol.PROVIDER_REGISTER, params)
        self._runtime.registered.add(normalise_id(str(params.get("providerId", ""))))

    async def unregister(self, provider_id: str) -> None:
        """Withdraw a provider and its models."""
        await self._runtime.call(plugin_protocol.PROVIDER_UNREGISTER, {"providerId": provider_id})
        self._runtime.registered.discard(normalise_id(provider_id))

    def on_stream_request(self, handler: F) -> F:
        """Handle ``provider.stream``: ``handler(request)`` (see the module docstring)."""
        self._runtime.stream_handler = handler
        return handler

    def on_completion_request(self, handler: F) -> F:
        """Handle ``provider.complete``: ``handler(request)`` returns a ``chat.completion``."""
        self._runtime.complete_handler = handler
        return handler

    def on_embed_request(self, handler: F) -> F:
        """Handle ``provider.embed``: ``handler(request)`` returns one vector per
        ``request.inputs`` item, or a whole OpenAI embeddings ``list`` (with usage).

        Without it the plugin offers no embeddings (the host is told so).
        """
        self._runtime.embed_handler = handler
        return handler


plugin = Plugin(_runtime)
llm_provider = LLMProvider(_runtime)


def send_chunk(request_id: str, chunk: dict[str, Any] | str) -> None:
    """Send one ``chat.completion.chunk`` (or plain text) for a stream request."""
    _runtime.send_chunk(request_id, chunk)


def send_reply(request_id: str, result: dict[str, Any] | None = None, success: bool = True) -> None:
    """Answer a request: ``result``, or the response the sent chunks add up to.

    ``result`` may be a ``chat.completion``, the last chunk sent (answered with the
    whole response), or nothing. ``success=False`` fails the request instead,
    with the message ``result`` carries (``{"error": {"message": ...}}`` or text).
    """
    _runtime.send_reply(request_id, result, success)


def send_error(request_id: str, error: BaseException | str) -> None:
    """Fail a request; a ModelportError keeps its class, status and retry-after."""
    _runtime.send_error(request_id, error)


async def unregister(provider_id: str) -> None:
    """Withdraw a provider (same as ``llm_provider.unregister``)."""
    await llm_provider.unregister(provider_id)


def run() -> None:
    """Serve the host (same as ``plugin.run()``)."""
    plugin.run()
