"""Where the balancer keeps its counts: in flight per deployment, failures, cooldowns.

:class:`LocalState` keeps them in this process. :class:`RedisState` shares
them between every instance on one Redis (``redis_url``), so least-busy sees
the calls other instances have in flight and a cooldown one instance starts
holds on all of them. Each step is one Lua script, so choosing the least
busy deployment and counting the call on it is one atomic step: two
instances choosing at once cannot both see the same deployment idle.

Redis layout (``modelport:lb:`` prefix):

* ``inst``, a sorted set: each live instance, scored by when it expires;
* ``inst:<id>``, a hash per instance: deployment address → calls it has in
  flight there. It expires with the instance (30 s without a heartbeat), so a
  crashed instance's calls stop counting instead of starving a deployment;
* ``cool:<address>``: present while the deployment sits out (``PX`` = cooldown);
* ``fails:<address>``: failures in the current minute.

An instance counts its own calls locally too: a heartbeat (every 10 s)
keeps its hash alive, and writes it back from those counts if Redis lost it. All
of an instance's commands travel on one pipelined connection
(:class:`~modelport._resp.RedisConnection`), so Redis applies them in the
order they were sent and the local counts match what Redis saw. When Redis
cannot be reached the balancer chooses from the local counts (and says so
in the log, once a minute) rather than failing the call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

__all__ = ["Choice", "LocalState", "RedisState"]

logger = logging.getLogger("modelport.routing")

#: Failures are counted per minute, as LiteLLM's ``allowed_fails`` are.
_FAIL_WINDOW = 60.0
#: An instance silent this long (no call, no heartbeat) no longer counts.
_INSTANCE_TTL_S = 30.0


class Choice:
    """The deployment a call goes to first, and the others in the order to fail over."""

    __slots__ = ("first", "rest")

    def __init__(self, first: str, rest: list[str]) -> None:
        self.first = first
        self.rest = rest


def _order(
    preference: Sequence[tuple[str, float]],
    loads: Sequence[float],
    cooling: Sequence[float],
    least_busy: bool,
) -> Choice:
    """Pick from ``preference`` (address, weight): the least loaded per weight when
    ``least_busy``, else the first; deployments cooling down only when all are.

    The rest follow in preference order (least loaded first for least-busy);
    cooling ones are left out unless every deployment is cooling, then all
    come in the order their cooldowns end.
    """
    indexes = [i for i in range(len(preference)) if cooling[i] <= 0]
    if not indexes:
        ordered = sorted(range(len(preference)), key=lambda i: cooling[i])
    elif least_busy:
        ordered = sorted(indexes, key=lambda i: loads[i] / preference[i][1])
    else:
        ordered = indexes
    return Choice(preference[ordered[0]][0], [preference[i][0] for i in ordered[1:]])


class LocalState:
    """In-flight counts, failures and cooldowns of this process's calls."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.in_flight: dict[str, int] = {}
        self._cool_until: dict[str, float] = {}
        self._fails: dict[str, tuple[float, int]] = {}
        self._clock = clock

    def cooling(self, address: str) -> float:
        """Seconds ``address`` still sits out (0: it does not)."""
        until = self._cool_until.get(address)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._cool_until[address]
            return 0.0
        return left

    async def choose(self, preference: Sequence[tuple[str, float]], least_busy: bool) -> Choice:
        return self.choose_now(preference, least_busy)

    def choose_now(self, preference: Sequence[tuple[str, float]], least_busy: bool) -> Choice:
        in_flight = self.in_flight
        loads = [in_flight.get(address, 0) for address, _ in preference]
        cooling = [self.cooling(address) for address, _ in preference]
        choice = _order(preference, loads, cooling, least_busy)
        self.count(choice.first)
        return choice

    def count(self, address: str) -> None:
        self.in_flight[address] = self.in_flight.get(address, 0) + 1

    async def acquire(self, address: str) -> None:
        self.count(address)

    def release(self, address: str) -> None:
        left = self.in_flight.get(address, 0) - 1
        if left > 0:
            self.in_flight[address] = left
        else:
            self.in_flight.pop(address, None)

    def failed(self, address: str, allowed_fails: int, cooldown: float) -> bool:
        """Count a failure; True when it starts a cooldown."""
        now = self._clock()
        started, count = self._fails.get(address, (now, 0))
        if now - started >= _FAIL_WINDOW:
            started, count = now, 0
        count += 1
        if count > allowed_fails and cooldown > 0:
            self._fails.pop(address, None)
            self.cool(address, cooldown)
            return True
        self._fails[address] = (started, count)
        return False

    def cool(self, address: str, seconds: float) -> None:
        self._cool_until[address] = self._clock() + seconds

    async def aclose(self) -> None:
        return None


# --- Redis -------------------------------------------------------------------------------------

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS: instances, own hash. ARGV: own id, ttl ms, prefix, least-busy (1/0), then
#: address and weight pairs. Returns the chosen index (1-based), then each
#: deployment's load and cooldown left (ms).
_CHOOSE = (
    _NOW
    + """
local prefix = ARGV[3]
local least = ARGV[4] == '1'
local n = (#ARGV - 4) / 2
local live = {}
if least then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  live = redis.call('ZRANGE', KEYS[1], 0, -1)
end
local reply = {0}
local best, best_load = nil, nil
local soonest = nil
for i = 1, n do
  local address = ARGV[3 + 2 * i]
  local count = 0
  for _, id in ipairs(live) do
    count = count + (tonumber(redis.call('HGET', prefix .. 'inst:' .. id, address)) or 0)
  end
  local cool = redis.call('PTTL', prefix .. 'cool:' .. address)
  if cool < 0 then cool = 0 end
  reply[2 * i] = count
  reply[2 * i + 1] = cool
  if cool == 0 then
    local load = 0
    if least then load = count / tonumber(ARGV[4 + 2 * i]) end
    if best == nil or load < best_load then best, best_load = i, load end
  elseif soonest == nil or cool < reply[2 * soonest + 1] then
    soonest = i
  end
end
if best == nil then best = soonest end
reply[1] = best
redis.call('HINCRBY', KEYS[2], ARGV[3 + 2 * best], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return reply
"""
)

#: KEYS: instances, own hash. ARGV: own id, ttl ms, address, +1 or -1.
_COUNT = (
    _NOW
    + """
local delta = tonumber(ARGV[4])
if delta < 0 and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local left = redis.call('HINCRBY', KEYS[2], ARGV[3], delta)
if left <= 0 then redis.call('HDEL', KEYS[2], ARGV[3]) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return left
"""
)

#: KEYS: fails counter, cooldown key. ARGV: allowed fails, cooldown ms, window ms.
#: Returns 1 when this failure started a cooldown.
_FAILED = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if count > tonumber(ARGV[1]) and tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

#: KEYS: instances, own hash. ARGV: own id, ttl ms, then address and count pairs
#: (this instance's own counts, written back only if its hash was lost).
_HEARTBEAT = (
    _NOW
    + """
if redis.call('PEXPIRE', KEYS[2], ARGV[2]) == 0 and #ARGV > 2 then
  for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)


class RedisState:
    """The counts of every instance on one Redis; :class:`LocalState` when it is unreachable."""

    def __init__(
        self, url: str, *, prefix: str = "modelport:lb:", instance_ttl: float = _INSTANCE_TTL_S
    ) -> None:
        from modelport._resp import BackgroundCommands, RedisConnection, Script, parse_redis_url

        self._redis = RedisConnection(parse_redis_url(url), timeout=1.0)
        self.local = LocalState()
        self._prefix = prefix
        self.instance = secrets.token_hex(8)
        self._ttl_ms = int(instance_ttl * 1000)
        self._instances_key = prefix + "inst"
        self._own_key = f"{prefix}inst:{self.instance}"
        self._choose = Script(_CHOOSE)
        self._count = Script(_COUNT)
        self._failed = Script(_FAILED)
        self._heartbeat_script = Script(_HEARTBEAT)
        # Not awaited: a call's last event must not wait for its release to reach Redis.
        self._background = BackgroundCommands(self._unavailable)
        self._heartbeat: asyncio.Task[None] | None = None
        self._warned_at = -_FAIL_WINDOW

    @property
    def in_flight(self) -> dict[str, int]:
        return self.local.in_flight

    async def choose(self, preference: Sequence[tuple[str, float]], least_busy: bool) -> Choice:
        self._alive()
        args: list[Any] = [self.instance, self._ttl_ms, self._prefix, 1 if least_busy else 0]
        for address, weight in preference:
            args += (address, weight)
        try:
            reply = await self._send_choice(args, preference)
        except Exception as exc:
            self._unavailable(exc)
            return self.local.choose_now(preference, least_busy)
        loads = [float(reply[1 + 2 * i]) for i in range(len(preference))]
        cooling = [float(reply[2 + 2 * i]) for i in range(len(preference))]
        # The script chose and counted the first; the rest follow from the same figures.
        chosen = preference[int(reply[0]) - 1][0]
        choice = _order(preference, loads, cooling, least_busy)
        if choice.first != chosen:
            choice.rest = [choice.first, *(a for a in choice.rest if a != chosen)]
            choice.first = chosen
        return choice

    async def _send_choice(
        self, args: list[Any], preference: Sequence[tuple[str, float]]
    ) -> list[Any]:
        keys = [self._instances_key, self._own_key]
        reply = await self._choose(self._redis, keys, args)
        self.local.count(preference[int(reply[0]) - 1][0])
        return reply

    def _alive(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def acquire(self, address: str) -> None:
        self._alive()
        self.local.count(address)
        self._background.spawn(self._send_count(address, 1))

    def release(self, address: str) -> None:
        self.local.release(address)
        self._background.spawn(self._send_count(address, -1))

    def _send_count(self, address: str, delta: int) -> Coroutine[Any, Any, Any]:
        keys = [self._instances_key, self._own_key]
        return self._count(self._redis, keys, [self.instance, self._ttl_ms, address, delta])

    def failed(self, address: str, allowed_fails: int, cooldown: float) -> bool:
        cooled = self.local.failed(address, allowed_fails, cooldown)
        keys = [f"{self._prefix}fails:{address}", f"{self._prefix}cool:{address}"]
        args = [allowed_fails, int(cooldown * 1000), int(_FAIL_WINDOW * 1000)]
        self._background.spawn(self._failed(self._redis, keys, args))
        return cooled

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                await self.heartbeat()
            except Exception as exc:
                self._unavailable(exc)

    async def heartbeat(self) -> None:
        """Keep this instance's counts alive; write them back if Redis lost them."""
        args: list[Any] = [self.instance, self._ttl_ms]
        for address, count in self.local.in_flight.items():
            args += (address, count)
        await self._heartbeat_script(self._redis, [self._instances_key, self._own_key], args)

    def _unavailable(self, exc: BaseException | None) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _FAIL_WINDOW:
            self._warned_at = now
            logger.warning(
                "the balancer cannot reach Redis (%s); choosing from this instance's own "
                "counts until it can",
                exc,
            )

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait for the counts and failures sent in the background (tests, shutdown)."""
        await self._background.drain(timeout)

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await self.drain()
        await self._redis.aclose()
