"""``LoopCounter`` (server/_loop_counter.py) exposes what prometheus-client's
``Counter`` exposes for the same updates, byte for byte."""

from __future__ import annotations

import gc
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.exposition import generate_latest

from modelport.server._loop_counter import LoopCounter
from modelport.server.metrics import GatewayMetrics

_UPDATES = [
    (("/v1/chat/completions", "POST", "200"), 1.0),
    (("/v1/messages", "POST", "429"), 1.0),
    (("/v1/chat/completions", "POST", "200"), 1.0),
    (("/health", "GET", "200"), 1.0),
    (("/v1/messages", "POST", "429"), 2.5),
]


def test_the_exposition_is_prometheus_counters() -> None:
    disable_created_metrics()  # as GatewayMetrics does
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter(
        "x_requests", "Requests, by route.", ["route", "method", "status"], registry=theirs
    )
    loop_counter = LoopCounter("x_requests", "Requests, by route.", ("route", "method", "status"))
    ours.register(loop_counter)
    assert generate_latest(ours) == generate_latest(theirs)  # no samples yet
    for labels, amount in _UPDATES:
        counter.labels(*labels).inc(amount)
        loop_counter.inc(labels, amount)
    assert generate_latest(ours) == generate_latest(theirs)
    assert (
        ours.get_sample_value(
            "x_requests_total", {"route": "/v1/messages", "method": "POST", "status": "429"}
        )
        == 3.5
    )


def test_the_gateway_counts_requests_and_tokens_with_them() -> None:
    metrics = GatewayMetrics()
    assert isinstance(metrics.requests, LoopCounter) and isinstance(metrics.tokens, LoopCounter)
    metrics.observe_request("/v1/chat/completions", "POST", 200, 0.01)
    metrics.observe_request("/v1/chat/completions", "POST", 200, 0.02)
    text = metrics.render().decode()
    sample = 'method="POST",route="/v1/chat/completions",status="200"'
    assert f"modelport_gateway_requests_total{{{sample}}} 2.0" in text


def test_a_scrape_from_another_thread_sees_a_whole_copy() -> None:
    counter = LoopCounter("y", "y", ("n",))
    registry = CollectorRegistry()
    registry.register(counter)
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
            counter.inc((str(n % 5_000),))
    finally:
        stop.set()
        thread.join()
    assert not errors


def test_a_collection_mid_scrape_that_lets_the_loop_count_does_not_break_it() -> None:
    # Deterministically what the threaded test above caught once in a full run: a
    # garbage collection during the scrape runs Python code (here a gc callback standing
    # in for the event loop's thread, which a finalizer can hand the GIL to), and the
    # dict gains a label set while the scrape is reading it.
    counter = LoopCounter("z", "z", ("n",))
    for n in range(200):
        counter.inc((str(n),))
    added = iter(range(1_000, 100_000))

    def count_meanwhile(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            counter.inc((str(next(added)),))

    thresholds = gc.get_threshold()
    gc.callbacks.append(count_meanwhile)
    gc.set_threshold(1)
    try:
        families = list(counter.collect())
    finally:
        gc.set_threshold(*thresholds)
        gc.callbacks.remove(count_meanwhile)
    assert len(families[0].samples) >= 200


def test_the_gateways_token_counts_are_a_prometheus_counters() -> None:
    # observe_usage adds to the counter's dict straight-line: the exposition is what a
    # Counter fed each non-zero kind, in the order input, output, cache reads, cache
    # writes, reasoning, shows (past MAX_MODEL_LABELS models, under "other").
    from modelport.server.metrics import _TOKEN_KINDS, MAX_MODEL_LABELS, OTHER_MODELS
    from modelport.types import Usage

    metrics = GatewayMetrics()
    theirs = CollectorRegistry()
    counter = Counter(
        "modelport_gateway_tokens",
        "Tokens reported by upstreams, by model address and kind.",
        ["model", "kind"],
        registry=theirs,
    )
    ours = CollectorRegistry()
    ours.register(metrics.tokens)
    usages = [
        Usage(output_tokens=5),
        Usage(input_tokens=10, output_tokens=2, cache_read_tokens=4, reasoning_tokens=1),
        Usage(input_tokens=7, cache_write_tokens=3),
        Usage(),
    ]
    labelled: set[str] = set()
    for n in range(MAX_MODEL_LABELS + 20):
        model = f"c/m{n % (MAX_MODEL_LABELS + 7)}"  # 7 past the cap, then the first again
        usage = usages[n % len(usages)]
        metrics.observe_usage(model, usage)
        if model in labelled or len(labelled) < MAX_MODEL_LABELS:
            labelled.add(model)
        label = model if model in labelled else OTHER_MODELS
        for kind in _TOKEN_KINDS:
            value = getattr(usage, f"{kind}_tokens")
            if value:
                counter.labels(label, kind).inc(value)
    assert generate_latest(ours) == generate_latest(theirs)
