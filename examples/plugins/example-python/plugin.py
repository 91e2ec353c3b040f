"""example-python: a modelport plugin wrapping an OpenAI-compatible chat API.

The user's settings arrive with every request as ``request.config`` (the
``providerConfig``): ``apiKey`` from the keyring (``modelport keys set example-python``)
or the variable that ``api_key_env`` names under ``[connections.example-python]``,
and ``baseUrl`` from that table.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from modelport.errors import (
    AuthError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelportError,
    NetworkError,
    RateLimitError,
    UpstreamError,
)
from modelport.plugin_sdk import Request, llm_provider, plugin

PROVIDER_ID = "example-python"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
MODELS = [{"id": "gpt-4o-mini", "name": "GPT-4o mini", "contextWindow": 128000}]


@plugin.on_start
async def start() -> None:
    await llm_provider.register(
        PROVIDER_ID,
        name="example-python",
        models=MODELS,
        requires_key=True,
        config_fields=[
            {"key": "apiKey", "label": "API key", "type": "password", "required": True},
            {"key": "baseUrl", "label": "Base URL", "type": "text", "required": False},
        ],
    )


def _error(status: int, headers: Mapping[str, str], body: bytes) -> ModelportError:
    """The modelport error for an HTTP error: the caller gets the same class and status."""
    message = f"The API answered {status}: {body.decode('utf-8', 'replace')[:500]}"
    if status == 429:
        retry_after = headers.get("retry-after")
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        return RateLimitError(message, status=status, retry_after=seconds)
    kind = {400: InvalidRequestError, 401: AuthError, 403: AuthError, 404: ModelNotFoundError}
    return kind.get(status, UpstreamError)(message, status=status)


@llm_provider.on_stream_request
async def stream(request: Request) -> AsyncIterator[dict[str, Any]]:
    base_url = (request.config.get("baseUrl") or DEFAULT_BASE_URL).rstrip("/")
    body = {**request.body, "stream": True, "stream_options": {"include_usage": True}}
    if not request.config.get("apiKey"):
        raise AuthError(f"No API key: run 'modelport keys set {PROVIDER_ID}'")
    headers = {"Authorization": f"Bearer {request.config['apiKey']}"}
    # 60 s to connect, then up to 300 s for each next piece of the answer.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60.0, sock_read=300.0)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(
                f"{base_url}/chat/completions", json=body, headers=headers
            ) as response:
                if response.status != 200:
                    raise _error(response.status, response.headers, await response.read())
                async for chunk in _sse_chunks(response.content):
                    yield chunk  # a chat.completion.chunk, passed on as it is
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise NetworkError(f"Could not reach {base_url}: {exc}") from exc


async def _sse_chunks(body: aiohttp.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """The chat.completion.chunk objects of a server-sent-events body."""
    buffer = b""
    async for piece in body.iter_any():
        buffer += piece
        while (newline := buffer.find(b"\n")) >= 0:
            line, buffer = buffer[:newline].strip(), buffer[newline + 1 :]
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            yield json.loads(data)


if __name__ == "__main__":
    plugin.run()
