"""The HTTP gateway: OpenAI- and Anthropic-compatible routes in front of the router.

>>> from modelport.server import create_app
>>> app = create_app()          # a Starlette app; `modelport serve` runs it with uvicorn

Importing this package is cheap; :func:`create_app` (and with it Starlette and
the wire modules) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelport.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from modelport.server.app import create_app

        return create_app
    raise AttributeError(f"module 'modelport.server' has no attribute {name!r}")
