"""Where cached answers live: this process's memory, or Redis shared by every instance.

Both keep an entry ``ttl`` seconds from when it was stored (a hit does not
extend it: an answer is as fresh as the call that produced it) and hold at
most ``max_entries`` entries and ``max_bytes`` bytes of values, evicting the
least recently used first.

In Redis (``modelport:cache:`` prefix) an entry is a plain key with ``PX``;
beside the entries sit ``lru`` (a sorted set of entry keys by last use),
``sizes`` (a hash of each entry's size) and ``bytes`` (their sum). Storing and
evicting are one Lua script, so the bounds hold across instances. An entry
that expired stays counted until a lookup finds it gone or eviction reaches
it; expired entries are the least recently used, so they go first.

Neither store raises into a request: a Redis that cannot be reached makes a
lookup a miss and a store a no-op, with a warning in the log once a minute.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

__all__ = ["CacheStore", "MemoryStore", "RedisStore"]

logger = logging.getLogger("modelport.server")

_WARN_EVERY = 60.0


class CacheStore(Protocol):
    """What the response cache needs from a store."""

    async def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None:
        """Store ``value`` (in the background where that takes I/O)."""
        ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """An LRU dictionary with a TTL, bounded in entries and bytes; one process's own."""

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._ttl = ttl
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if self._clock() >= expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + self._ttl, value)
        self.bytes += len(value)
        while len(self._entries) > self._max_entries or self.bytes > self._max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def _drop(self, key: str) -> None:
        _expires, value = self._entries.pop(key)
        self.bytes -= len(value)

    async def aclose(self) -> None:
        self._entries.clear()
        self.bytes = 0


_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS: entry, lru, sizes, bytes. Returns the value, or false (and forgets a gone entry).
_GET = (
    _NOW
    + """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('ZADD', KEYS[2], now, KEYS[1])
  return value
end
local size = redis.call('HGET', KEYS[3], KEYS[1])
if size then
  redis.call('HDEL', KEYS[3], KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
  redis.call('DECRBY', KEYS[4], size)
end
return false
"""
)

#: KEYS: entry, lru, sizes, bytes. ARGV: value, ttl ms, max entries, max bytes.
#: Returns how many entries were evicted.
_PUT = (
    _NOW
    + """
local size = string.len(ARGV[1])
local old = redis.call('HGET', KEYS[3], KEYS[1])
if old then redis.call('DECRBY', KEYS[4], old) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[3], KEYS[1], size)
local total = redis.call('INCRBY', KEYS[4], size)
redis.call('ZADD', KEYS[2], now, KEYS[1])
local evicted = 0
local max_entries = tonumber(ARGV[3])
local max_bytes = tonumber(ARGV[4])
while redis.call('ZCARD', KEYS[2]) > max_entries or total > max_bytes do
  local oldest = redis.call('ZPOPMIN', KEYS[2])
  local key = oldest[1]
  local gone = redis.call('HGET', KEYS[3], key)
  redis.call('HDEL', KEYS[3], key)
  redis.call('DEL', key)
  if gone then total = redis.call('DECRBY', KEYS[4], gone) end
  evicted = evicted + 1
end
return evicted
"""
)


class RedisStore:
    """Entries in Redis, shared by every instance, with the same bounds as :class:`MemoryStore`."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float,
        max_entries: int,
        max_bytes: int,
        prefix: str = "modelport:cache:",
    ) -> None:
        from modelport._resp import BackgroundCommands, RedisConnection, Script, parse_redis_url

        self._redis = RedisConnection(parse_redis_url(url), timeout=1.0)
        self._prefix = prefix
        self._books = [prefix + "lru", prefix + "sizes", prefix + "bytes"]
        self._ttl_ms = max(1, int(ttl * 1000))
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._get = Script(_GET)
        self._put = Script(_PUT)
        # In the background: a stream's last frame must not wait for Redis.
        self._background = BackgroundCommands(self._unavailable)
        self._warned_at = -_WARN_EVERY

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._get(self._redis, [self._prefix + key, *self._books], [])
        except Exception as exc:
            self._unavailable(exc)
            return None
        return value if isinstance(value, bytes) else None

    def put(self, key: str, value: bytes) -> None:
        args = [value, self._ttl_ms, self._max_entries, self._max_bytes]
        self._background.spawn(self._put(self._redis, [self._prefix + key, *self._books], args))

    async def drain(self) -> None:
        """Wait for the stores still on their way (tests, shutdown)."""
        await self._background.drain()

    def _unavailable(self, exc: BaseException | None) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            logger.warning("the response cache cannot use Redis (%s); answering uncached", exc)

    async def aclose(self) -> None:
        await self.drain()
        await self._redis.aclose()
