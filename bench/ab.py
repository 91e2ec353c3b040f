"""``python -m bench.ab``: two builds of the gateway, loaded side by side.

For the question "did this change make a request cheaper?". Each build is a
``src`` folder (``git worktree add /tmp/base HEAD`` gives the one before a
change). Both gateways run at once in front of one fake upstream, each under
its own wrk with the same request, and every round reads both gateways' CPU
per request. Loaded side by side, both builds see the same drift in the
machine's speed, which moves interleaved runs by tens of per cent within
minutes; the paired difference is the figure to read. Each gateway gets less
than a core here, so the level is lower than ``make bench`` reports.

The same build can be compared with itself under two configurations, which is
how a feature's cost per request is measured: ``--extra-a``/``--extra-b`` put
TOML at the top of each side's ``config.toml`` (``{upstream}`` is the upstream's base
URL), ``--model-a``/``--model-b`` name the model each side asks for, and
``--vary`` makes every request's body different (a response cache then
misses every time)::

    python -m bench.ab src src --extra-b pool.toml --model-b pool
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--extra-a", type=Path, help="TOML added to a's config.toml")
    parser.add_argument("--extra-b", type=Path, help="TOML added to b's config.toml")
    parser.add_argument("--model-a", help="the model a's requests name (default bench/chunks-N)")
    parser.add_argument("--model-b", help="the model b's requests name")
    parser.add_argument(
        "--env-a",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for a's gateway only (repeatable)",
    )
    parser.add_argument(
        "--env-b",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="the same for b: one build, two settings (MODELPORT_PASSTHROUGH=off)",
    )
    parser.add_argument(
        "--vary", action="store_true", help="every request's body differs (cache misses)"
    )
    return parser


def _env(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def _body(scenario_body: bytes, model: str | None, vary: bool) -> bytes:
    payload = json.loads(scenario_body)
    if model:
        payload["model"] = model
    if vary:
        payload["messages"][-1]["content"] += " __N__"
    return json.dumps(payload, separators=(",", ":")).encode()


def _cpu_per_request(wrk: str, gateway: Process, script: Path, args: argparse.Namespace) -> float:
    """Gateway CPU µs per request over one wrk run."""
    before = gateway.cpu_seconds()
    result = run_wrk(
        wrk,
        f"http://127.0.0.1:{gateway.port}{_PATH}",
        script,
        connections=args.connections,
        seconds=args.seconds,
    )
    return (gateway.cpu_seconds() - before) / max(1, result.requests) * 1e6


def _side_by_side(
    wrk: str,
    gateways: tuple[Process, Process],
    scripts: tuple[Path, Path],
    args: argparse.Namespace,
) -> tuple[float, float]:
    results: dict[int, float] = {}

    def load(index: int) -> None:
        results[index] = _cpu_per_request(wrk, gateways[index], scripts[index], args)

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
        extras = [path.read_text() if path else "" for path in (args.extra_a, args.extra_b)]
        gateways = (
            start_gateway(
                upstream.port,
                folder,
                [],
                {"PYTHONPATH": str(args.a.resolve()), **_env(args.env_a)},
                extra_config=extras[0],
            ),
            start_gateway(
                upstream.port,
                folder,
                [],
                {"PYTHONPATH": str(args.b.resolve()), **_env(args.env_b)},
                extra_config=extras[1],
            ),
        )
        body = scenario.body("bench/")
        scripts = (
            write_script(_body(body, args.model_a, args.vary), folder, vary=args.vary),
            write_script(_body(body, args.model_b, args.vary), folder, vary=args.vary),
        )
        warm = argparse.Namespace(**{**vars(args), "seconds": 1})
        _side_by_side(wrk, gateways, scripts, warm)
        differences = []
        for round_ in range(1, args.rounds + 1):
            a, b = _side_by_side(wrk, gateways, scripts, args)
            differences.append(b - a)
            print(f"round {round_}: a {a:5.0f} µs  b {b:5.0f} µs  b - a {b - a:+5.0f} µs")
        spread = statistics.stdev(differences) if len(differences) > 1 else 0.0
        print(
            f"{scenario.name}, c={args.connections} each: b - a = "
            f"{statistics.median(differences):+.0f} µs of gateway CPU per request "
            f"(median of {len(differences)} rounds; sd {spread:.0f} µs)"
        )
    finally:
        for gateway in gateways or ():
            stop(gateway)
        stop(upstream)


if __name__ == "__main__":
    main()
