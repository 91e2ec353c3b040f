"""Anthropic's Messages API (``/v1/messages``, ``/v1/models``)."""

from __future__ import annotations

from typing import Any, ClassVar

from modelport.errors import AuthError
from modelport.providers import ConnectionSettings
from modelport.providers._http import HttpProvider, WireModule
from modelport.types import ChatRequest
from modelport.wire import anthropic_messages

__all__ = ["AnthropicProvider"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
#: The beta under which the API takes system messages in the middle of ``messages``.
MID_CONVERSATION_SYSTEM = "mid-conversation-system-2026-04-07"


class AnthropicProvider(HttpProvider):
    """Reaches the Messages API with ``x-api-key`` and ``anthropic-version``.

    ``settings.options`` may set ``anthropic_version`` and ``anthropic_beta``
    (a string or a list of beta names). A base URL ending in ``/v1`` (the form
    some tools use) is accepted as well as the bare host.
    """

    wire: ClassVar[WireModule] = anthropic_messages  # type: ignore[assignment]
    url_hint: ClassVar[str] = f"is base_url right (Anthropic's own is {DEFAULT_BASE_URL})?"
    key_header: ClassVar[str] = "x-api-key"

    def base_url(self) -> str:
        base = (self.settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        return base.removesuffix("/v1")

    def chat_url(self) -> str:
        return f"{self.base_url()}/v1/messages"

    def models_url(self) -> str:
        return f"{self.base_url()}/v1/models"

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        # Where the upstream takes a system message in place (its beta is on, configured or
        # forwarded from a client such as Claude Code), it stays in place.
        flags: set[str] = set()
        for value in (
            *(v for k, v in self.settings.headers.items() if k.lower() == "anthropic-beta"),
            self.settings.options.get("anthropic_beta"),
        ):
            listed = value.split(",") if isinstance(value, str) else value or ()
            flags.update(str(flag).strip() for flag in listed)
        in_place = MID_CONVERSATION_SYSTEM in flags
        return anthropic_messages.build_request(request, stream=stream, system_in_place=in_place)

    def auth_headers(self) -> dict[str, str]:
        name = self.settings.name
        if not self.settings.api_key:
            raise AuthError(_missing_key_message(self.settings), connection=name)
        options = self.settings.options
        headers = {
            "x-api-key": self.settings.api_key,
            "anthropic-version": str(options.get("anthropic_version") or DEFAULT_VERSION),
        }
        beta = options.get("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        headers.update(self.settings.headers)
        return headers


def _missing_key_message(settings: ConnectionSettings) -> str:
    name = settings.name
    fix = f"No API key for connection {name!r} — run `modelport keys set {name}`"
    if settings.api_key_env:
        # The variable the router's settings ladder reads for this connection and URL.
        return f"{fix}, or set ${settings.api_key_env}"
    # Settings built by hand: the router reads ANTHROPIC_API_KEY only for the ready-made
    # `anthropic` connection (and Anthropic's own URL); naming it elsewhere would mislead.
    if name == "anthropic":
        return f"{fix}, or set $ANTHROPIC_API_KEY"
    return (
        f"{fix}, or set the environment variable that `api_key_env` names under "
        f"[connections.{name}]"
    )
