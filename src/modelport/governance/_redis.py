"""Counters in Redis, shared by every instance: each step one Lua script, so it is atomic.

Keys live under ``mp:{<deployment>}:`` (the braces keep them in one Redis
Cluster slot; ``deployment`` comes from the database, so two deployments
sharing one Redis never share a counter):

* ``b:<budget>:<period>``, a hash: ``epoch``, spent (``sc`` nano-dollars,
  ``st`` tokens) and held (``hc``, ``ht``); beside it ``…:l``, the leases by
  expiry (a sorted set), and ``…:a``, each lease's held cost and tokens.
* ``r:<limit>:<minute>``, a hash: requests ``n``, settled tokens ``t``, held
  tokens ``h``; it expires two minutes after its minute began.

Time is the Redis server's (``TIME``), so every instance agrees on the
minute. A budget counter that does not exist (a new budget, a new period,
or a Redis that lost its data) is started from the ledger: the reserve
script answers ``init``, the instance sums the ledger's rows and the init
script writes them unless another instance did first. The scripts mirror
:func:`~modelport.governance._counters.decide` line for line; the tests run
the same operations against both.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

from modelport._resp import RedisConnection, Script, Unavailable
from modelport.governance._counters import (
    Granted,
    InitFrom,
    Lease,
    Plan,
    Refused,
    Settlement,
)
from modelport.governance._pricing import Charge

__all__ = ["RedisCounters"]

# How long a budget's counter outlives its period, for reports on the period just ended.
_KEEP_MS = 35 * 86_400_000

# A lease's hold on a budget counter ("cost tokens" in the counter's ``:a`` hash) given
# back; both the reservation (for expired leases) and the settlement release holds.
_RELEASE_HOLD = """
local function release_hold(k, id)
  local amount = redis.call('HGET', k .. ':a', id)
  if amount then
    local c, n = string.match(amount, '(%d+) (%d+)')
    redis.call('HINCRBY', k, 'hc', -tonumber(c))
    redis.call('HINCRBY', k, 'ht', -tonumber(n))
    redis.call('HDEL', k .. ':a', id)
  end
  return amount
end
"""

_RESERVE = (
    _RELEASE_HOLD
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = ARGV[1]
local ttl = tonumber(ARGV[2])
local input_cost = tonumber(ARGV[3])
local input_tokens = tonumber(ARGV[4])
local price = tonumber(ARGV[5])
local output = tonumber(ARGV[6])
local min_output = tonumber(ARGV[7])
local nb = tonumber(ARGV[8])
local nr = tonumber(ARGV[9])
local window = math.floor(now / 60000)
local window_left = (window + 1) * 60000 - now

local function cost_of(out)
  return input_cost + math.ceil(out * price - 1e-6)
end

local function num(v)
  if v then return tonumber(v) end
  return 0
end

local spent = {}
for i = 1, nb do
  local k = KEYS[i]
  local base = 9 + (i - 1) * 4
  local max_cost = tonumber(ARGV[base + 1])
  local max_tokens = tonumber(ARGV[base + 2])
  local ends_at = tonumber(ARGV[base + 3])
  local state = redis.call('HMGET', k, 'epoch', 'sc', 'st', 'hc', 'ht')
  if not state[1] then
    return {'init', i}
  end
  local expired = redis.call('ZRANGEBYSCORE', k .. ':l', '-inf', now)
  if #expired > 0 then
    for _, id in ipairs(expired) do
      release_hold(k, id)
    end
    redis.call('ZREMRANGEBYSCORE', k .. ':l', '-inf', now)
    state = redis.call('HMGET', k, 'epoch', 'sc', 'st', 'hc', 'ht')
  end
  local sc, st, hc, ht = num(state[2]), num(state[3]), num(state[4]), num(state[5])
  spent[i] = state[1]
  local refused = false
  if max_cost >= 0 then
    local room = max_cost - sc - hc - input_cost
    local affordable
    if room < 0 then
      affordable = -1
    elseif price <= 0 then
      affordable = 4611686018427387904
    else
      affordable = math.floor(room / price)
    end
    if affordable < min_output then
      refused = true
    elseif affordable < output then
      output = affordable
    end
  end
  if not refused and max_tokens >= 0 then
    local room = max_tokens - st - ht - input_tokens
    if room < min_output then
      refused = true
    elseif room < output then
      output = room
    end
  end
  if refused then
    local fits_cost = max_cost < 0 or sc + cost_of(min_output) <= max_cost
    local fits_tokens = max_tokens < 0 or st + input_tokens + min_output <= max_tokens
    local first = redis.call('ZRANGE', k .. ':l', 0, 0, 'WITHSCORES')
    if fits_cost and fits_tokens and #first > 0 then
      local wait = tonumber(first[2]) - now
      if wait < 1000 then wait = 1000 end
      if wait > 5000 then wait = 5000 end
      return {'budget', i, wait}
    end
    if ends_at < 0 then
      return {'budget', i, -1}
    end
    local wait = ends_at - now
    if wait < 1000 then wait = 1000 end
    return {'budget', i, wait}
  end
end

local windows = {}
for j = 1, nr do
  local k = KEYS[nb + j] .. ':' .. window
  windows[j] = k
  local base = 9 + nb * 4 + (j - 1) * 2
  local rpm = tonumber(ARGV[base + 1])
  local tpm = tonumber(ARGV[base + 2])
  local state = redis.call('HMGET', k, 'n', 't', 'h')
  local n, used, held = num(state[1]), num(state[2]), num(state[3])
  if rpm >= 0 and n + 1 > rpm then
    return {'rpm', j, window_left}
  end
  if tpm >= 0 then
    local room = tpm - used - held - input_tokens
    if room < min_output then
      return {'tpm', j, window_left}
    end
    if room < output then output = room end
  end
end

if output < min_output then output = min_output end
local cost = cost_of(output)
local tokens = input_tokens + output
local expires = now + ttl
for i = 1, nb do
  local k = KEYS[i]
  local keep = tonumber(ARGV[9 + (i - 1) * 4 + 4])
  redis.call('HINCRBY', k, 'hc', cost)
  redis.call('HINCRBY', k, 'ht', tokens)
  redis.call('ZADD', k .. ':l', expires, lease)
  redis.call('HSET', k .. ':a', lease, string.format('%d %d', cost, tokens))
  if keep > 0 then
    redis.call('PEXPIREAT', k .. ':l', keep)
    redis.call('PEXPIREAT', k .. ':a', keep)
  end
end
for j = 1, nr do
  local k = windows[j]
  redis.call('HINCRBY', k, 'n', 1)
  redis.call('HINCRBY', k, 'h', tokens)
  redis.call('PEXPIRE', k, 120000)
end
local answer = {'ok', output, cost, tokens, window}
for i = 1, nb do
  answer[5 + i] = spent[i]
end
return answer
"""
)

