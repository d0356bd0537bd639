"""Benchmark the REST API of a live daemon: req/s, latency, and daemon CPU time per request.

Starts the daemon as a real process (temporary database, free port on 127.0.0.1) and, in the
same invocation, a baseline: a bare aiohttp app answering a fixed JSON list, so the ratio shows
what our stack adds over the framework floor on this machine. CPU time is read from the server
process's threads (``figures.cpu_of``), which stays stable on a noisy machine where wall-clock
figures do not.

Each scenario runs ``--rounds`` times, the three scenarios of a concurrency in turn (baseline,
GET, pairs; then again), and a row shows the median round's CPU per operation and the
latencies of all rounds: a burst of load from another program on the machine then moves one
round, not the figure.

Usage: .venv/bin/python bench/rest.py [--requests 2000] [--pairs 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
from figures import cpu_of, free_port, pct

BASELINE_APP = textwrap.dedent(
    """
    import json, sys
    from aiohttp import web
    BODY = json.dumps({"providers": [{"id": f"p{i}", "name": f"P{i}", "type": "lm-studio",
        "enabled": True, "priority": i, "description": None, "created_at": 0,
        "updated_at": 0} for i in range(3)], "total": 3})
    async def providers(request):
        return web.Response(text=BODY, content_type="application/json")
    app = web.Application()
    app.router.add_get("/api/providers", providers)
    app.router.add_get("/api/health", providers)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
    """
)


@dataclass
class Result:
    """Figures of one scenario (of one round, or of all rounds: see ``merged``)."""

    name: str
    concurrency: int
    ops: int
    wall_s: float
    latencies_ms: list[float]
    cpu_s: float

    def row(self, baseline_cpu_ms: float | None) -> str:
        p50 = statistics.median(self.latencies_ms)
        p99 = pct(self.latencies_ms, 0.99)
        cpu_ms = self.cpu_s * 1000 / self.ops
        ratio = f"{cpu_ms / baseline_cpu_ms:5.2f}x" if baseline_cpu_ms else "   -  "
        return (
            f"{self.name:<28} c={self.concurrency:<3} {self.ops / self.wall_s:8.0f} op/s  "
            f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  cpu {cpu_ms:6.3f} ms/op  {ratio}"
        )


def merged(rounds: list[Result]) -> Result:
    """Return one Result for the rounds of a scenario: the median round's CPU per operation,
    everyone's latencies, the total operations and wall time."""
    ops = sum(r.ops for r in rounds)
    cpu_per_op = statistics.median(r.cpu_s / r.ops for r in rounds)
    latencies = [ms for r in rounds for ms in r.latencies_ms]
    first = rounds[0]
    return Result(first.name, first.concurrency, ops, sum(r.wall_s for r in rounds), latencies,
                  cpu_per_op * ops)  # fmt: skip


def targets(c: int, base: Result, get: Result, pairs: Result) -> str:
    """Return one line saying which targets this concurrency met."""
    base_cpu = base.cpu_s / base.ops
    pair_ratio = pairs.cpu_s / pairs.ops / base_cpu
    get_ratio = get.cpu_s / get.ops / base_cpu
    p99 = pct(pairs.latencies_ms, 0.99)
    verdict = [
        f"pair CPU {pair_ratio:.1f}x baseline ({'met' if pair_ratio <= 4 else 'MISSED'})",
        f"GET CPU {get_ratio:.2f}x baseline ({'met' if get_ratio <= 1.5 else 'MISSED'})",
    ]
    if c >= 50:
        verdict.append(f"pair p99 {p99:.1f} ms ({'met' if p99 < 50 else 'MISSED'})")
    return f"  c={c}: " + "; ".join(verdict)


async def wait_healthy(http: aiohttp.ClientSession, url: str, timeout: float = 10.0) -> float:
    """Poll /api/health until 200; return seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            async with http.get(url + "/api/health") as resp:
                if resp.status == 200:
                    return time.perf_counter() - started
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.005)
    raise RuntimeError(f"{url} did not become healthy")


async def run(
    name: str,
    proc: psutil.Process,
    concurrency: int,
    ops: int,
    op: Callable[[int], Awaitable[None]],
) -> Result:
    latencies: list[float] = []
    counter = iter(range(ops))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await op(i)
            latencies.append((time.perf_counter() - t0) * 1000)

    cpu0 = cpu_of(proc)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return Result(name, concurrency, ops, wall, latencies, cpu_of(proc) - cpu0)


async def bench(args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-rest-")
    port, base_port = free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": tmp,
        "API_PORT": str(port),
        "DATABASE_PATH": str(Path(tmp) / "bench.db"),
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
    }
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as http:
        spawn_t0 = time.perf_counter()
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "apiserver", env=env, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        baseline = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BASELINE_APP, str(base_port)
        )
        try:
            await wait_healthy(http, f"http://127.0.0.1:{port}")
            startup = time.perf_counter() - spawn_t0
            await wait_healthy(http, f"http://127.0.0.1:{base_port}")
            dproc, bproc = psutil.Process(daemon.pid), psutil.Process(baseline.pid)
            url, burl = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{base_port}"

            async def get(u: str) -> None:
                async with http.get(u) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status

            async def pair(i: int) -> None:
                mid = f"bench-{i}-{time.monotonic_ns()}"
                body = json.dumps({"id": mid, "name": "Bench model"}).encode()
                headers = {"Content-Type": "application/json"}
                async with http.post(url + "/api/models", data=body, headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 201, resp.status
                async with http.delete(f"{url}/api/models/{mid}") as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status

            # Warm up both servers (imports, caches, connection pool).
            for _ in range(200):
                await get(url + "/api/providers")
                await get(burl + "/api/providers")
            idle_rss = dproc.memory_info().rss

            results: list[tuple[Result, float | None]] = []
            verdicts: list[str] = []
            for c in (1, 50):
                rounds: list[tuple[Result, Result, Result]] = []
                for _ in range(args.rounds):
                    base = await run(
                        "baseline GET (bare aiohttp)", bproc, c, args.requests,
                        lambda _i: get(burl + "/api/providers"),
                    )  # fmt: skip
                    ours = await run(
                        "GET /api/providers", dproc, c, args.requests,
                        lambda _i: get(url + "/api/providers"),
                    )  # fmt: skip
                    pairs = await run("POST+DELETE /api/models", dproc, c, args.pairs, pair)
                    rounds.append((base, ours, pairs))
                base, ours, pairs = (merged([r[k] for r in rounds]) for k in range(3))
                base_cpu = base.cpu_s * 1000 / base.ops
                results += [(base, None), (ours, base_cpu), (pairs, base_cpu)]
                verdicts.append(targets(c, base, ours, pairs))
            rss_after = dproc.memory_info().rss
        finally:
            for p in (daemon, baseline):
                p.terminate()
                await p.wait()

    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(f"daemon start to first /api/health 200: {startup * 1000:.0f} ms (target < 500 ms)")
    print(f"daemon idle RSS after warm-up: {idle_rss / 2**20:.1f} MiB (target < 60 MiB); "
          f"after the runs: {rss_after / 2**20:.1f} MiB")  # fmt: skip
    print("ratio = daemon CPU per request / bare-aiohttp CPU per request (same invocation); "
          f"CPU per op: the median of {args.rounds} interleaved rounds")  # fmt: skip
    for result, base_cpu in results:
        print(result.row(base_cpu))
    print("targets (issue 11): create+delete pair CPU <= 4x the baseline's per-request CPU and "
          "p99 < 50 ms at c=50; GET /api/providers CPU <= 1.5x the baseline's")  # fmt: skip
    for line in verdicts:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
