"""modelport: one port for every LLM.

>>> import modelport
>>> async for event in modelport.stream("local/llama3.1:8b", [{"role": "user", "content": "hi"}]):
...     print(event)

The canonical types, events and errors are imported eagerly (they need only
msgspec); everything that reaches the network is imported on first use, so
``import modelport`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelport.aggregate import Aggregator, aggregate
from modelport.errors import (
    AuthError,
    ConfigError,
    ContextTooLongError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    ParseError,
    PluginError,
    RateLimitError,
    UpstreamError,
)
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.types import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    ContentPart,
    EmbeddingRequest,
    EmbeddingResponse,
    ImagePart,
    Message,
    ModelInfo,
    ModelPrices,
    Reasoning,
    RedactedThinkingPart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    Usage,
)

if TYPE_CHECKING:
    from modelport._api import (
        complete,
        complete_sync,
        embed,
        embed_sync,
        list_models,
        list_models_sync,
        stream,
        stream_sync,
    )
    from modelport.routing import Router

__version__ = "0.1.0"

__all__ = [
    "Aggregator",
    "AuthError",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "ConfigError",
    "ContentPart",
    "ContextTooLongError",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FinishEvent",
    "ImagePart",
    "InvalidRequestError",
    "Message",
    "ModelInfo",
    "ModelNotFoundError",
    "ModelPrices",
    "ModelportError",
    "NetworkError",
    "ParseError",
    "PluginError",
    "RateLimitError",
    "Reasoning",
    "ReasoningEvent",
    "RedactedThinkingPart",
    "Router",
    "StreamEvent",
    "TextEvent",
    "TextPart",
    "ThinkingPart",
    "ToolCall",
    "ToolCallDeltaEvent",
    "ToolCallStartEvent",
    "ToolChoice",
    "ToolDefinition",
    "UpstreamError",
    "Usage",
    "UsageEvent",
    "__version__",
    "aggregate",
    "complete",
    "complete_sync",
    "embed",
    "embed_sync",
    "list_models",
    "list_models_sync",
    "stream",
    "stream_sync",
]

_LAZY = {
    "complete": "modelport._api",
    "complete_sync": "modelport._api",
    "embed": "modelport._api",
    "embed_sync": "modelport._api",
    "list_models": "modelport._api",
    "list_models_sync": "modelport._api",
    "stream": "modelport._api",
    "stream_sync": "modelport._api",
    "Router": "modelport.routing",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'modelport' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
