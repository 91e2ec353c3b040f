"""The response cache: identical chat requests answered from a stored answer.

Off unless ``config.toml`` has a ``[cache]`` table
(:mod:`modelport.config._cache_settings`), and then only for the models it
lists. Every chat route goes through :mod:`modelport.server._chat`, so each
surface (Chat Completions, Messages, Responses) shares one cache: an entry
holds canonical events, re-encoded for whichever API asks.

**The key** is a BLAKE2b digest of the canonical request — the
:class:`~modelport.types.ChatRequest` the wire module parsed, encoded with
msgspec — and of the ``anthropic-beta`` flags the call forwards. Every field
counts (the model as the client named it, messages, tools, tool choice,
temperature, top_p, max_tokens, stop, response format, reasoning, the
vendor options such as ``seed`` or ``user``, ``extra``) except ``metadata``,
which labels a request without changing its answer. Whether the client asked
for a stream does not count either: a streamed and a plain request share an
entry, and a stored answer is replayed as a stream (its events, adjacent
text joined) or encoded whole.

**Tenants.** Entries are partitioned per tenant unless ``per_tenant = false``:
the team of the caller's virtual key, else the key itself; else the gateway
key (one key, one tenant); else one partition for a keyless gateway on
loopback. One tenant's answer is never served to another.

**What is stored**: only an answer that ended normally — a stream whose
upstream finished and whose every event reached the end of the walk, or a
complete answer. An error, a stream that broke or that the client left, or
an answer over ``max_entry_bytes`` is not stored.

**A request opts out** with ``Cache-Control: no-cache`` (skip the lookup,
store the fresh answer) or ``no-store`` (neither). Answers carry
``x-modelport-cache: hit``, ``miss`` or ``bypass``.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Literal

import msgspec

from modelport.config import CacheConfig
from modelport.events import (
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
)
from modelport.server._cache_stores import CacheStore, MemoryStore, RedisStore
from modelport.types import ChatRequest

__all__ = ["CachedAnswer", "Lookup", "ResponseCache", "build_cache", "compact"]

CACHE_HEADER = b"x-modelport-cache"

Lookup = Literal["hit", "miss", "bypass"]


class CachedAnswer(msgspec.Struct, frozen=True, array_like=True):
    """What an entry holds: the address that answered and the answer's events."""

    address: str
    events: list[StreamEvent]


_encode_answer = msgspec.msgpack.Encoder().encode
_decode_answer = msgspec.msgpack.Decoder(CachedAnswer).decode
_encode_key = msgspec.msgpack.Encoder().encode


def compact(events: Iterable[StreamEvent]) -> list[StreamEvent]:
    """``events`` with adjacent text, reasoning and same-call argument pieces joined."""
    out: list[StreamEvent] = []
    for event in events:
        last = out[-1] if out else None
        if type(event) is TextEvent and type(last) is TextEvent:
            out[-1] = TextEvent(text=last.text + event.text)
        elif (
            type(event) is ReasoningEvent
            and type(last) is ReasoningEvent
            and last.signature is None
            and last.redacted is None
            and event.redacted is None
        ):
            out[-1] = ReasoningEvent(text=last.text + event.text, signature=event.signature)
        elif (
            type(event) is ToolCallDeltaEvent
            and type(last) is ToolCallDeltaEvent
            and last.index == event.index
        ):
            out[-1] = ToolCallDeltaEvent(
                index=event.index, arguments=last.arguments + event.arguments
            )
        else:
            out.append(event)
    return out


class ResponseCache:
    """Decides what is cached, keys it per tenant, and reads and writes its store."""

    def __init__(self, settings: CacheConfig, store: CacheStore) -> None:
        self.settings = settings
        self.store = store
        self._patterns = tuple(settings.models)
        self._wanted: dict[str, bool] = {}

    def wants(self, model: str) -> bool:
        """Whether answers for ``model`` (as the client named it) are cached."""
        found = self._wanted.get(model)
        if found is None:
            found = any(fnmatch.fnmatchcase(model, p) for p in self._patterns)
            if len(self._wanted) < 4096:  # names come from clients: bound the memo
                self._wanted[model] = found
        return found

    def tenant(self, scope_state: Mapping[str, Any], gateway_digest: bytes | None) -> str:
        """The partition a caller's answers live in (see the module docstring)."""
        if not self.settings.per_tenant:
            return "shared"
        vkey = scope_state.get("vkey")
        if vkey is not None:
            team = getattr(vkey, "team", None)
            return f"team:{team}" if team else f"key:{vkey.id}"
        if gateway_digest is not None:
            return "gateway:" + gateway_digest[:8].hex()
        return "local"

    def key(self, tenant: str, chat: ChatRequest, headers: Mapping[str, str] | None) -> str:
        """The entry's name: the tenant's digest, then the request's."""
        if chat.metadata is not None:
            chat = msgspec.structs.replace(chat, metadata=None)
        digest = hashlib.blake2b(_encode_key(chat), digest_size=20)
        if headers:
            digest.update(_encode_key(sorted(headers.items())))
        partition = hashlib.blake2b(tenant.encode(), digest_size=8).hexdigest()
        return f"{partition}:{digest.hexdigest()}"

    async def lookup(self, key: str) -> CachedAnswer | None:
        raw = await self.store.get(key)
        if raw is None:
            return None
        try:
            return _decode_answer(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # written by another version: a miss, overwritten after this call

    def remember(self, key: str, address: str, events: Iterable[StreamEvent]) -> None:
        """Store a finished answer (unless it is larger than ``max_entry_bytes``)."""
        value = _encode_answer(CachedAnswer(address=address, events=compact(events)))
        if len(value) <= self.settings.max_entry_bytes:
            self.store.put(key, value)

    async def recording(
        self, key: str, events: AsyncIterator[StreamEvent], answered: Callable[[], str | None]
    ) -> AsyncIterator[StreamEvent]:
        """``events`` passed straight through; stored once they end with a finish.

        ``answered`` gives the address that answered. A stream that raises, is
        closed early (the client left) or ends without a finish event is not
        stored.
        """
        seen: list[StreamEvent] = []
        finished = False
        try:
            async for event in events:
                seen.append(event)
                if type(event) is FinishEvent:
                    finished = True
                yield event
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        address = answered()
        if finished and address is not None:
            self.remember(key, address, seen)

    async def aclose(self) -> None:
        await self.store.aclose()


def cache_directive(headers: Mapping[str, str]) -> Lookup | None:
    """``bypass`` for ``Cache-Control: no-store``, ``miss`` for ``no-cache``, else ``None``."""
    value = headers.get("cache-control")
    if not value:
        return None
    directives = {part.strip().lower() for part in value.split(",")}
    if "no-store" in directives:
        return "bypass"
    if "no-cache" in directives:
        return "miss"
    return None


def build_cache(settings: CacheConfig | None, redis_url: str | None) -> ResponseCache | None:
    """The cache ``[cache]`` asks for (``None`` without one): in Redis when ``redis_url`` is set."""
    if settings is None:
        return None
    store: CacheStore
    if redis_url:
        store = RedisStore(
            redis_url,
            ttl=settings.ttl,
            max_entries=settings.max_entries,
            max_bytes=settings.max_bytes,
        )
    else:
        store = MemoryStore(
            ttl=settings.ttl, max_entries=settings.max_entries, max_bytes=settings.max_bytes
        )
    return ResponseCache(settings, store)
