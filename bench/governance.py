"""``python -m bench.governance``: what the team gateway's checks cost a request.

Two gateways of this build, side by side in front of one fake upstream, each
under its own wrk with the same request (the method of ``bench.ab``): one as
a user runs it today, without virtual keys (the check is then one branch),
one with a virtual key whose calls pass every check the gateway has: the key
looked up, a team budget reserved and settled, a key rate limit counted, all
in a local Redis (``redis_url``). Limits are far above what the run can
reach, so no request is refused. Every round reads both gateways' CPU per
request; the paired difference is the per-request cost of governance.

Needs a Redis on this machine: ``--redis-url`` (default
``$MODELPORT_TEST_REDIS_URL``, else ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import argparse
import os
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
        prog="python -m bench.governance",
        description="Gateway CPU per request with governance on against off, side by side.",
    )
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
        "--redis-url",
        default=os.environ.get("MODELPORT_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0",
    )
    return parser


def _governed_home(secret_out: list[str]) -> object:
    def prepare(home: Path) -> None:
        from modelport.governance import open_catalog

        catalog = open_catalog(url=f"sqlite:///{home / 'usage.db'}")
        try:
            key, secret = catalog.create_key(name="bench", team="bench", actor="bench")
            catalog.set_budget(
                scope="team", subject="bench", period="day", max_cost=1e9, actor="bench"
            )
            catalog.set_limit(scope="key", subject=key.id, rpm=10**9, tpm=10**12, actor="bench")
        finally:
            catalog.close()
        secret_out.append(secret)

    return prepare


def _cpu_per_request(wrk: str, gateway: Process, script: Path, args: argparse.Namespace) -> float:
    before = gateway.cpu_seconds()
    result = run_wrk(
        wrk,
        f"http://127.0.0.1:{gateway.port}{_PATH}",
        script,
        connections=args.connections,
        seconds=args.seconds,
    )
    if result.errors:
        raise RuntimeError(f"requests failed on {gateway.port}: {result}")
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
    folder = Path(tempfile.mkdtemp(prefix="modelport-governance-"))
    upstream = start_upstream(folder)
    secret: list[str] = []
    prices = f'[connections.bench.prices."chunks-{scenario.chunks}"]\ninput = 1.0\noutput = 2.0\n'
    gateways: tuple[Process, Process] | None = None
    try:
        gateways = (
            start_gateway(upstream.port, folder, []),
            start_gateway(
                upstream.port,
                folder,
                [],
                # A parent table may follow its subtable in TOML: the prices go first.
                extra_config=f'redis_url = "{args.redis_url}"\n' + prices,
                prepare=_governed_home(secret),  # type: ignore[arg-type]
            ),
        )
        body = scenario.body("bench/")
        plain = write_script(body, folder)
        governed = folder / "governed.lua"
        governed.write_text(plain.read_text().replace("Bearer bench", f"Bearer {secret[0]}"))
        warm = argparse.Namespace(**{**vars(args), "seconds": 1})
        _side_by_side(wrk, gateways, (plain, governed), warm)
        differences = []
        for round_ in range(1, args.rounds + 1):
            off, on = _side_by_side(wrk, gateways, (plain, governed), args)
            differences.append(on - off)
            print(
                f"round {round_}: off {off:5.0f} µs  on {on:5.0f} µs  on - off {on - off:+5.0f} µs"
            )
        spread = statistics.stdev(differences) if len(differences) > 1 else 0.0
        print(
            f"{scenario.name}, c={args.connections} each: governance on - off = "
            f"{statistics.median(differences):+.0f} µs of gateway CPU per request "
            f"(median of {len(differences)} rounds; sd {spread:.0f} µs)"
        )
    finally:
        for gateway in gateways or ():
            stop(gateway)
        stop(upstream)


if __name__ == "__main__":
    main()
