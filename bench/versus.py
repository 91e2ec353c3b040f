"""``python -m bench.versus`` (``python -m bench --versus``): modelport beside TensorZero, one run.

The reference measured, not quoted: TensorZero's Rust gateway (its embedded
gateway from PyPI ``tensorzero``, the ``bench`` extra; ``bench/tensorzero_gateway.py``)
runs in front of the same fake upstream as ``modelport serve`` with one
worker and with ``--workers N``, and every cell's rounds visit the four
targets (direct, modelport, modelport ×N, TensorZero) in an order that
rotates every round and reverses every other, so drift on the machine lands
on all of them. Each run is wrk's, as in ``make bench``; CPU per request is
the server's (all its processes and threads) from ``/proc``; every figure is
a median over rounds, and the ratios are of those medians.

``--tensorzero-nodelay`` adds TensorZero once more with ``TCP_NODELAY`` set on
the sockets it accepts (``bench/nodelay.c``, an ``LD_PRELOAD`` shim built
with ``cc``): its streams otherwise stall on Nagle's algorithm.

Also printed: each server's idle RSS, ``import modelport`` time, and the load
average at the start and end (the 2-core machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import WrkResult, ensure_wrk, run_wrk, write_script
from bench.procs import _ROOT, Process, raise_fd_limit, start_gateway, start_upstream, stop
from bench.scenarios import SCENARIOS, Scenario
from bench.tensorzero_gateway import MODEL_PREFIX, PATH

__all__ = ["main"]

_OPENAI_PATH = "/v1/chat/completions"
#: The cells run by default: the issue's three figures.
_CELLS = (("non-streaming", 1), ("non-streaming", 64), ("stream 20 chunks", 64))


@dataclass
class Target:
    """One column: where wrk sends its load, and the processes whose CPU it costs."""

    name: str
    process: Process
    path: str
    prefix: str
    direct: bool = False

    def url(self) -> str:
        return f"http://127.0.0.1:{self.process.port}{self.path}"

    def cpu(self) -> float:
        return self.process.tree_cpu_seconds()


@dataclass
class Run:
    result: WrkResult
    cpu_s: float

    @property
    def cpu_us(self) -> float:
        return 1e6 * self.cpu_s / max(1, self.result.requests)


@dataclass
class Cell:
    scenario: Scenario
    connections: int
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, name: str, pick: str) -> float:
        values = [_pick(run, pick) for run in self.runs.get(name, [])]
        return statistics.median(values) if values else float("nan")

    def added_p50_ms(self, name: str, direct: str) -> float:
        pairs = zip(self.runs[name], self.runs[direct], strict=True)
        return statistics.median(a.result.p50_ms - d.result.p50_ms for a, d in pairs)


def _pick(run: Run, what: str) -> float:
    if what == "rps":
        return run.result.rps
    if what == "p50":
        return run.result.p50_ms
    if what == "cpu_us":
        return run.cpu_us
    if what == "cores":
        return run.cpu_s / run.result.seconds
    raise ValueError(what)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.versus",
        description="modelport (1 and N workers) beside TensorZero's gateway, one interleaved run.",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell (3)")
    parser.add_argument("--seconds", type=int, default=3, help="seconds per wrk run (3)")
    parser.add_argument("--workers", type=int, default=2, help="modelport's second column (2)")
    parser.add_argument(
        "--all-cells", action="store_true", help="every scenario at 1, 16 and 64 connections"
    )
    parser.add_argument(
        "--tensorzero-nodelay",
        action="store_true",
        help="also TensorZero with TCP_NODELAY on its accepted sockets (needs cc)",
    )
    parser.add_argument(
        "--gateway-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `modelport serve` argument for both modelport columns (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    return parser


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def start_tensorzero(upstream_port: int, folder: Path, preload: Path | None = None) -> Process:
    """``python -m bench.tensorzero_gateway`` in its own process; returns once it listens."""
    log = folder / f"tensorzero-{'nodelay' if preload else 'plain'}.log"
    env = dict(os.environ)
    if preload is not None:
        env["LD_PRELOAD"] = str(preload)
    port_file = log.with_suffix(".port")
    started = time.perf_counter()
    popen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.tensorzero_gateway",
            "--upstream-port",
            str(upstream_port),
            "--port-file",
            str(port_file),
        ],
        cwd=_ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = started + 60
    while not port_file.exists():
        if popen.poll() is not None or time.perf_counter() > deadline:
            stop(Process(popen, 0, log))
            raise SystemExit(f"TensorZero's gateway did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)
    process = Process(popen, int(port_file.read_text()), log)
    process.ready_s = time.perf_counter() - started
    return process


def _build_nodelay(folder: Path) -> Path:
    library = folder / "nodelay.so"
    source = Path(__file__).with_name("nodelay.c")
    command = ["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"]
    subprocess.run(command, check=True)
    return library


def import_time_ms(repeat: int = 5) -> float:
    """Median wall time of ``import modelport`` in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); import modelport; print(time.perf_counter() - t)"
    times = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
        for _ in range(repeat)
    ]
    return 1e3 * statistics.median(times)


def _order(targets: list[Target], index: int) -> list[Target]:
    shift = index % len(targets)
    order = targets[shift:] + targets[:shift]
    return order[::-1] if index % 2 else order


