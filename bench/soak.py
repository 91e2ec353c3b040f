"""``python -m bench.soak`` (``make soak``): a bounded mixed load for a set time, and a leak check.

Three processes on 127.0.0.1: the fake upstream (``bench.upstream``), ``modelport
serve`` with the usage ledger (SQLite) and one plugin (``examples/plugins/example-python``,
which calls the same upstream), and this process's client: ``--concurrency``
workers, each sending one request after another from a fixed mix:

=============  ====  =============================================================
kind           mix   request
=============  ====  =============================================================
stream         35 %  a streamed chat of 30 chunks, read to the end
plain          20 %  a non-streamed chat
disconnect     10 %  a stream held open upstream; the client reads one chunk and leaves
error          15 %  the upstream answers 500 or 429 (no retries)
plugin         20 %  a streamed chat through the plugin's process, read to the end
=============  ====  =============================================================

Every ``--sample`` seconds it reads the gateway's resident memory, CPU time and
open file descriptors (``/proc/PID``) and its asyncio task count (the
``modelport_gateway_asyncio_tasks`` gauge of ``/metrics``), and keeps each
window's latencies. It first sends ``--warmup-requests`` requests (3,000, or
as many as ``--warmup-max`` seconds allow) of the same mix: the gateway's
memory rises over its first few thousand requests and then levels off
(``docs/reliability.md`` has the curve). The ``--seconds`` that follow are
measured, and the report compares them:

* **RSS growth after warm-up**: the last sample minus the first measured one,
  and per 1,000 requests (the slope of a line fitted through the samples
  against the request count), which is what a leak shows;
* **open descriptors and tasks at rest**: before the load and 8 s after it
  (past uvicorn's 5 s and aiohttp's 4 s keep-alive), when every connection
  the load opened has been closed;
* **p99 drift**: the median of the windows' 99th percentile latency in the
  last third of the measured time against the first third; and the gateway's
  CPU per request the same way, which a busy machine disturbs less than latency;
* **the ledger**: after a graceful stop (SIGTERM), one row per request sent.

It exits 1 when a figure is past its limit (the limits, and why, are in
``docs/reliability.md``), so CI runs a 60-second version after ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench.procs import Process, free_port, raise_fd_limit, start_upstream, stop

_ROOT = Path(__file__).resolve().parent.parent
_PLUGIN = _ROOT / "examples" / "plugins" / "example-python"
_USER = [{"role": "user", "content": "hi"}]

#: (kind, weight): the mix of requests, as the module docstring lists it.
MIX = (("stream", 35), ("plain", 20), ("disconnect", 10), ("error", 15), ("plugin", 20))


@dataclass(frozen=True)
class Limits:
    """What fails the run; ``docs/reliability.md`` says where each figure comes from."""

    rss_growth_mb: float = 24.0
    rss_mb_per_1k_requests: float = 4.0
    fds_at_rest: int = 4
    tasks_at_rest: int = 3
    #: Latency on a shared machine follows the machine: only gross drift fails.
    p99_ratio: float = 3.0
    p99_floor_ms: float = 250.0
    cpu_ratio: float = 2.0


@dataclass
class Sample:
    at: float
    #: Taken after warm-up.
    measured: bool
    rss_mb: float
    cpu_s: float
    fds: int
    tasks: int
    requests: int
    p99_ms: float | None


@dataclass
class Report:
    seconds: float
    concurrency: int
    warmup_s: float = 0.0
    warmup_requests: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    rest_before: dict[str, int] = field(default_factory=dict)
    rest_after: dict[str, int] = field(default_factory=dict)
    ledger_rows: int = 0
    median_ms: dict[str, float] = field(default_factory=dict)
    rss_growth_mb: float = 0.0
    rss_mb_per_1k_requests: float = 0.0
    p99_first_ms: float = 0.0
    p99_last_ms: float = 0.0
    cpu_us_first: float = 0.0
    cpu_us_last: float = 0.0
    problems: list[str] = field(default_factory=list)


# --- the processes -------------------------------------------------------------------------


def _start_gateway(upstream_port: int, folder: Path) -> Process:
    """``modelport serve`` with the ledger, the example plugin and a connection to the upstream."""
    home = folder / "home"
    (home / "plugins").mkdir(parents=True)
    shutil.copytree(_PLUGIN, home / "plugins" / _PLUGIN.name)
    (home / "config.toml").write_text(
        "[connections.bench]\n"
        'compat = "openai"\n'
        f'base_url = "http://127.0.0.1:{upstream_port}/v1"\n'
        "max_retries = 0\n\n"
        "[connections.example-python]\n"
        'compat = "plugin:example-python"\n'
        f'baseUrl = "http://127.0.0.1:{upstream_port}/v1"\n'
        'api_key_env = "SOAK_PLUGIN_KEY"\n'
        "max_retries = 0\n"
    )
    port = free_port()
    log = home / "gateway.log"
    env = dict(os.environ, MODELPORT_HOME=str(home), SOAK_PLUGIN_KEY="soak-key")
    popen = subprocess.Popen(
        [sys.executable, "-m", "modelport", "serve", "--port", str(port), "--no-access-log"],
        cwd=home,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"the gateway exited:\n{log.read_text()[-3000:]}")
        try:
            with opener.open(f"http://127.0.0.1:{port}/plugins/example-python", timeout=2) as r:
                if json.loads(r.read())["state"] == "running":
                    return Process(popen, port, log)
        except OSError:
            pass
        time.sleep(0.1)
    popen.kill()
    raise RuntimeError(f"the gateway or its plugin did not start:\n{log.read_text()[-3000:]}")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmRSS")


async def _tasks(client: httpx.AsyncClient) -> int:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith("modelport_gateway_asyncio_tasks "):
            return int(float(line.split()[1]))
    raise RuntimeError("/metrics has no modelport_gateway_asyncio_tasks")


async def _at_rest(client: httpx.AsyncClient, pid: int) -> dict[str, int]:
    # /metrics itself runs on a connection of ours and as a task: the same before and after.
    return {"fds": _fds(pid), "tasks": await _tasks(client)}


# --- the load ------------------------------------------------------------------------------


class _Load:
    def __init__(self, url: str, concurrency: int, seed: int) -> None:
        self.url = url
        self.concurrency = concurrency
        self.random = random.Random(seed)
        self.kinds = [kind for kind, weight in MIX for _ in range(weight)]
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.window: list[float] = []
        #: (when it ended, kind, seconds) of every request, for the report's medians.
        self.done: list[tuple[float, str, float]] = []
        #: When the measured time began (None: still warming up), and how many came before.
        self.measured_from: float | None = None
        self.warmed_with = 0
        self.warm_until = 0.0
        self.warmup_requests = 0
        self.seconds = 0.0

    async def run(self, warmup_requests: int, warmup_max: float, seconds: float) -> None:
        """Warm up (``warmup_requests``, at most ``warmup_max`` s), then ``seconds`` measured."""
        now = time.monotonic()
        self.warm_until = now + warmup_max
        self.warmup_requests = warmup_requests
        self.seconds = seconds
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits) as client:
            await asyncio.gather(*(self._worker(client) for _ in range(self.concurrency)))

    def _going(self) -> bool:
        now = time.monotonic()
        if self.measured_from is None:
            sent = sum(self.sent.values())
            if sent < self.warmup_requests and now < self.warm_until:
                return True
            self.measured_from = now
            self.warmed_with = sent
        return now < self.measured_from + self.seconds

    async def _worker(self, client: httpx.AsyncClient) -> None:
        while self._going():
            kind = self.random.choice(self.kinds)
            self.sent[kind] += 1
            began = time.perf_counter()
            try:
                ok = await getattr(self, f"_{kind}")(client)
            except httpx.HTTPError:
                ok = False
            elapsed = time.perf_counter() - began
            if not ok:
                self.failed[kind] += 1
            elif kind != "disconnect":
                self.window.append(elapsed)
            self.done.append((time.monotonic(), kind, elapsed))

    async def _read_stream(self, client: httpx.AsyncClient, body: dict[str, object]) -> bool:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            data = b"".join([chunk async for chunk in response.aiter_raw()])
        return response.status_code == 200 and data.endswith(b"data: [DONE]\n\n")

    async def _stream(self, client: httpx.AsyncClient) -> bool:
        body = {"model": "bench/chunks-30", "messages": _USER, "stream": True}
        return await self._read_stream(client, body)

    async def _plugin(self, client: httpx.AsyncClient) -> bool:
        body = {"model": "example-python/gpt-4o-mini", "messages": _USER, "stream": True}
        return await self._read_stream(client, body)

    async def _plain(self, client: httpx.AsyncClient) -> bool:
        body = {"model": "bench/plain", "messages": _USER}
        answer = await client.post("/v1/chat/completions", json=body)
        return answer.status_code == 200 and b"chat.completion" in answer.content

    async def _error(self, client: httpx.AsyncClient) -> bool:
        status = self.random.choice((500, 429))
        body = {"model": f"bench/error-{status}", "messages": _USER}
        answer = await client.post("/v1/chat/completions", json=body)
        return answer.status_code == status and b"bench upstream error" in answer.content

    async def _disconnect(self, client: httpx.AsyncClient) -> bool:
        body = {"model": "bench/hold-30", "messages": _USER, "stream": True}
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            async for _ in response.aiter_raw():
                break  # leaving the block closes the connection mid-stream
        return response.status_code == 200


# --- the run -------------------------------------------------------------------------------


def _p99(latencies: list[float]) -> float | None:
    if len(latencies) < 20:
        return None
    return statistics.quantiles(latencies, n=100)[98] * 1000


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y)."""
    if len(points) < 2:
        return 0.0
    xs, ys = zip(*points, strict=True)
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if not spread:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def _measured(report: Report) -> list[Sample]:
    """The samples of the measured time: the last one taken during warm-up (its end),
    and those after."""
    samples = report.samples
    first = next((i for i, s in enumerate(samples) if s.measured), len(samples))
    return samples[max(0, first - 1) :]


