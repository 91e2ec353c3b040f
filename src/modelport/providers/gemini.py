"""Google's Gemini API (``generativelanguage.googleapis.com/v1beta``).

Chats go to ``models/{model}:streamGenerateContent?alt=sse`` (streamed) or
``models/{model}:generateContent``, embeddings to ``:embedContent`` /
``:batchEmbedContents``, models are listed at ``GET /models``,
and the key travels in ``x-goog-api-key`` (never in the URL, where it would
end up in logs). :mod:`modelport.wire.gemini` speaks the format.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from modelport.errors import AuthError
from modelport.providers import ConnectionSettings
from modelport.providers._http import HttpClient, HttpProvider, WireModule, check_options
from modelport.types import EmbeddingRequest, EmbeddingResponse
from modelport.wire import embeddings, gemini

__all__ = ["DEFAULT_BASE_URL", "GeminiProvider", "model_path"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
#: The API version used when the base URL names none.
DEFAULT_VERSION = "v1beta"
_VERSIONS = ("/v1beta", "/v1alpha", "/v1")
#: One page holds every model (the API allows up to 1000); no paging needed.
_PAGE_SIZE = 1000


def model_path(model: str) -> str:
    """``models/{model}`` (a tuned model's ``tunedModels/…`` as it is), quoted for a URL."""
    if not model.startswith(("models/", "tunedModels/")):
        model = f"models/{model}"
    return quote(model, safe="/-._~")


class GeminiProvider(HttpProvider):
    """Reaches the Gemini API with ``x-goog-api-key``.

    The base URL may name the API version (``…/v1beta``, ``…/v1``); without
    one, ``v1beta`` is used (thinking, ``thoughtSignature`` and
    ``parametersJsonSchema`` live there).
    """

    wire: ClassVar[WireModule] = gemini  # type: ignore[assignment]
    url_hint: ClassVar[str] = f"is base_url right (Google's own is {DEFAULT_BASE_URL})?"
    key_header: ClassVar[str] = "x-goog-api-key"

    def __init__(self, settings: ConnectionSettings, *, client: HttpClient | None = None) -> None:
        check_options(settings, ())
        super().__init__(settings, client=client)

    def base_url(self) -> str:
        base = (self.settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        if base.endswith(_VERSIONS):
            return base
        return f"{base}/{DEFAULT_VERSION}"

    def chat_url(self) -> str:
        return f"{self.base_url()}/models"

    def request_url(self, model: str, *, stream: bool) -> str:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.base_url()}/{model_path(model)}:{method}"

    def models_url(self) -> str:
        return f"{self.base_url()}/models?pageSize={_PAGE_SIZE}"

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """``embedContent`` for one text, ``batchEmbedContents`` (100 at a time) for more."""
        texts = embeddings.gemini_texts(request)
        path = model_path(request.model)
        calls = []
        for start in range(0, len(texts), embeddings.GEMINI_BATCH):
            batch = texts[start : start + embeddings.GEMINI_BATCH]
            method = "embedContent" if len(batch) == 1 else "batchEmbedContents"
            body = embeddings.gemini_body(request, batch, path)
            calls.append((f"{self.base_url()}/{path}:{method}", body))
        return await self.embed_batches(request, calls, embeddings.decode_gemini)

    def auth_headers(self) -> dict[str, str]:
        if not self.settings.api_key:
            raise AuthError(_missing_key_message(self.settings), connection=self.settings.name)
        return {"x-goog-api-key": self.settings.api_key, **self.settings.headers}


def _missing_key_message(settings: ConnectionSettings) -> str:
    name = settings.name
    fix = f"No API key for connection {name!r} — run `modelport keys set {name}`"
    if settings.api_key_env:
        return f"{fix}, or set ${settings.api_key_env}"
    if name == "gemini":
        return f"{fix}, or set $GEMINI_API_KEY (or $GOOGLE_API_KEY)"
    return (
        f"{fix}, or set the environment variable that `api_key_env` names under "
        f"[connections.{name}]"
    )
