"""``python -m bench.ab``: two builds of the gateway, loaded side by side.

For the question "did this change make a request cheaper?". Each build is a
``src`` folder (``git worktree add /tmp/base HEAD`` gives the one before a
change). Both gateways run at once in front of one fake upstream, each under
its own wrk with the same request, and every round reads both gateways' CPU
per request. Loaded side by side, both builds see the same drift in the
machine's speed, which moves interleaved runs by tens of per cent within
minutes; the paired difference is the figure to read. Each gateway gets less
than a core here, so the level is lower than ``make bench`` reports.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
from pathlib import Path

from bench.load import ensure_wrk, run_wrk, write_script
from bench.procs import Process, raise_fd_limit, start_gateway, start_upstream, stop
from bench.scenarios import SCENARIOS

_PATH = "/v1/chat/completions"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ab", description="Compare two builds' CPU per request."
    )
    parser.add_argument("a", type=Path, help="the first build's src folder (the baseline)")
    parser.add_argument("b", type=Path, help="the second build's src folder")
    parser.add_argument(
        "--scenario",
        choices=[s.name for s in SCENARIOS],
        default=SCENARIOS[0].name,
        help="the request shape (non-streaming)",
    )
    parser.add_argument("-c", "--connections", type=int, default=32, help="per gateway (32)")
    parser.add_argument("--rounds", type=int, default=8, help="paired rounds (8)")
    parser.add_argument("--seconds", type=int, default=3, help="seconds per round (3)")
    parser.add_argument(
        "--env-a",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the first gateway only (repeatable)",
    )
    parser.add_argument(
        "--env-b",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="the same for the second: one build, two settings (MODELPORT_PASSTHROUGH=off)",
    )
    return parser


def _env(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def _cpu_per_request(
    wrk: str, gateway: Process, script: Path, args: argparse.Namespace
) -> tuple[float, float]:
    """Gateway CPU µs per request, and requests per second, in one wrk run."""
    before = gateway.cpu_seconds()
    result = run_wrk(
        wrk,
        f"http://127.0.0.1:{gateway.port}{_PATH}",
        script,
        connections=args.connections,
        seconds=args.seconds,
    )
    cpu = (gateway.cpu_seconds() - before) / max(1, result.requests) * 1e6
    return cpu, result.requests / args.seconds


def _side_by_side(
    wrk: str, gateways: tuple[Process, Process], script: Path, args: argparse.Namespace
) -> tuple[tuple[float, float], tuple[float, float]]:
    results: dict[int, tuple[float, float]] = {}

    def load(index: int) -> None:
        results[index] = _cpu_per_request(wrk, gateways[index], script, args)

    threads = [threading.Thread(target=load, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results[0], results[1]


def main() -> None:
    args = _parser().parse_args()
    wrk = ensure_wrk()
    raise_fd_limit()
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    folder = Path(tempfile.mkdtemp(prefix="modelport-ab-"))
    upstream = start_upstream(folder)
    gateways: tuple[Process, Process] | None = None
    try:
        gateways = (
            start_gateway(
                upstream.port,
                folder,
                [],
                {"PYTHONPATH": str(args.a.resolve()), **_env(args.env_a)},
            ),
            start_gateway(
                upstream.port,
                folder,
                [],
                {"PYTHONPATH": str(args.b.resolve()), **_env(args.env_b)},
            ),
        )
        script = write_script(scenario.body("bench/"), folder)
        warm = argparse.Namespace(**{**vars(args), "seconds": 1})
        _side_by_side(wrk, gateways, script, warm)
        differences = []
        rates: list[tuple[float, float]] = []
        for round_ in range(1, args.rounds + 1):
            (a, rate_a), (b, rate_b) = _side_by_side(wrk, gateways, script, args)
            differences.append(b - a)
            rates.append((rate_a, rate_b))
            print(
                f"round {round_}: a {a:5.0f} µs {rate_a:6.0f}/s  b {b:5.0f} µs {rate_b:6.0f}/s"
                f"  b - a {b - a:+5.0f} µs"
            )
        spread = statistics.stdev(differences) if len(differences) > 1 else 0.0
        print(
            f"{scenario.name}, c={args.connections} each: b - a = "
            f"{statistics.median(differences):+.0f} µs of gateway CPU per request "
            f"(median of {len(differences)} rounds; sd {spread:.0f} µs); requests/s "
            f"a {statistics.median(r[0] for r in rates):.0f}, "
            f"b {statistics.median(r[1] for r in rates):.0f} (side by side, so each "
            "has part of the machine)"
        )
    finally:
        for gateway in gateways or ():
            stop(gateway)
        stop(upstream)


if __name__ == "__main__":
    main()
