"""Reading a running gateway's ``/metrics``, as a Prometheus scraper would."""

from __future__ import annotations

import time

import httpx

from tests.server.conftest import Gateway

_IN_FLIGHT = "modelport_gateway_in_flight_requests"


def scrape_metrics(gateway: Gateway, *, at_rest: bool = True) -> dict[str, float]:
    """Every sample of ``/metrics``, by name with its labels.

    A request is counted just after its last byte went out, so a client can read
    its answer before the gateway counted it (a loaded machine widens that gap).
    ``at_rest`` scrapes until the scrape is the one request in flight: every
    earlier request has been counted.
    """
    deadline = time.monotonic() + 10
    while True:
        samples = _scrape(gateway)
        if not at_rest or samples[_IN_FLIGHT] == 1:
            return samples
        assert time.monotonic() < deadline, f"{samples[_IN_FLIGHT]:g} requests still in flight"
        time.sleep(0.01)


def _scrape(gateway: Gateway) -> dict[str, float]:
    response = httpx.get(f"{gateway.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples
