"""``LoopHistogram`` (server/_loop_histogram.py) exposes what prometheus-client's
``Histogram`` exposes for the same observations, byte for byte."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest

from modelport.server._loop_histogram import LoopHistogram
from modelport.server._metrics_shared import _Summed
from modelport.server.metrics import _LATENCY_BUCKETS, GatewayMetrics

# On a bound, just above and below one, past the last, zero, and sums that round.
_OBSERVATIONS = [
    (("/v1/chat/completions",), 0.001),
    (("/v1/chat/completions",), 0.0010000001),
    (("/v1/messages",), 0.0),
    (("/v1/chat/completions",), 0.1 + 0.2),
    (("/v1/messages",), 301.0),
    (("/v1/messages",), 0.02499999),
    (("/health",), 60.0),
    (("/v1/chat/completions",), 1e-9),
]


def _pair(name: str = "x_seconds") -> tuple[CollectorRegistry, Histogram, CollectorRegistry, Any]:
    disable_created_metrics()  # as GatewayMetrics does
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram(
        name, "Seconds, by route.", ["route"], buckets=_LATENCY_BUCKETS, registry=theirs
    )
    loop_histogram = LoopHistogram(name, "Seconds, by route.", ("route",), _LATENCY_BUCKETS)
    ours.register(loop_histogram)
    return theirs, histogram, ours, loop_histogram


def test_the_exposition_is_a_prometheus_histogram() -> None:
    theirs, histogram, ours, loop_histogram = _pair()
    assert generate_latest(ours) == generate_latest(theirs)  # no samples yet
    for labels, seconds in _OBSERVATIONS:
        histogram.labels(*labels).observe(seconds)
        loop_histogram.observe(labels, seconds)
    assert generate_latest(ours) == generate_latest(theirs)
    assert ours.get_sample_value("x_seconds_count", {"route": "/v1/messages"}) == 3.0
    assert (
        ours.get_sample_value("x_seconds_bucket", {"route": "/v1/chat/completions", "le": "0.001"})
        == 2.0
    )


def test_many_random_observations_expose_the_same_bytes() -> None:
    theirs, histogram, ours, loop_histogram = _pair()
    draw = random.Random(15)
    routes = [f"/r{n}" for n in range(7)]
    for _ in range(5_000):
        route = draw.choice(routes)
        seconds = draw.choice(
            [draw.expovariate(20.0), draw.choice(_LATENCY_BUCKETS), draw.uniform(0, 400)]
        )
        histogram.labels(route).observe(seconds)
        loop_histogram.observe((route,), seconds)
    assert generate_latest(ours) == generate_latest(theirs)


def test_odd_values_land_where_histogram_puts_them() -> None:
    # A negative value in the first bucket, NaN in none (but in the sum), infinity in +Inf.
    theirs, histogram, ours, loop_histogram = _pair()
    for seconds in (-1.0, float("nan"), float("inf"), 0.5):
        histogram.labels("/odd").observe(seconds)
        loop_histogram.observe(("/odd",), seconds)
    assert generate_latest(ours) == generate_latest(theirs)


def test_buckets_without_inf_get_it_and_unsorted_ones_are_refused() -> None:
    histogram = LoopHistogram("h", "h", (), [1, 2])
    histogram.observe((), 5)
    registry = CollectorRegistry()
    registry.register(histogram)
    assert registry.get_sample_value("h_bucket", {"le": "+Inf"}) == 1.0
    try:
        LoopHistogram("h", "h", (), [2, 1])
    except ValueError:
        pass
    else:
        raise AssertionError("unsorted buckets were accepted")


def test_workers_add_up_the_histograms_as_they_did(tmp_path: Any) -> None:
    # serve --workers N sums the expositions the workers write: two workers' files of
    # LoopHistograms sum to what one Histogram fed every observation exposes.
    theirs, histogram, _, _ = _pair()
    for worker, share in enumerate((_OBSERVATIONS[:5], _OBSERVATIONS[5:])):
        _, _, ours, loop_histogram = _pair()
        for labels, seconds in share:
            loop_histogram.observe(labels, seconds)
        (tmp_path / f"{worker + 4_000_000}.prom").write_bytes(generate_latest(ours))
    for labels, seconds in _OBSERVATIONS:
        histogram.labels(*labels).observe(seconds)
    summed = CollectorRegistry(auto_describe=False)
    summed.register(_Summed(tmp_path))
    for route in ("/v1/chat/completions", "/v1/messages", "/health"):
        for suffix, labels in (
            ("_count", {"route": route}),
            ("_sum", {"route": route}),
            ("_bucket", {"route": route, "le": "0.025"}),
            ("_bucket", {"route": route, "le": "+Inf"}),
        ):
            assert summed.get_sample_value("x_seconds" + suffix, labels) == pytest.approx(
                theirs.get_sample_value("x_seconds" + suffix, labels)
            ), (route, suffix)


def test_the_gateway_times_requests_and_first_tokens_with_them() -> None:
    metrics = GatewayMetrics()
    assert isinstance(metrics.latency, LoopHistogram) and isinstance(metrics.ttft, LoopHistogram)
    metrics.observe_request("/v1/chat/completions", "POST", 200, 0.01)
    metrics.observe_request("/v1/chat/completions", "POST", 200, 0.02)
    metrics.observe_ttft("local/m", 0.003)
    text = metrics.render().decode()
    assert (
        'modelport_gateway_request_duration_seconds_bucket{le="0.025",'
        'route="/v1/chat/completions"} 2.0' in text
    )
    assert 'modelport_gateway_time_to_first_token_seconds_count{model="local/m"} 1.0' in text


def test_a_scrape_from_another_thread_sees_whole_copies() -> None:
    histogram = LoopHistogram("y", "y", ("n",), _LATENCY_BUCKETS)
    registry = CollectorRegistry()
    registry.register(histogram)
    stop = threading.Event()
    errors: list[BaseException] = []

    def scrape() -> None:
        while not stop.is_set():
            try:
                generate_latest(registry)
            except BaseException as exc:  # a dict changed during iteration would land here
                errors.append(exc)
                return

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        for n in range(20_000):
            histogram.observe((str(n % 3_000),), n / 1000)
    finally:
        stop.set()
        thread.join()
    assert not errors