def measure(
    wrk: str, targets: list[Target], cell: Cell, folder: Path, *, rounds: int, seconds: int
) -> None:
    """``rounds`` rounds of one wrk run per target, in a rotating order."""
    scripts = {t.name: write_script(cell.scenario.body(t.prefix), folder) for t in targets}
    for index in range(rounds):
        for target in _order(targets, index):
            before = target.cpu()
            result = run_wrk(
                wrk,
                target.url(),
                scripts[target.name],
                connections=cell.connections,
                seconds=seconds,
            )
            run = Run(result, target.cpu() - before)
            cell.runs.setdefault(target.name, []).append(run)


def render(cells: list[Cell], targets: list[Target], reference: str) -> str:
    direct = targets[0].name
    names = [t.name for t in targets]
    width = max(len(n) for n in names) + 2
    lines = []
    for cell in cells:
        lines.append(f"\n{cell.scenario.name}, {cell.connections} connections")
        lines.append(
            f"{'':{width}}{'req/s':>9} {'vs TZ':>6} {'p50 ms':>8} {'added':>7} "
            f"{'CPU/req':>9} {'cores':>6} {'errors':>6}"
        )
        ref_rps = cell.median(reference, "rps")
        for name in names:
            rps = cell.median(name, "rps")
            added = "" if name == direct else f"{cell.added_p50_ms(name, direct):7.2f}"
            cpu = "" if name == direct else f"{cell.median(name, 'cpu_us'):6.0f} µs"
            cores = f"{cell.median(name, 'cores'):6.2f}"
            errors = sum(r.result.errors for r in cell.runs[name])
            lines.append(
                f"{name:{width}}{rps:9,.0f} {rps / ref_rps:6.2f} "
                f"{cell.median(name, 'p50'):8.2f} {added:>7} {cpu:>9} {cores} {errors:6d}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print it (see the module docstring)."""
    args = _parser().parse_args(argv)
    wrk = ensure_wrk()
    raise_fd_limit()
    load_start = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="modelport-versus-"))
    started: list[Process] = []
    try:
        upstream = start_upstream(folder)
        started.append(upstream)
        one = start_gateway(upstream.port, folder, args.gateway_arg)
        started.append(one)
        many_args = [*args.gateway_arg, "--workers", str(args.workers)]
        many = start_gateway(upstream.port, folder, many_args)
        started.append(many)
        tz = start_tensorzero(upstream.port, folder)
        started.append(tz)
        targets = [
            Target("direct", upstream, _OPENAI_PATH, "", direct=True),
            Target("modelport", one, _OPENAI_PATH, "bench/"),
            Target(f"modelport x{args.workers}", many, _OPENAI_PATH, "bench/"),
            Target("TensorZero", tz, PATH, MODEL_PREFIX),
        ]
        if args.tensorzero_nodelay:
            tz_nodelay = start_tensorzero(upstream.port, folder, _build_nodelay(folder))
            started.append(tz_nodelay)
            targets.append(Target("TensorZero nodelay", tz_nodelay, PATH, MODEL_PREFIX))
        time.sleep(2)  # the workers' metrics threads and plugin scans settle
        idle = {t.name: t.process.tree_rss_mb() for t in targets}
        import_ms = import_time_ms()
        by_name = {s.name: s for s in SCENARIOS}
        wanted = [(s.name, c) for s in SCENARIOS for c in (1, 16, 64)] if args.all_cells else _CELLS
        cells = [Cell(by_name[name], connections) for name, connections in wanted]
        _progress("warming up")
        for scenario in {c.scenario.name: c.scenario for c in cells}.values():
            measure(wrk, targets, Cell(scenario, 16), folder, rounds=1, seconds=1)
        for cell in cells:
            _progress(f"  {cell.scenario.name}, c={cell.connections}")
            measure(wrk, targets, cell, folder, rounds=args.rounds, seconds=args.seconds)
        load_end = os.getloadavg()
        print(render(cells, targets, "TensorZero"))
        print(
            "\nidle RSS (MB, all processes of a server): "
            + ", ".join(f"{name} {mb:.0f}" for name, mb in idle.items())
        )
        print(f"import modelport: {import_ms:.0f} ms (median of 5 fresh interpreters)")
        print(
            f"load average at start {load_start[0]:.2f} / {load_start[1]:.2f} (1/5 min), "
            f"at end {load_end[0]:.2f} / {load_end[1]:.2f}; {os.cpu_count()} cores"
        )
        if args.json:
            results = {
                "load_start": load_start,
                "load_end": load_end,
                "idle_rss_mb": idle,
                "import_ms": import_ms,
                "cells": [
                    {
                        "scenario": c.scenario.name,
                        "connections": c.connections,
                        "runs": {
                            name: [
                                {
                                    "rps": r.result.rps,
                                    "p50_ms": r.result.p50_ms,
                                    "cpu_us": r.cpu_us,
                                    "errors": r.result.errors,
                                }
                                for r in runs
                            ]
                            for name, runs in c.runs.items()
                        },
                    }
                    for c in cells
                ],
            }
            args.json.write_text(json.dumps(results, indent=1))
    finally:
        for process in reversed(started):
            stop(process, timeout=30)  # ``--workers``: the parent waits for its workers
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
