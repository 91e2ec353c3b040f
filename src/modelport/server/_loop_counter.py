"""A Prometheus counter kept in a plain dict by the event loop, exposed when scraped.

prometheus-client's ``Counter`` takes a lock and makes three Python calls for each
``inc`` (~1.3 µs here), for threads the gateway does not have: its counters are
touched by the event loop only. A plain call counts itself and its tokens three
times or more. :class:`LoopCounter` adds to a dict entry instead and builds the
metric family (the same name, help, labels and samples a ``Counter`` exposes) when
the registry is collected. A scrape from another thread copies the dict in one C
call (``dict.copy``) first, so it never sees it change under it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LoopCounter"]


class LoopCounter(Collector):
    """A labelled counter for one thread's updates (:meth:`inc`), collected like a ``Counter``."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = labelnames
        #: Each label set's count, in the order the sets first came (as ``Counter`` lists them).
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        # dict.copy() copies the table in C with no Python code in between; iterating
        # the live dict (even into a list) can run a collection's finalizers mid-way,
        # and another thread with them (a scrape saw the dict change size under it).
        for labels, value in self.values.copy().items():
            family.add_metric(labels, value)
        yield family
