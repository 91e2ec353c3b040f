"""Ollama's native API (``/api/chat``, ``/api/embed``, ``/api/tags``)."""

from __future__ import annotations

from typing import Any, ClassVar

from modelport.errors import ModelNotFoundError, ModelportError
from modelport.providers._http import HttpProvider, WireModule
from modelport.types import ChatRequest, EmbeddingRequest, EmbeddingResponse
from modelport.wire import embeddings, ollama_ndjson

__all__ = ["OllamaProvider"]

DEFAULT_BASE_URL = "http://localhost:11434"


class OllamaProvider(HttpProvider):
    """Reaches a local (or remote) Ollama server.

    A base URL given in its OpenAI-compatible form (``…/v1``) is accepted: the
    suffix is dropped. A key, where a proxy in front of Ollama wants one, is
    sent as a bearer token. The connection's ``options`` table (Ollama's model
    options: ``{num_ctx = 32768}``) goes with every request, under what the
    request sets itself (its temperature, max_tokens as ``num_predict``, …).
    """

    wire: ClassVar[WireModule] = ollama_ndjson  # type: ignore[assignment]
    hint: ClassVar[str] = "is Ollama running? start it with `ollama serve`; is the URL right?"
    url_hint: ClassVar[str] = "is base_url right (Ollama's own is http://localhost:11434)?"

    def base_url(self) -> str:
        base = (self.settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        for suffix in ("/v1", "/api"):
            base = base.removesuffix(suffix)
        return base

    def chat_url(self) -> str:
        return f"{self.base_url()}/api/chat"

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body = super().build_body(request, stream=stream)
        configured = self.settings.options.get("options")
        if configured:
            body["options"] = {**configured, **(body.get("options") or {})}
        return body

    def models_url(self) -> str:
        return f"{self.base_url()}/api/tags"

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """``POST /api/embed``."""
        url = f"{self.base_url()}/api/embed"
        return await self.embed_batches(
            request, [(url, embeddings.ollama_body(request))], embeddings.decode_ollama
        )

    def auth_headers(self) -> dict[str, str]:
        headers = {}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        headers.update(self.settings.headers)
        return headers

    def refine_error(self, error: ModelportError, model: str | None) -> ModelportError:
        # Ollama's 404 does not always name the model; we know which one was asked for.
        if isinstance(error, ModelNotFoundError) and model and model not in error.message:
            return ModelNotFoundError(
                f"Ollama has no model {model!r} — run `ollama pull {model}` and try again",
                status=error.status,
                body=error.body,
            )
        return error
