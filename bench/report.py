"""The results table, the figures the issue sets targets for, and the ratios.

Every number is a median over interleaved rounds; see ``bench/README.md``
for why the machine's noise still shows through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.run import Cell, OpenStreams

__all__ = ["OTHER_GATEWAYS", "Summary", "cell_figures", "render", "summarise"]

#: Measured on the same 2-core machine with the same method (issue 3).
#: (name, non-streaming req/s, added p50 ms at c=1, streamed 20-chunk resp/s, RSS MB,
#: start-up seconds); None where the issue gives no figure.
OTHER_GATEWAYS: tuple[tuple[str, float, float, float | None, float, float | None], ...] = (
    ("LiteLLM proxy", 160, 5.9, 58, 390, 2.5),
    ("Portkey (Node)", 1_900, 0.48, None, 200, None),
    ("TensorZero (Rust)", 14_000, 0.18, None, 70, None),
)


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures the issue sets targets for."""

    plain_rps_c64: float
    stream20_rps_c64: float
    added_p50_ms_c1: float
    added_us_per_chunk: float
    cpu_us_per_chunk: float
    ready_s: float
    rss_idle_mb: float
    rss_open_mb: float
    open_streams: OpenStreams | None
    peak_mb: float


def _cell(cells: Sequence[Cell], name: str, connections: int) -> Cell | None:
    for cell in cells:
        if cell.scenario.name == name and cell.connections == connections:
            return cell
    return None


def _per_chunk(cells: Sequence[Cell]) -> tuple[float, float]:
    """(added latency µs per chunk at c=1, gateway CPU µs per chunk at c=64).

    Both are differences between the 200- and 20-chunk streams over the 180
    extra chunks, so the per-request costs (routing, headers, the upstream
    round trip) cancel out. The latency figure is what a client waits; the
    CPU figure is steadier on a busy machine (thousands of responses per
    sample instead of a p50 of a few hundred microseconds).
    """
    short, long = _cell(cells, "stream 20 chunks", 1), _cell(cells, "stream 200 chunks", 1)
    latency = math.nan
    if short and long:
        latency = (long.added_p50_ms - short.added_p50_ms) * 1e3 / 180
    short, long = _cell(cells, "stream 20 chunks", 64), _cell(cells, "stream 200 chunks", 64)
    cpu = math.nan
    if short and long:
        cpu = (long.gateway_cpu_us - short.gateway_cpu_us) / 180
    return latency, cpu


def summarise(
    cells: Sequence[Cell],
    *,
    ready_s: float,
    rss_idle_mb: float,
    open_streams: OpenStreams | None,
    peak_mb: float,
) -> Summary:
    plain = _cell(cells, "non-streaming", 64)
    stream20 = _cell(cells, "stream 20 chunks", 64)
    single = _cell(cells, "non-streaming", 1)
    latency, cpu = _per_chunk(cells)
    return Summary(
        plain_rps_c64=plain.gateway_rps if plain else math.nan,
        stream20_rps_c64=stream20.gateway_rps if stream20 else math.nan,
        added_p50_ms_c1=single.added_p50_ms if single else math.nan,
        added_us_per_chunk=latency,
        cpu_us_per_chunk=cpu,
        ready_s=ready_s,
        rss_idle_mb=rss_idle_mb,
        rss_open_mb=open_streams.rss_mb if open_streams else math.nan,
        open_streams=open_streams,
        peak_mb=peak_mb,
    )


def cell_figures(cell: Cell) -> dict[str, object]:
    """One cell's medians, for ``--json``."""
    return {
        "scenario": cell.scenario.name,
        "connections": cell.connections,
        "rounds": len(cell.pairs),
        "direct_rps": cell.direct_rps,
        "gateway_rps": cell.gateway_rps,
        "direct_p50_ms": cell.median(lambda p: p.direct.p50_ms),
        "gateway_p50_ms": cell.median(lambda p: p.gateway.p50_ms),
        "direct_p99_ms": cell.median(lambda p: p.direct.p99_ms),
        "gateway_p99_ms": cell.median(lambda p: p.gateway.p99_ms),
        "added_p50_ms": cell.added_p50_ms,
        "direct_ttfb_ms": cell.ttfb_ms(False),
        "gateway_ttfb_ms": cell.ttfb_ms(True),
        "gateway_cpu_us_per_request": cell.gateway_cpu_us,
        "gateway_core_share": cell.gateway_cpu_share,
        "upstream_core_share": cell.upstream_cpu_share,
        "errors": cell.errors,
    }


