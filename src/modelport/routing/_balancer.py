"""Load balancing: which deployment of a model group a call goes to, and in what order
the others are tried when it fails before answering.

A model group is an alias written as a table (:mod:`modelport.config._groups`):
one name, several deployments (``connection/model`` addresses), a strategy.

* ``weighted`` (the default): a random draw in proportion to ``weight``.
* ``least-busy``: the deployment with the fewest calls in flight per unit of
  weight. With ``redis_url`` the counts are every instance's, and choosing and
  counting are one atomic step (:mod:`._deployment_state`); without it, this
  process's own.
* ``lowest-latency``: the deployment whose recent calls answered first (an
  average of the time to the first event, or to the whole answer for a
  non-streaming call; this process's own measurements). One never measured is
  tried first; figures within 10 % of each other count as a tie, broken at random.
  A figure older than a minute is stale: that deployment is measured again
  (tried first once more), so one slow call, a cold start, does not shut it out.

A deployment that fails more than ``allowed_fails`` times in a minute sits out
``cooldown`` seconds (on every instance when Redis is shared): it is not
chosen, nor tried as a failover, unless every deployment of the group is
sitting out, in which case they are tried in the order their cooldowns end
rather than refusing the call untried. Failures that count are the
deployment's, not the request's: any error but an invalid request (400,
context too long) or a configuration error; a cancelled call is no failure.

Failing over follows the fallback rule (:mod:`._fallbacks`): only on a
retryable error, after that deployment's own retries, and never once an event
has reached the caller. A group's deployments come first, then the group's
configured ``[fallbacks]``; nothing else is ever tried. A call is counted in
flight on a deployment from the moment it is chosen until its attempt ends
(answered, failed, or abandoned by the caller).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import NamedTuple, TypeVar

from modelport.config import ModelGroup
from modelport.errors import ConfigError, InvalidRequestError
from modelport.events import StreamEvent
from modelport.routing._deployment_state import LocalState, RedisState

__all__ = ["Balancer", "Step"]

logger = logging.getLogger("modelport.routing")

_T = TypeVar("_T")

#: Weight of the newest latency sample in the running average.
_ALPHA = 0.3
#: Latencies closer than this (as a fraction) count as a tie.
_LATENCY_TIE = 0.1
#: Seconds after which a deployment's latency figure is measured afresh.
_STALE = 60.0


class Step(NamedTuple):
    """One address a call may try: where it came from and what comes after it."""

    #: The address to try (``connection/model``).
    address: str
    #: The model group it is a deployment of, or ``None`` for a plain address.
    group: str | None
    #: Whether it stands for what the caller named (so per-call overrides apply).
    first: bool
    #: The address or group tried after this one, ``None`` for the last.
    next: str | None


class Balancer:
    """Chooses among a group's deployments and learns from how each call went.

    ``redis_url`` shares the in-flight counts and cooldowns between instances;
    without it they are this process's. ``rand`` and ``clock`` are injectable
    for tests. A balancer belongs to one event loop; :meth:`aclose` closes its
    Redis connection.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.state: LocalState | RedisState = RedisState(redis_url) if redis_url else LocalState()
        self._rand = rand
        self._clock = clock
        #: Running average of each deployment's time to answer, in seconds.
        self.latency: dict[str, float] = {}
        #: When each deployment was last measured (``clock`` time).
        self.measured_at: dict[str, float] = {}

    # --- choosing ------------------------------------------------------------------------

    def preference(self, group: ModelGroup) -> list[tuple[str, float]]:
        """The group's deployments (address, weight) in the order its strategy prefers
        them before in-flight counts and cooldowns are looked at."""
        rand = self._rand
        pairs = [(d.model, d.weight) for d in group.deployments]
        if group.strategy == "weighted":
            # Efraimidis–Spirakis: sorting by u ** (1 / w) draws in proportion to the weights.
            return sorted(pairs, key=lambda p: rand() ** (1.0 / p[1]), reverse=True)
        if group.strategy == "lowest-latency":
            fresh_since = self._clock() - _STALE
            latency = {
                address: seconds
                for address, seconds in self.latency.items()
                if self.measured_at[address] >= fresh_since
            }
            return sorted(
                pairs,
                key=lambda p: (latency.get(p[0], 0.0) * (1.0 + _LATENCY_TIE * rand()), rand()),
            )
        # least-busy: a random order breaks ties between equally busy deployments.
        return sorted(pairs, key=lambda _p: rand())

    async def walk(self, chain: list[str], groups: Mapping[str, ModelGroup]) -> AsyncIterator[Step]:
        """Each address of ``chain`` to try in turn, a group expanded to its deployments.

        A deployment counts as in flight from when it is yielded until the
        walk moves past it or is closed: close the walk (``aclose``) after the call.
        """
        state = self.state
        for position, target in enumerate(chain):
            after = chain[position + 1] if position + 1 < len(chain) else None
            group = groups.get(target)
            if group is None:
                yield Step(target, None, position == 0, after)
                continue
            choice = await state.choose(self.preference(group), group.strategy == "least-busy")
            addresses = [choice.first, *choice.rest]
            for index, address in enumerate(addresses):
                if index:
                    await state.acquire(address)
                try:
                    following = addresses[index + 1] if index + 1 < len(addresses) else after
                    yield Step(address, group.name, False, following)
                finally:
                    state.release(address)

    # --- learning ------------------------------------------------------------------------

    async def observe(
        self, group: ModelGroup, address: str, events: AsyncIterator[StreamEvent]
    ) -> AsyncIterator[StreamEvent]:
        """``events`` of a call on ``address`` unchanged, timed and its failure counted.

        Events pass straight through (no await between them), as
        :mod:`modelport._bursts` needs.
        """
        started = self._clock()
        waiting = True
        try:
            async for event in events:
                if waiting:
                    waiting = False
                    self._sample(address, self._clock() - started)
                yield event
        except Exception as exc:
            self._judge(group, address, exc)
            raise
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def observe_answer(self, group: ModelGroup, address: str, answer: Awaitable[_T]) -> _T:
        """``await answer`` (a non-streaming call on ``address``), timed and its failure counted."""
        started = self._clock()
        try:
            result = await answer
        except Exception as exc:
            self._judge(group, address, exc)
            raise
        self._sample(address, self._clock() - started)
        return result

    def _sample(self, address: str, seconds: float) -> None:
        now = self._clock()
        previous = self.latency.get(address)
        if previous is None or now - self.measured_at[address] > _STALE:
            self.latency[address] = seconds  # a stale figure says nothing about now
        else:
            self.latency[address] = previous + _ALPHA * (seconds - previous)
        self.measured_at[address] = now

    def _judge(self, group: ModelGroup, address: str, exc: Exception) -> None:
        if isinstance(exc, InvalidRequestError | ConfigError):
            return  # the request's fault, or ours: the deployment is fine
        if self.state.failed(address, group.allowed_fails, group.cooldown):
            logger.warning(
                "deployment %r of %r failed more than %d times in a minute (last: %s); "
                "it sits out for %gs",
                address,
                group.name,
                group.allowed_fails,
                type(exc).__name__,
                group.cooldown,
            )

    async def aclose(self) -> None:
        await self.state.aclose()
