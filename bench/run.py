"""The measurement phases: interleaved throughput pairs, TTFB rounds, open streams.

Every figure is a pair taken back to back — direct to the fake upstream, then
through the gateway to the same upstream — and the order flips every round
(ABBA), so drift from other work on the machine falls on both sides alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from bench.client import TtfbResult, hold_streams, measure_ttfb, post_request
from bench.load import WrkResult, run_wrk, write_script
from bench.procs import Process
from bench.scenarios import Scenario, hold_body

__all__ = [
    "Cell",
    "OpenStreams",
    "Pair",
    "Targets",
    "measure_cell",
    "measure_open_streams",
    "measure_ttfb_cell",
    "warm_up",
]

_PATH = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class Targets:
    """Where load goes: the upstream direct and the gateway, and the processes to watch."""

    wrk: str
    upstream: Process
    gateway: Process
    folder: Path

    def url(self, via_gateway: bool) -> str:
        port = self.gateway.port if via_gateway else self.upstream.port
        return f"http://127.0.0.1:{port}{_PATH}"


@dataclass(frozen=True, slots=True)
class Pair:
    """One round of one cell: both wrk runs, with CPU seconds spent during each."""

    direct: WrkResult
    gateway: WrkResult
    gateway_cpu: float
    upstream_cpu_direct: float
    upstream_cpu_gateway: float


@dataclass
class Cell:
    """One scenario at one concurrency: every round's pair and TTFB samples."""

    scenario: Scenario
    connections: int
    pairs: list[Pair] = field(default_factory=list)
    ttfb_direct: list[TtfbResult] = field(default_factory=list)
    ttfb_gateway: list[TtfbResult] = field(default_factory=list)

    def median(self, pick: Callable[[Pair], float]) -> float:
        values = [pick(p) for p in self.pairs]
        return statistics.median(values) if values else float("nan")

    @property
    def direct_rps(self) -> float:
        return self.median(lambda p: p.direct.rps)

    @property
    def gateway_rps(self) -> float:
        return self.median(lambda p: p.gateway.rps)

    @property
    def added_p50_ms(self) -> float:
        """Median over rounds of (gateway p50 − direct p50): each pair ran back to back."""
        return self.median(lambda p: p.gateway.p50_ms - p.direct.p50_ms)

    @property
    def gateway_cpu_us(self) -> float:
        """Gateway CPU per request, in µs."""
        return self.median(lambda p: 1e6 * p.gateway_cpu / max(1, p.gateway.requests))

    @property
    def gateway_cpu_share(self) -> float:
        """Gateway CPU seconds per wall second while loaded (1.0 = one core full)."""
        return self.median(lambda p: p.gateway_cpu / p.gateway.seconds)

    @property
    def upstream_cpu_share(self) -> float:
        """The upstream's CPU share during the gateway runs (low = never the bottleneck)."""
        return self.median(lambda p: p.upstream_cpu_gateway / p.gateway.seconds)

    @property
    def errors(self) -> int:
        return sum(p.direct.errors + p.gateway.errors for p in self.pairs)

    def ttfb_ms(self, via_gateway: bool) -> float:
        rounds = self.ttfb_gateway if via_gateway else self.ttfb_direct
        values = [r.ttfb_p50_ms() for r in rounds if r.ttfb]
        return statistics.median(values) if values else float("nan")


def _script(targets: Targets, scenario: Scenario, via_gateway: bool) -> Path:
    body = scenario.body("bench/" if via_gateway else "")
    return write_script(body, targets.folder)


def warm_up(targets: Targets, scenarios: tuple[Scenario, ...], seconds: float = 1) -> None:
    """One short run per scenario each way: pooled connections, lazy imports, caches."""
    for scenario in scenarios:
        for via_gateway in (False, True):
            run_wrk(
                targets.wrk,
                targets.url(via_gateway),
                _script(targets, scenario, via_gateway),
                connections=16,
                seconds=seconds,
            )


def _wrk_with_cpu(
    targets: Targets, scenario: Scenario, via_gateway: bool, connections: int, seconds: float
) -> tuple[WrkResult, float, float]:
    gateway, upstream = targets.gateway, targets.upstream
    g0, u0 = gateway.cpu_seconds(), upstream.cpu_seconds()
    result = run_wrk(
        targets.wrk,
        targets.url(via_gateway),
        _script(targets, scenario, via_gateway),
        connections=connections,
        seconds=seconds,
    )
    return result, gateway.cpu_seconds() - g0, upstream.cpu_seconds() - u0


def measure_cell(
    targets: Targets, scenario: Scenario, connections: int, *, rounds: int, seconds: float
) -> Cell:
    """``rounds`` interleaved pairs of wrk runs, the order flipped every round."""
    cell = Cell(scenario, connections)
    for index in range(rounds):
        order = (False, True) if index % 2 == 0 else (True, False)
        runs = {via: _wrk_with_cpu(targets, scenario, via, connections, seconds) for via in order}
        (direct, _, up_direct), (gateway, gw_cpu, up_gateway) = runs[False], runs[True]
        cell.pairs.append(Pair(direct, gateway, gw_cpu, up_direct, up_gateway))
    return cell


def measure_ttfb_cell(cell: Cell, targets: Targets, *, rounds: int, seconds: float) -> None:
    """Add TTFB rounds to ``cell`` with the asyncio client, interleaved like the wrk pairs."""
    for index in range(rounds):
        order = (False, True) if index % 2 == 0 else (True, False)
        for via_gateway in order:
            process = targets.gateway if via_gateway else targets.upstream
            body = cell.scenario.body("bench/" if via_gateway else "")
            request = post_request("127.0.0.1", process.port, _PATH, body)
            result = uvloop.run(
                measure_ttfb(
                    "127.0.0.1",
                    process.port,
                    request,
                    connections=cell.connections,
                    seconds=seconds,
                )
            )
            (cell.ttfb_gateway if via_gateway else cell.ttfb_direct).append(result)


@dataclass(frozen=True, slots=True)
class OpenStreams:
    """Memory with ``count`` client streams open through the gateway."""

    count: int
    connected: int
    first_byte: int
    rss_mb: float
    hwm_mb: float
    rss_after_mb: float
    seconds: float


def measure_open_streams(targets: Targets, count: int, wait: float = 10.0) -> OpenStreams:
    """Open ``count`` held streams through the gateway, sample its memory, drop them."""
    gateway = targets.gateway
    samples: list[tuple[float, float]] = []
    body = hold_body("bench/", 120)
    request = post_request("127.0.0.1", gateway.port, _PATH, body)
    started = time.perf_counter()
    connected, first = uvloop.run(
        hold_streams(
            "127.0.0.1",
            gateway.port,
            request,
            count=count,
            wait=wait,
            on_open=lambda: samples.append(gateway.memory_mb()),
        )
    )
    elapsed = time.perf_counter() - started
    time.sleep(1.0)  # let the gateway let go of what the dropped streams held
    rss_after, _ = gateway.memory_mb()
    rss, hwm = samples[0] if samples else (float("nan"), float("nan"))
    return OpenStreams(count, connected, first, rss, hwm, rss_after, elapsed)