def _fmt(value: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def _table(cells: Sequence[Cell]) -> list[str]:
    head = (
        f"{'scenario':<18}{'c':>3} | {'req/s direct':>12} {'gateway':>8} {'ratio':>6} | "
        f"{'p50 ms d / gw':>15} {'p99 ms d / gw':>15} {'added p50':>9} | "
        f"{'TTFB ms d / gw':>15} | {'gw CPU':>8} {'cap/core':>8} {'gw core':>7} "
        f"{'up core':>7} {'err':>4}"
    )
    lines = [head, "-" * len(head)]
    for cell in cells:
        ratio = cell.gateway_rps / cell.direct_rps if cell.direct_rps else math.nan
        capacity = 1e6 / cell.gateway_cpu_us if cell.gateway_cpu_us else math.nan
        p50 = (
            f"{_fmt(cell.median(lambda p: p.direct.p50_ms), 2)} / "
            f"{_fmt(cell.median(lambda p: p.gateway.p50_ms), 2)}"
        )
        p99 = (
            f"{_fmt(cell.median(lambda p: p.direct.p99_ms), 2)} / "
            f"{_fmt(cell.median(lambda p: p.gateway.p99_ms), 2)}"
        )
        ttfb = f"{_fmt(cell.ttfb_ms(False), 2)} / {_fmt(cell.ttfb_ms(True), 2)}"
        lines.append(
            f"{cell.scenario.name:<18}{cell.connections:>3} | "
            f"{_fmt(cell.direct_rps):>12} {_fmt(cell.gateway_rps):>8} {_fmt(ratio, 3):>6} | "
            f"{p50:>15} {p99:>15} {_fmt(cell.added_p50_ms, 2):>9} | {ttfb:>15} | "
            f"{_fmt(cell.gateway_cpu_us):>5} µs {_fmt(capacity):>8} "
            f"{_fmt(cell.gateway_cpu_share, 2):>7} "
            f"{_fmt(cell.upstream_cpu_share, 2):>7} {cell.errors:>4}"
        )
    return lines


def _all_open(streams: OpenStreams | None) -> bool:
    return streams is not None and streams.first_byte == streams.count


def _check(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _targets(s: Summary) -> list[str]:
    rows = [
        ("non-streaming req/s, c=64", _fmt(s.plain_rps_c64), ">= 3,000", s.plain_rps_c64 >= 3000),
        (
            "streamed 20-chunk resp/s, c=64",
            _fmt(s.stream20_rps_c64),
            ">= 1,000",
            s.stream20_rps_c64 >= 1000,
        ),
        (
            "added p50 at c=1 (non-streaming)",
            f"{_fmt(s.added_p50_ms_c1, 2)} ms",
            "< 0.5 ms",
            s.added_p50_ms_c1 < 0.5,
        ),
        (
            "added per streamed chunk (latency, c=1)",
            f"{_fmt(s.added_us_per_chunk, 1)} µs",
            "< 20 µs",
            s.added_us_per_chunk < 20,
        ),
        (
            "gateway CPU per streamed chunk (c=64)",
            f"{_fmt(s.cpu_us_per_chunk, 1)} µs",
            "< 20 µs",
            s.cpu_us_per_chunk < 20,
        ),
        ("RSS idle", f"{_fmt(s.rss_idle_mb)} MB", "< 80 MB", s.rss_idle_mb < 80),
        (
            f"RSS with {s.open_streams.count if s.open_streams else 0:,} open streams",
            f"{_fmt(s.rss_open_mb)} MB",
            "< 200 MB",
            # Memory with fewer streams actually flowing proves nothing.
            s.rss_open_mb < 200 and _all_open(s.open_streams),
        ),
        ("ready after start", f"{_fmt(s.ready_s, 2)} s", "< 1 s", s.ready_s < 1),
    ]
    lines = [f"{'figure':<42}{'measured':>12}  {'target':<10} status"]
    for name, value, target, ok in rows:
        lines.append(f"{name:<42}{value:>12}  {target:<10} {_check(ok)}")
    return lines


def _others(s: Summary) -> list[str]:
    lines = [
        f"{'gateway':<20}{'req/s':>8}{'x':>7}  {'added p50':>10}  "
        f"{'20-chunk/s':>10}{'x':>7}  {'RSS MB':>7}  {'start':>7}"
    ]
    lines.append(
        f"{'modelport':<20}{_fmt(s.plain_rps_c64):>8}{'':>7}  "
        f"{_fmt(s.added_p50_ms_c1, 2) + ' ms':>10}  {_fmt(s.stream20_rps_c64):>10}{'':>7}  "
        f"{_fmt(s.peak_mb):>7}  {_fmt(s.ready_s, 2) + ' s':>7}"
    )
    for name, rps, added, streams, rss, start in OTHER_GATEWAYS:
        rps_x = f"{s.plain_rps_c64 / rps:.2f}x"
        streams_text = _fmt(streams) if streams else "-"
        streams_x = f"{s.stream20_rps_c64 / streams:.1f}x" if streams else ""
        lines.append(
            f"{name:<20}{_fmt(rps):>8}{rps_x:>7}  {f'{added:.2f} ms':>10}  "
            f"{streams_text:>10}{streams_x:>7}  {_fmt(rss):>7}  "
            f"{(f'{start:.1f} s' if start else '-'):>7}"
        )
    lines.append("x: modelport's figure divided by theirs. modelport's RSS is its peak (VmHWM)")
    lines.append(
        "under load; its start is spawn to a 200 on /health, LiteLLM's is its import alone."
    )
    return lines


def render(cells: Sequence[Cell], summary: Summary) -> str:
    """The whole report as text."""
    out = ["", "Direct to the fake upstream (d) versus through the gateway (gw)", ""]
    out += _table(cells)
    out += [
        "",
        "req/s, p50, p99: wrk, response complete; TTFB: asyncio client, first response byte.",
        "gw CPU: gateway CPU time per request; cap/core: 1 s / gw CPU, the req/s one full core",
        "would give it; gw core / up core: CPU seconds per wall second of the gateway and of the",
        "fake upstream during the gateway runs (1.00 = a full core; under 1.00 the gateway was",
        "waiting for a core: the machine is shared).",
        "Medians over interleaved rounds on a shared 2-core machine: expect ±10-20% noise.",
        "",
    ]
    if summary.open_streams is not None:
        o = summary.open_streams
        out.append(
            f"Open streams: {o.connected:,} of {o.count:,} connected, {o.first_byte:,} had their "
            f"first byte within {o.seconds:.1f} s; RSS {o.rss_mb:.0f} MB open, "
            f"{o.rss_after_mb:.0f} MB after they closed."
        )
        out.append("")
    out += _targets(summary)
    out += ["", *_others(summary), ""]
    return "\n".join(out)
