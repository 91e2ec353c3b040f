"""Azure OpenAI: the Chat Completions format, reached the Azure way.

Azure speaks OpenAI's format (:mod:`modelport.wire.openai_chat`, which also
reads Azure's content-filter results) but differs in how it is reached:

* **URLs.** A resource endpoint (``https://NAME.openai.azure.com``) is the
  classic form: ``{base}/openai/deployments/{deployment}/chat/completions
  ?api-version=…``, where the model of an address is the deployment's name
  (``azure/my-gpt-4o``). A base URL ending in ``/openai/v1`` is the newer v1
  form: ``{base}/chat/completions`` with the deployment in the body's
  ``model``, and no ``api-version`` unless the connection sets one.
* **api-version** is the connection's ``api_version`` setting, by default
  :data:`DEFAULT_API_VERSION` (the latest GA version, which streams usage).
  With an older one ``stream_options`` is left out: versions before
  2024-09-01 refuse it.
* **Key** in the ``api-key`` header.
* **Embeddings** go to the deployment's ``/embeddings`` in the same form.
* **Models.** No data-plane call lists deployments, so a connection may name
  them (``deployments = ["gpt-4o-prod", …]``); the listing then checks the
  resource answers (``/openai/models``) and reports those names. Without
  them it reports the models the resource offers.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from modelport.errors import AuthError, ConfigError
from modelport.providers import ConnectionSettings
from modelport.providers._http import HttpClient, HttpProvider, WireModule, check_options
from modelport.types import ChatRequest, EmbeddingRequest, EmbeddingResponse, ModelInfo
from modelport.wire import embeddings, openai_chat

__all__ = ["DEFAULT_API_VERSION", "AzureProvider"]

#: The latest generally available data-plane version (streams usage, takes reasoning_effort).
DEFAULT_API_VERSION = "2024-10-21"
#: The first version that accepts ``stream_options``.
_STREAM_OPTIONS_SINCE = "2024-09-01"
_OPTIONS = frozenset({"api_version", "deployments"})


class AzureProvider(HttpProvider):
    """Reaches an Azure OpenAI resource (see the module docstring)."""

    wire: ClassVar[WireModule] = openai_chat  # type: ignore[assignment]
    url_hint: ClassVar[str] = (
        "is base_url your resource's endpoint (https://NAME.openai.azure.com), "
        "or its …/openai/v1 URL?"
    )
    key_header: ClassVar[str] = "api-key"

    def __init__(self, settings: ConnectionSettings, *, client: HttpClient | None = None) -> None:
        check_options(settings, _OPTIONS)
        deployments = settings.options.get("deployments")
        if deployments is not None and not (
            isinstance(deployments, list) and all(isinstance(d, str) and d for d in deployments)
        ):
            raise ConfigError(
                f"[connections.{settings.name}] deployments must be a list of deployment "
                'names, e.g. deployments = ["gpt-4o-prod"]',
                connection=settings.name,
            )
        version = settings.options.get("api_version")
        if version is not None and not (isinstance(version, str) and version.strip()):
            raise ConfigError(
                f'[connections.{settings.name}] api_version must be a string, e.g. "2024-10-21"',
                connection=settings.name,
            )
        super().__init__(settings, client=client)

    @property
    def v1(self) -> bool:
        """Whether the base URL is the v1 form (``…/openai/v1``)."""
        return self.base_url().endswith("/openai/v1")

    @property
    def api_version(self) -> str | None:
        configured = self.settings.options.get("api_version")
        if configured:
            return str(configured).strip()
        return None if self.v1 else DEFAULT_API_VERSION

    def base_url(self) -> str:
        if not self.settings.base_url:
            raise ConfigError(
                f"Connection {self.settings.name!r} has no base_url — set it to your "
                'resource\'s endpoint, e.g. base_url = "https://NAME.openai.azure.com"',
                connection=self.settings.name,
            )
        base = self.settings.base_url.rstrip("/")
        return base.removesuffix("/openai") if not base.endswith("/openai/v1") else base

    def _query(self) -> str:
        version = self.api_version
        return f"?api-version={quote(version)}" if version else ""

    def chat_url(self) -> str:
        return f"{self.base_url()}/chat/completions{self._query()}"

    def request_url(self, model: str, *, stream: bool) -> str:
        return self._url(model, "chat/completions")

    def _url(self, deployment: str, operation: str) -> str:
        if self.v1:
            return f"{self.base_url()}/{operation}{self._query()}"
        name = quote(deployment, safe="")
        return f"{self.base_url()}/openai/deployments/{name}/{operation}{self._query()}"

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """The deployment's ``/embeddings`` (or ``/openai/v1/embeddings``)."""
        url = self._url(request.model, "embeddings")
        return await self.embed_batches(
            request, [(url, embeddings.openai_body(request))], embeddings.decode_openai
        )

    def models_url(self) -> str:
        root = self.base_url() if self.v1 else f"{self.base_url()}/openai"
        return f"{root}/models{self._query()}"

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body = super().build_body(request, stream=stream)
        version = self.api_version
        if stream and version is not None and version < _STREAM_OPTIONS_SINCE:
            body.pop("stream_options", None)
        return body

    def auth_headers(self) -> dict[str, str]:
        if not self.settings.api_key:
            raise AuthError(_missing_key_message(self.settings), connection=self.settings.name)
        return {"api-key": self.settings.api_key, **self.settings.headers}

    async def list_models(self) -> list[ModelInfo]:
        offered = await super().list_models()
        deployments = self.settings.options.get("deployments")
        if deployments is None:
            return offered
        return [ModelInfo(id=name, connection=self.settings.name) for name in deployments]


def _missing_key_message(settings: ConnectionSettings) -> str:
    name = settings.name
    fix = f"No API key for connection {name!r} — run `modelport keys set {name}`"
    if settings.api_key_env:
        return f"{fix}, or set ${settings.api_key_env}"
    return (
        f'{fix}, or name the variable that holds it: api_key_env = "AZURE_OPENAI_API_KEY" '
        f"under [connections.{name}]"
    )