def _thirds(values: list[float]) -> tuple[float, float]:
    """The medians of the first and the last third of ``values``."""
    third = max(1, len(values) // 3)
    return statistics.median(values[:third]), statistics.median(values[-third:])


async def _soak(args: argparse.Namespace, folder: Path) -> Report:
    report = Report(seconds=args.seconds, concurrency=args.concurrency)
    upstream = start_upstream(folder)
    gateway: Process | None = None
    try:
        gateway = _start_gateway(upstream.port, folder)
        url = f"http://127.0.0.1:{gateway.port}"
        async with httpx.AsyncClient(base_url=url, timeout=10) as probe:
            await asyncio.sleep(1)
            report.rest_before = await _at_rest(probe, gateway.pid)
            load = _Load(url, args.concurrency, args.seed)
            began = time.monotonic()
            running = asyncio.create_task(
                load.run(args.warmup_requests, args.warmup_max, args.seconds)
            )
            while not running.done():
                await asyncio.wait({running}, timeout=args.sample)
                window, load.window = load.window, []
                report.samples.append(
                    Sample(
                        at=round(time.monotonic() - began, 1),
                        measured=load.measured_from is not None,
                        rss_mb=round(_rss_mb(gateway.pid), 2),
                        cpu_s=round(gateway.cpu_seconds(), 3),
                        fds=_fds(gateway.pid),
                        tasks=await _tasks(probe),
                        requests=sum(load.sent.values()),
                        p99_ms=None if (p99 := _p99(window)) is None else round(p99, 1),
                    )
                )
                _progress(report.samples[-1])
            await running
            await asyncio.sleep(8)  # past every keep-alive timeout
            report.rest_after = await _at_rest(probe, gateway.pid)
        report.requests = dict(load.sent)
        report.failures = dict(load.failed)
        assert load.measured_from is not None
        report.warmup_s = round(load.measured_from - began, 1)
        report.warmup_requests = load.warmed_with
        warm = load.measured_from
        for kind, _ in MIX:
            times = [t for end, k, t in load.done if k == kind and end >= warm]
            if times:
                report.median_ms[kind] = round(statistics.median(times) * 1000, 1)
        gateway.popen.send_signal(signal.SIGTERM)
        gateway.popen.wait(timeout=60)
        with sqlite3.connect(Path(gateway.log).parent / "usage.db") as db:
            report.ledger_rows = db.execute("SELECT count(*) FROM modelport_calls").fetchone()[0]
    finally:
        stop(gateway)
        stop(upstream)
    return report


def _progress(sample: Sample) -> None:
    p99 = "-" if sample.p99_ms is None else f"{sample.p99_ms:.0f} ms"
    print(
        f"  {'measured' if sample.measured else 'warm-up '} {sample.at:6.1f} s  "
        f"{sample.requests:7d} requests  RSS {sample.rss_mb:6.1f} MB  "
        f"fds {sample.fds:4d}  tasks {sample.tasks:4d}  p99 {p99}",
        file=sys.stderr,
        flush=True,
    )


def _judge(report: Report, limits: Limits) -> None:
    after = _measured(report)
    if len(after) < 3:
        report.problems.append("too few samples after warm-up: run longer")
        return
    report.rss_growth_mb = round(after[-1].rss_mb - after[0].rss_mb, 2)
    report.rss_mb_per_1k_requests = round(_slope([(s.requests / 1000, s.rss_mb) for s in after]), 3)
    p99s = [s.p99_ms for s in after if s.p99_ms is not None]
    if p99s:
        first, last = _thirds(p99s)
        report.p99_first_ms, report.p99_last_ms = round(first, 1), round(last, 1)
    cpu = [
        (b.cpu_s - a.cpu_s) / (b.requests - a.requests) * 1e6
        for a, b in zip(after, after[1:], strict=False)
        if b.requests > a.requests
    ]
    if cpu:
        first, last = _thirds(cpu)
        report.cpu_us_first, report.cpu_us_last = round(first), round(last)
    sent = sum(report.requests.values())
    failed = sum(report.failures.values())
    if failed:
        report.problems.append(f"{failed} of {sent} requests did not get the answer expected")
    if report.rss_growth_mb > limits.rss_growth_mb:
        report.problems.append(
            f"RSS grew {report.rss_growth_mb} MB after warm-up (limit {limits.rss_growth_mb})"
        )
    if report.rss_mb_per_1k_requests > limits.rss_mb_per_1k_requests:
        report.problems.append(
            f"RSS grows {report.rss_mb_per_1k_requests} MB per 1,000 requests after warm-up "
            f"(limit {limits.rss_mb_per_1k_requests})"
        )
    for what, limit in (("fds", limits.fds_at_rest), ("tasks", limits.tasks_at_rest)):
        grew = report.rest_after[what] - report.rest_before[what]
        if grew > limit:
            report.problems.append(f"{grew} more {what} at rest after the load (limit {limit})")
    if report.p99_last_ms > max(
        report.p99_first_ms * limits.p99_ratio, report.p99_first_ms + limits.p99_floor_ms
    ):
        report.problems.append(
            f"p99 drifted from {report.p99_first_ms} ms to {report.p99_last_ms} ms"
        )
    if report.cpu_us_first and report.cpu_us_last > report.cpu_us_first * limits.cpu_ratio:
        report.problems.append(
            f"CPU per request drifted from {report.cpu_us_first} to {report.cpu_us_last} µs"
        )
    if report.ledger_rows != sent:
        report.problems.append(f"the ledger holds {report.ledger_rows} rows for {sent} requests")


def _render(report: Report) -> str:
    sent = sum(report.requests.values())
    kinds = ", ".join(f"{kind} {report.requests.get(kind, 0):,}" for kind, _ in MIX)
    after = _measured(report)
    lines = [
        f"soak: {report.seconds:g} s measured after a warm-up of "
        f"{report.warmup_requests:,} requests ({report.warmup_s:g} s), "
        f"{report.concurrency} workers",
        f"requests: {sent:,} in all ({kinds}); not as expected: {sum(report.failures.values())}",
    ]
    if after:
        lines.append(
            f"RSS after warm-up: {after[0].rss_mb} MB -> {after[-1].rss_mb} MB "
            f"({report.rss_growth_mb:+} MB; {report.rss_mb_per_1k_requests:+} MB per "
            f"1,000 requests over {after[-1].requests - after[0].requests:,})"
        )
        lines.append(
            f"under load: fds {min(s.fds for s in after)}-{max(s.fds for s in after)}, "
            f"tasks {min(s.tasks for s in after)}-{max(s.tasks for s in after)}"
        )
    lines += [
        f"at rest: fds {report.rest_before.get('fds')} before -> "
        f"{report.rest_after.get('fds')} after; asyncio tasks "
        f"{report.rest_before.get('tasks')} -> {report.rest_after.get('tasks')}",
        f"p99 (median of the windows' p99 in the first and last third after warm-up): "
        f"{report.p99_first_ms} ms -> {report.p99_last_ms} ms",
        f"gateway CPU per request (the same thirds): {report.cpu_us_first} µs -> "
        f"{report.cpu_us_last} µs",
        "median latency after warm-up: "
        + ", ".join(f"{kind} {ms:g} ms" for kind, ms in report.median_ms.items()),
        f"ledger: {report.ledger_rows:,} rows for {sent:,} requests",
    ]
    lines += [f"FAIL: {problem}" for problem in report.problems] or ["PASS"]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description="A bounded mixed load and a leak check."
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("SOAK_SECONDS", "300")),
        help="how long the measured load runs, after warm-up ($SOAK_SECONDS, else 300)",
    )
    parser.add_argument(
        "--warmup-requests", type=int, default=3000, help="requests before measuring (3000)"
    )
    parser.add_argument(
        "--warmup-max", type=float, default=180.0, help="seconds the warm-up may take (180)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="workers (8)")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples (5)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", type=Path, help="also write the report here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    raise_fd_limit()
    folder = Path(tempfile.mkdtemp(prefix="modelport-soak-"))
    try:
        report = asyncio.run(_soak(args, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _judge(report, Limits())
    print(_render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