# ARGV: the number of leases, then for each: its id, real cost and tokens, held tokens,
# its budget and rate counters' counts, and its budgets' epochs; KEYS: each lease's
# budget counters, then its rate windows, lease after lease.
_SETTLE = (
    _RELEASE_HOLD
    + """
local a = 2
local k = 0
for _ = 1, tonumber(ARGV[1]) do
  local lease = ARGV[a]
  local cost = tonumber(ARGV[a + 1])
  local tokens = tonumber(ARGV[a + 2])
  local held_tokens = tonumber(ARGV[a + 3])
  local nb = tonumber(ARGV[a + 4])
  local nr = tonumber(ARGV[a + 5])
  a = a + 6
  for i = 1, nb do
    local key = KEYS[k + i]
    if redis.call('HGET', key, 'epoch') == ARGV[a + i - 1] then
      if release_hold(key, lease) then
        redis.call('ZREM', key .. ':l', lease)
      end
      redis.call('HINCRBY', key, 'sc', cost)
      redis.call('HINCRBY', key, 'st', tokens)
    end
  end
  a = a + nb
  k = k + nb
  for j = 1, nr do
    local key = KEYS[k + j]
    if redis.call('EXISTS', key) == 1 then
      redis.call('HINCRBY', key, 'h', -held_tokens)
      redis.call('HINCRBY', key, 't', tokens)
    end
  end
  k = k + nr
end
return 1
"""
)

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i] .. ':l', 'XX', now + tonumber(ARGV[2]), ARGV[1])
end
return 1
"""

_INIT = """
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'sc', ARGV[2], 'st', ARGV[3], 'hc', 0, 'ht', 0)
  local keep = tonumber(ARGV[4])
  if keep > 0 then redis.call('PEXPIREAT', KEYS[1], keep) end
