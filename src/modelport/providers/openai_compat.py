"""Any server that speaks the OpenAI Chat Completions API.

OpenAI itself, Ollama's and LM Studio's ``/v1``, vLLM, llama.cpp, OpenRouter,
Groq, DeepSeek … differ only in where they live and which key they want, so
this provider is a base URL, a bearer token and :mod:`modelport.wire.openai_chat`.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from modelport.errors import ConfigError, ModelportError
from modelport.providers._http import DEFAULT_HINT, HttpProvider, WireModule
from modelport.providers._local_servers import local_server_hint
from modelport.types import EmbeddingRequest, EmbeddingResponse
from modelport.wire import embeddings, openai_chat

__all__ = ["OpenAICompatProvider"]

#: Key-less local servers still get a bearer token: some reject a request without one.
PLACEHOLDER_KEY = "modelport"


class OpenAICompatProvider(HttpProvider):
    """``POST {base_url}/chat/completions``, ``POST {base_url}/embeddings`` and
    ``GET {base_url}/models``.

    The base URL includes the version segment (``https://api.openai.com/v1``,
    ``http://localhost:11434/v1``); the router supplies the default. A base URL
    given without any path is used as it is (llama.cpp's server answers there),
    and when the server answers it with 404 or 405, the error says to add
    ``/v1``: the URL a connection uses is the one its config names, never one
    guessed behind the user's back.

    A local server that does not answer gets its own "is it running? start it
    with …" (Ollama, LM Studio, vLLM, llama.cpp: :mod:`._local_servers`).
    """

    wire: ClassVar[WireModule] = openai_chat  # type: ignore[assignment]
    url_hint: ClassVar[str] = "is base_url right — does it end in /v1?"

    def hint_for(self, model: str | None) -> str:
        found = local_server_hint(self.settings.name, self.settings.base_url, model)
        return found if found is not None else DEFAULT_HINT

    def refine_error(self, error: ModelportError, model: str | None) -> ModelportError:
        if error.status not in (404, 405) or not _lacks_a_path(self.settings.base_url):
            return error
        base = self.base_url()
        name = self.settings.name
        return ConfigError(
            f"{base} answered {error.status} (no such route): OpenAI-compatible servers answer "
            f'under /v1 — set base_url = "{base}/v1" under [connections.{name}]',
            connection=name,
            status=error.status,
            body=error.body,
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


def _lacks_a_path(url: str | None) -> bool:
    try:
        return bool(url) and not urlsplit(url or "").path.strip("/")
    except ValueError:
        return False
