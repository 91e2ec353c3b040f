"""``python -m bench`` (``make bench``): the gateway against its upstream, side by side.

1. start the fake upstream (process 1) and ``modelport serve`` (process 2),
   timing the gateway from spawn to its first ``200`` on ``GET /health``;
2. read its idle memory; warm both paths up;
3. for each scenario × concurrency, interleaved wrk pairs (direct, gateway);
4. time to first byte with the asyncio client, interleaved the same way;
5. 1,000 held streams open through the gateway: its memory then;
6. print the table, the targets and the ratios to the other gateways.

A benchmark, not a test: nothing here fails on a slow number.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench.load import ensure_wrk
from bench.procs import Process, raise_fd_limit, start_gateway, start_upstream, stop
from bench.report import cell_figures, render, summarise
from bench.run import (
    Cell,
    OpenStreams,
    Targets,
    measure_cell,
    measure_open_streams,
    measure_ttfb_cell,
    warm_up,
)
from bench.scenarios import CONCURRENCY, SCENARIOS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark the gateway against a fake upstream."
    )
    parser.add_argument("--rounds", type=int, default=3, help="wrk pairs per cell (3)")
    parser.add_argument("--seconds", type=int, default=3, help="seconds per wrk run (3)")
    parser.add_argument("--ttfb-rounds", type=int, default=2, help="TTFB pairs per cell (2)")
    parser.add_argument("--ttfb-seconds", type=float, default=1.0, help="seconds per TTFB run (1)")
    parser.add_argument("--streams", type=int, default=1000, help="held streams to open (1000)")
    parser.add_argument(
        "--quick", action="store_true", help="one 1-second round per cell: a smoke run"
    )
    parser.add_argument(
        "--gateway-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `modelport serve` argument (repeatable), e.g. --gateway-arg=--no-access-log",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--versus",
        action="store_true",
        help="instead: modelport (1 and 2 workers) beside TensorZero's gateway, measured in "
        "the same rounds (python -m bench.versus --help; needs the bench extra)",
    )
    return parser


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _start(folder: Path, gateway_args: list[str]) -> tuple[Process, Process, list[float]]:
    """The upstream and the gateway; the gateway's start-up times over three starts.

    Start-up time swings with the machine's load, so two throw-away starts come
    before the one that serves the benchmark, and the report takes the median.
    """
    upstream = start_upstream(folder)
    ready: list[float] = []
    try:
        for _ in range(2):
            trial = start_gateway(upstream.port, folder, gateway_args)
            ready.append(trial.ready_s)
            stop(trial)
        gateway = start_gateway(upstream.port, folder, gateway_args)
    except BaseException:
        stop(upstream)
        raise
    ready.append(gateway.ready_s)
    return upstream, gateway, ready


def _measure(targets: Targets, args: argparse.Namespace) -> list[Cell]:
    """Every cell's wrk pairs, then every cell's TTFB rounds."""
    warm_up(targets, SCENARIOS)
    cells: list[Cell] = []
    for scenario in SCENARIOS:
        for connections in CONCURRENCY:
            _progress(f"  {scenario.name}, c={connections}")
            cells.append(
                measure_cell(
                    targets, scenario, connections, rounds=args.rounds, seconds=args.seconds
                )
            )
    _progress("  time to first byte")
    for cell in cells:
        measure_ttfb_cell(cell, targets, rounds=args.ttfb_rounds, seconds=args.ttfb_seconds)
    return cells


def main(argv: list[str] | None = None) -> None:
    """Run the whole benchmark and print the report (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    if "--versus" in argv:
        from bench.versus import main as versus

        versus([arg for arg in argv if arg != "--versus"])
        return
    args = _parser().parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.ttfb_rounds, args.ttfb_seconds = 1, 1, 1, 0.5
    wrk = ensure_wrk()
    raise_fd_limit()
    folder = Path(tempfile.mkdtemp(prefix="modelport-bench-"))
    began = time.perf_counter()
    upstream = gateway = None
    try:
        upstream, gateway, ready = _start(folder, args.gateway_arg)
        ready_s = statistics.median(ready)
        rss_idle, _ = gateway.memory_mb()
        _progress(
            f"gateway ready {ready_s:.2f} s after spawn (median of "
            f"{', '.join(f'{r:.2f}' for r in ready)}), idle RSS {rss_idle:.0f} MB; "
            f"upstream on :{upstream.port}, gateway on :{gateway.port}"
        )
        targets = Targets(wrk, upstream, gateway, folder)
        cells = _measure(targets, args)
        _, peak_load = gateway.memory_mb()
        open_streams: OpenStreams | None = None
        if args.streams:
            _progress(f"  {args.streams:,} open streams")
            open_streams = measure_open_streams(targets, args.streams)
        _, peak = gateway.memory_mb()
        summary = summarise(
            cells,
            ready_s=ready_s,
            rss_idle_mb=rss_idle,
            open_streams=open_streams,
            peak_mb=peak_load,
        )
        print(render(cells, summary))
        print(
            f"Peak RSS (VmHWM) {peak_load:.0f} MB under load, {peak:.0f} MB including the "
            f"open streams; whole run {time.perf_counter() - began:.0f} s."
        )
        if args.json:
            results = {
                "summary": asdict(summary),
                "ready_s": ready,
                "cells": [cell_figures(c) for c in cells],
                "peak_mb": peak,
                "gateway_args": args.gateway_arg,
            }
            args.json.write_text(json.dumps(results, indent=1, default=str))
    finally:
        stop(gateway)
        stop(upstream)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
