"""A Prometheus histogram kept in plain lists by the event loop, exposed when scraped.

prometheus-client's ``Histogram.observe`` takes a lock for its sum and another for
the bucket, and walks the bounds in Python (~1.4 µs here, one or two a request:
the request's latency, a stream's time to first token), for threads the gateway
does not have: only the event loop observes. :class:`LoopHistogram` finds the
bucket with :func:`bisect.bisect_left` (in C) and adds to one list per label set;
the last slot is the sum. Scraping builds the family a ``Histogram`` exposes
(the same name, help, labels, cumulative buckets, ``_count`` and ``_sum``), so
``/metrics`` and ``serve --workers N`` (which adds up the workers' expositions)
see no difference. A scrape from another thread copies the dict, then each list,
in one C call each (``dict.copy``, ``list.copy``), so it never sees one change
under it (see :mod:`modelport.server._loop_counter`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from math import inf
from typing import Any

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["LoopHistogram"]


class LoopHistogram(Collector):
    """A labelled histogram for one thread's updates (:meth:`observe`), collected like a
    ``Histogram`` with the same ``buckets``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...],
        buckets: Sequence[float],
    ) -> None:
        bounds = [float(bound) for bound in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if not bounds or bounds[-1] != inf:
            bounds.append(inf)  # as Histogram does: +Inf counts every observation
        if len(bounds) < 2:
            raise ValueError("Must have at least two buckets")
        self._name = name
        self._documentation = documentation
        self._labelnames = labelnames
        self._bounds = tuple(bounds)
        #: The ``le`` label of each bucket, as ``Histogram`` writes it.
        self._le = tuple(floatToGoString(bound) for bound in bounds)
        #: Each label set's counts per bucket (not cumulative), then their sum, in the
        #: order the sets first came (as ``Histogram`` lists them).
        self.series: dict[tuple[str, ...], list[Any]] = {}

    def observe(self, labels: tuple[str, ...], amount: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0] * len(self._bounds) + [0.0]
        series[-1] += amount
        if amount == amount:  # NaN: in no bucket, as Histogram.observe (it counts in the sum)
            # The first bound with amount <= bound: the bucket Histogram.observe picks.
            series[bisect_left(self._bounds, amount)] += 1

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        le = self._le
        for labels, live in self.series.copy().items():
            # One C call: at worst an observation's count without its sum yet (Histogram,
            # with a lock for each, may show the sum without the count).
            counts = live.copy()
            buckets = []
            total = 0.0
            for index, bound in enumerate(le):
                total += counts[index]
                buckets.append((bound, total))
            family.add_metric(labels, buckets, counts[-1])
        yield family
