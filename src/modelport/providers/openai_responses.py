"""OpenAI models served only by the Responses API (``compat = "openai-responses"``).

The same server, key and model list as :mod:`modelport.providers.openai_compat`;
only the chat call differs: ``POST {base_url}/responses``, spoken by
:mod:`modelport.wire.openai_responses`. Without a ``base_url`` the connection
goes to OpenAI's own.
"""

from __future__ import annotations

from typing import ClassVar

from modelport.providers._http import WireModule
from modelport.providers.openai_compat import OpenAICompatProvider
from modelport.wire import openai_responses

__all__ = ["DEFAULT_BASE_URL", "OpenAIResponsesProvider"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIResponsesProvider(OpenAICompatProvider):
    """``POST {base_url}/responses`` and ``GET {base_url}/models``."""

    wire: ClassVar[WireModule] = openai_responses  # type: ignore[assignment]
    url_hint: ClassVar[str] = f"is base_url right — does it end in /v1 ({DEFAULT_BASE_URL})?"

    def base_url(self) -> str:
        return (self.settings.base_url or DEFAULT_BASE_URL).rstrip("/")

    def chat_url(self) -> str:
        return f"{self.base_url()}/responses"