end
return 1
"""


class RedisCounters:
    """Budget and rate counters in Redis for the deployment ``deployment``."""

    def __init__(
        self,
        redis: RedisConnection,
        deployment: str,
        init_from: InitFrom,
        *,
        ttl_ms: int,
    ) -> None:
        self.redis = redis
        self.prefix = f"mp:{{{deployment}}}:"
        self._init_from = init_from
        self._ttl_ms = ttl_ms
        self._reserve = Script(_RESERVE)
        self._settle = Script(_SETTLE)
        self._renew = Script(_RENEW)
        self._init = Script(_INIT)
        #: Per plan (by identity; the plan is kept so its id is not reused): keys, arguments.
        self._plans: dict[int, tuple[Plan, list[bytes], list[bytes]]] = {}

    async def _run(self, script: Script, keys: Sequence[str | bytes], args: list[Any]) -> Any:
        from modelport.governance._enforcer import CountersUnavailable

        try:
            return await script(self.redis, keys, args)
        except Unavailable as exc:
            raise CountersUnavailable(str(exc)) from None

    async def reserve(self, plan: Plan, charge: Charge, lease_id: str) -> Granted | Refused:
        keys, counters = self._prepared(plan)
        args: list[Any] = [
            lease_id,
            self._ttl_ms,
            charge.input_cost,
            charge.input_tokens,
            repr(charge.output_price),
            charge.max_output,
            charge.min_output,
            *counters,
        ]
        for _attempt in range(len(plan.budgets) + 1):
            answer = await self._run(self._reserve, keys, args)
            kind = answer[0]
            if kind == b"ok":
                _, output, cost, tokens, window, *epochs = answer
                lease = Lease(
                    id=lease_id,
                    plan=plan,
                    cost=int(cost),
                    tokens=int(tokens),
                    epochs=tuple(epoch.decode() for epoch in epochs),
                    windows=(int(window),) * len(plan.rates),
                    max_output=int(output),
                )
                return Granted(lease)
            if kind == b"init":
                await self._start_counter(plan.budgets[int(answer[1]) - 1])
                continue
            index, wait = int(answer[1]) - 1, int(answer[2])
            lines = plan.budgets if kind == b"budget" else plan.rates
            return Refused(kind.decode(), lines[index].label, None if wait < 0 else wait / 1000)
        raise AssertionError("a budget counter kept disappearing")  # pragma: no cover

    def _prepared(self, plan: Plan) -> tuple[list[bytes], list[bytes]]:
        """``plan``'s keys and its counters' arguments, packed once per plan (the gateway
        keeps a plan per key and model until the catalog or the period changes)."""
        found = self._plans.get(id(plan))
        if found is not None and found[0] is plan:
            return found[1], found[2]
        prefix = self.prefix
        keys = [prefix + line.counter for line in plan.budgets]
        keys += [prefix + line.counter for line in plan.rates]
        counters = [len(plan.budgets), len(plan.rates)]
        for line in plan.budgets:
            counters += [
                _or_none(line.max_cost),
                _or_none(line.max_tokens),
                _or_none(line.ends_at_ms),
                -1 if line.ends_at_ms is None else line.ends_at_ms + _KEEP_MS,
            ]
        for rate in plan.rates:
            counters += [_or_none(rate.rpm), _or_none(rate.tpm)]
        # As bytes: the command packer then copies them instead of converting each call.
        packed = ([key.encode() for key in keys], [str(n).encode() for n in counters])
        if len(self._plans) > 10_000:
            self._plans.clear()
        self._plans[id(plan)] = (plan, *packed)
        return packed

    async def _start_counter(self, line: Any) -> None:
        cost, tokens = await asyncio.to_thread(self._init_from, line)
        keep = -1 if line.ends_at_ms is None else line.ends_at_ms + _KEEP_MS
        await self._run(
            self._init, [self.prefix + line.counter], [secrets.token_hex(4), cost, tokens, keep]
        )

    async def settle_many(self, settlements: Sequence[Settlement]) -> None:
        prefix = self.prefix
        keys: list[str] = []
        args: list[Any] = [len(settlements)]
        for lease, cost, tokens in settlements:
            plan = lease.plan
            keys += [prefix + line.counter for line in plan.budgets]
            keys += [
                f"{prefix}{line.counter}:{window}"
                for line, window in zip(plan.rates, lease.windows, strict=True)
            ]
            args += [lease.id, cost, tokens, lease.tokens, len(plan.budgets), len(plan.rates)]
            args += lease.epochs
        await self._run(self._settle, keys, args)

    async def renew_many(self, leases: Sequence[Lease]) -> None:
        renewals = [
            self._run(
                self._renew,
                [self.prefix + line.counter for line in lease.plan.budgets],
                [lease.id, self._ttl_ms],
            )
            for lease in leases
            if lease.plan.budgets
        ]
        await asyncio.gather(*renewals)

    async def rebuild(self) -> None:
        """Drop every budget counter of this deployment; each restarts from the ledger."""
        cursor = b"0"
        while True:
            cursor, found = await self._run_plain("SCAN", cursor, "MATCH", self.prefix + "b:*")
            if found:
                await self._run_plain("UNLINK", *found)
            if cursor in (b"0", 0, "0"):
                return

    async def _run_plain(self, *args: Any) -> Any:
        from modelport.governance._enforcer import CountersUnavailable

        try:
            return await self.redis.call(*args)
        except Unavailable as exc:
            raise CountersUnavailable(str(exc)) from None

    async def aclose(self) -> None:
        await self.redis.aclose()


def _or_none(value: int | None) -> int:
    return -1 if value is None else value
