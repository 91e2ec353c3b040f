"""One same-format call: the client's own body to the upstream, its bytes back through a relay.

:func:`relay_items` is :meth:`HttpProvider.stream` / :meth:`HttpProvider.complete`
for the passthrough (see :mod:`modelport.wire.relay`): the same URL, the
same credentials (the connection's, never the client's), the same error
boundary and status mapping, the same checks on what came back; only the
body is the client's (with the bare model id) and the answer is relayed
instead of decoded. Retries, fallbacks and the ledger wrap it in the router
exactly as they wrap a stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

from modelport.errors import NetworkError, ParseError
from modelport.events import StreamEvent
from modelport.providers._http import (
    _HEAD,
    _JSON,
    _WEB_PAGES,
    HttpProvider,
    _looks_like_a_stream,
    _media_type,
)
from modelport.wire._errors import excerpt

__all__ = ["Relay", "relay_items"]


class Relay(Protocol):
    """What :mod:`modelport.wire.relay`'s relays provide."""

    def feed(self, chunk: bytes) -> list[Any]: ...

    def close(self) -> list[Any]: ...

    def answer(self, body: bytes) -> list[Any]: ...

    def transcode_stream(self, events: Iterable[StreamEvent]) -> bytes: ...

    def transcode_answer(self, events: list[StreamEvent]) -> bytes: ...


async def relay_items(
    provider: HttpProvider, body: dict[str, Any], relay: Relay, *, stream: bool
) -> AsyncIterator[Any]:
    """Send ``body`` (its ``model`` the bare id); yield what ``relay`` makes of the answer."""
    model = body.get("model")
    url = provider.request_url(str(model), stream=stream)
    with provider._errors(url, model):
        headers = provider.request_headers()
        timeout = provider.settings.timeout
        if not stream:
            response = await provider.client.request(
                "POST", url, headers=headers, json=body, timeout=timeout
            )
            provider._check(response.status, response.content, response.headers, model)
            media_type = _media_type(response.headers)
            if media_type in _WEB_PAGES:
                raise provider._not_an_answer(media_type, response.content)
            if media_type == "text/event-stream":
                # A server that streams whatever it was asked: decode, then answer as one body.
                decoder = provider.wire.StreamDecoder()
                events = [*decoder.feed(response.content), *decoder.close()]
                for event in events:
                    yield event
                yield relay.transcode_answer(events)
                return
            for item in relay.answer(response.content):
                yield item
            return
        async with provider.client.stream(
            "POST", url, headers=headers, json=body, timeout=timeout
        ) as streamed:
            if streamed.status >= 300:
                content = await streamed.aread()
                provider._check(streamed.status, content, streamed.headers, model)
            media_type = _media_type(streamed.headers)
            if media_type in _JSON:
                # A server that ignored `stream: true` sent the whole answer at once.
                events = provider._json_events(await streamed.aread())
                for event in events:
                    yield event
                yield relay.transcode_stream(events)
                return
            if media_type in _WEB_PAGES:
                raise provider._not_an_answer(media_type, await streamed.aread())
            seen = False
            head = b""
            async for chunk in streamed.aiter_bytes():
                if len(head) < _HEAD:
                    head += chunk[: _HEAD - len(head)]
                items = relay.feed(chunk)
                if items:
                    seen = True
                    for item in items:
                        yield item
            try:
                tail = relay.close()
            except NetworkError as exc:
                if seen or _looks_like_a_stream(head):
                    raise
                raise ParseError(
                    f"{provider.base_url()} answered without a single stream event "
                    f"(Content-Type {media_type or 'missing'}, body "
                    f"{excerpt(head.strip(), 60)!r}) — {provider.url_hint}"
                ) from exc
            for item in tail:
                yield item
