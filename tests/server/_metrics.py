"""Reading a running gateway's ``/metrics``, as a Prometheus scraper would."""

from __future__ import annotations

import time

import httpx

from tests.server.conftest import Gateway


def scrape_metrics(gateway: Gateway) -> dict[str, float]:
    """Every sample of ``/metrics``, by name with its labels."""
    time.sleep(0.05)  # requests are counted just after their last byte went out
    response = httpx.get(f"{gateway.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples
