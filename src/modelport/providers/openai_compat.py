"""Any server that speaks the OpenAI Chat Completions API.

OpenAI itself, Ollama's and LM Studio's ``/v1``, vLLM, llama.cpp, OpenRouter,
Groq, DeepSeek … differ only in where they live and which key they want, so
this provider is a base URL, a bearer token and :mod:`modelport.wire.openai_chat`.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from modelport.errors import ConfigError
from modelport.providers._http import DEFAULT_HINT, HttpProvider, WireModule
from modelport.types import EmbeddingRequest, EmbeddingResponse
from modelport.wire import embeddings, openai_chat

__all__ = ["OpenAICompatProvider"]

#: Key-less local servers still get a bearer token: some reject a request without one.
PLACEHOLDER_KEY = "modelport"
#: Ollama's port: an OpenAI-compatible URL there is Ollama's ``/v1``.
OLLAMA_PORT = 11434


class OpenAICompatProvider(HttpProvider):
    """``POST {base_url}/chat/completions``, ``POST {base_url}/embeddings`` and
    ``GET {base_url}/models``.

    The base URL includes the version segment (``https://api.openai.com/v1``,
    ``http://localhost:11434/v1``); the router supplies the default.
    """

    wire: ClassVar[WireModule] = openai_chat  # type: ignore[assignment]
    url_hint: ClassVar[str] = "is base_url right — does it end in /v1?"

    def hint_for(self, model: str | None) -> str:
        try:
            port = urlsplit(self.settings.base_url or "").port
        except ValueError:
            port = None
        if port != OLLAMA_PORT:
            return DEFAULT_HINT
        pull = f"`ollama pull {model}`" if model else "`ollama pull …`"
        return (
            f"is Ollama running (`ollama serve`)? is the URL right? is the model pulled ({pull})?"
        )

    def base_url(self) -> str:
        if not self.settings.base_url:
            raise ConfigError(
                f"Connection {self.settings.name!r} has no base_url — set it in config.toml, "
                'e.g. base_url = "https://api.openai.com/v1"',
                connection=self.settings.name,
            )
        return self.settings.base_url.rstrip("/")

    def chat_url(self) -> str:
        return f"{self.base_url()}/chat/completions"

    def models_url(self) -> str:
        return f"{self.base_url()}/models"

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """``POST {base_url}/embeddings``."""
        url = f"{self.base_url()}/embeddings"
        return await self.embed_batches(
            request, [(url, embeddings.openai_body(request))], embeddings.decode_openai
        )

    def auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.settings.api_key or PLACEHOLDER_KEY}",
            **self.settings.headers,
        }
