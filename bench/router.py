"""Benchmark the provider-router: what it adds over calling the upstream directly.

Starts, in one invocation, two fake OpenAI-compatible upstreams as processes (a fast one, and
one that streams 10 chunks 20 ms apart), a temporary database with one provider per fake, and
the real router process. Every figure is a comparison with the same call made directly to the
fake, interleaved, so the machine's load affects both sides alike. CPU time is read from the
router process (user+system over all its threads, history writer included): the stable figure
on a shared machine.

Usage: .venv/bin/python bench/router.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import psutil
from figures import cpu_of, free_port, pct

from qwenstack_core.store import Connection, Store
from qwenstack_core.store import providers as provider_rows

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fakes" / "openai_upstream.py"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Say hello"}]}


async def start_fake(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(FAKE), env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 10)
    return proc, int(json.loads(line)["port"])


async def make_db(path: Path, fast_port: int, slow_port: int) -> None:
    def seed(conn: Connection) -> None:
        conn.execute("UPDATE providers SET enabled = 0")
        for pid, port, model in (("fast", fast_port, "m"), ("slow", slow_port, "m-slow")):
            provider_rows.create_provider(
                conn, id=pid, name=pid, type="openai-compatible", enabled=True,
                priority=1, description=None, config={"baseURL": f"http://127.0.0.1:{port}/v1"},
            )  # fmt: skip
            conn.execute(
                "INSERT INTO models (id, name, capabilities, created_at, updated_at)"
                " VALUES (?, ?, '[]', 0, 0)",
                (model, model),
            )
            provider_rows.link_model(conn, pid, model, is_default=True, config=None)

    store = Store(path)
    await store.open()
    await store.write(seed)
    await store.close()


async def start_router(db: Path, port: int) -> tuple[asyncio.subprocess.Process, float]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PORT": str(port),
        "DATABASE_PATH": str(db),
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
    }
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "provider_router", env=env, cwd=ROOT
    )
    async with aiohttp.ClientSession() as http:
        while time.perf_counter() - t0 < 10:
            try:
                async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                    if resp.status == 200:
                        return proc, time.perf_counter() - t0
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.002)
    raise RuntimeError("router did not answer /health")


class Client:
    """The bench's HTTP client: one pooled session, one call shape per measured figure."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def chat(self, base: str, body: dict[str, object]) -> float:
        t0 = time.perf_counter()
        async with self.http.post(f"{base}/chat/completions", json=body) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        return (time.perf_counter() - t0) * 1000

    async def stream(self, base: str, model: str) -> tuple[float, list[float]]:
        """Return (ms to the first content chunk, gaps between content chunks in ms)."""
        t0 = time.perf_counter()
        arrivals: list[float] = []
        body = {**CHAT, "model": model, "stream": True}
        async with self.http.post(f"{base}/chat/completions", json=body) as resp:
            assert resp.status == 200, resp.status
            async for line in resp.content:
                if line.startswith(b"data: {") and b'"content"' in line:
                    arrivals.append(time.perf_counter())
        gaps = [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:], strict=False)]
        return (arrivals[0] - t0) * 1000, gaps


async def concurrently(
    n: int, c: int, op: Callable[[], Awaitable[float]]
) -> tuple[list[float], float]:
    results: list[float] = []
    left = iter(range(n))

    async def worker() -> None:
        for _ in left:
            results.append(await op())

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    return results, time.perf_counter() - t0


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


async def bench(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-router-"))
    fast, fast_port = await start_fake({"FAKE_CHUNKS": "3"})
    slow, slow_port = await start_fake({"FAKE_CHUNKS": "10", "FAKE_INTERVAL": "0.02"})
    db = tmp / "bench.db"
    await make_db(db, fast_port, slow_port)
    router_port = free_port()
    router, startup = await start_router(db, router_port)
    rproc = psutil.Process(router.pid)
    startup_cpu = cpu_of(rproc)
    direct = f"http://127.0.0.1:{fast_port}/v1"
    slow_direct = f"http://127.0.0.1:{slow_port}/v1"
    via = f"http://127.0.0.1:{router_port}/v1"
    lines: list[str] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
            client = Client(http)
            for _ in range(300):  # warm-up: imports, pools, caches
                await client.chat(direct, CHAT)
                await client.chat(via, CHAT)
            idle_rss = rproc.memory_info().rss

            # c=1, interleaved pairs: the router's added latency.
            d1, r1 = [], []
            cpu0 = cpu_of(rproc)
            for _ in range(args.requests):
                d1.append(await client.chat(direct, CHAT))
                r1.append(await client.chat(via, CHAT))
            cpu_c1 = (cpu_of(rproc) - cpu0) * 1000 / args.requests
            add50 = statistics.median(r1) - statistics.median(d1)
            add99 = pct(r1, 0.99) - pct(d1, 0.99)

            # c=50: throughput and router CPU per request.
            dlat, dwall = await concurrently(args.requests, 50, lambda: client.chat(direct, CHAT))
            cpu0 = cpu_of(rproc)
            rlat, rwall = await concurrently(args.requests, 50, lambda: client.chat(via, CHAT))
            cpu_c50 = (cpu_of(rproc) - cpu0) * 1000 / args.requests
            add50_c50 = statistics.median(rlat) - statistics.median(dlat)
            add99_c50 = pct(rlat, 0.99) - pct(dlat, 0.99)
            rps, drps = args.requests / rwall, args.requests / dwall

            # Time to first chunk, c=1 interleaved.
            dt, rt = [], []
            for _ in range(args.requests // 3):
                dt.append((await client.stream(direct, "m"))[0])
                rt.append((await client.stream(via, "m"))[0])
            ttfc = statistics.median(rt) - statistics.median(dt)

            # Inter-chunk gaps of 50 concurrent streams (upstream paces 20 ms).
            async def gaps(base: str) -> list[float]:
                got = await asyncio.gather(*(client.stream(base, "m-slow") for _ in range(50)))
                return [g for _, gs in got for g in gs]

            gd = await gaps(slow_direct)
            gr = await gaps(via)
            rss = rproc.memory_info().rss
    finally:
        for proc in (router, fast, slow):
            proc.terminate()
            await proc.wait()

    lines += [
        f"machine: {os.cpu_count()} cores (shared with other work: wall-clock figures are noisy;"
        f" CPU per request is the stable one), python {sys.version.split()[0]},"
        f" load average {os.getloadavg()[0]:.1f}",
        f"requests per scenario: {args.requests}",
        "",
        f"start to /health 200 ........ {startup * 1000:7.0f} ms      target < 500 ms"
        f"   {verdict(startup < 0.5)}  (router CPU time until then: {startup_cpu * 1000:.0f} ms)",
        f"RSS idle / after runs ....... {idle_rss / 2**20:5.1f} / {rss / 2**20:.1f} MiB"
        f"   target < 50 MiB   {verdict(rss < 50 * 2**20)}",
        f"c=1  direct p50/p99 ......... {statistics.median(d1):6.3f} / {pct(d1, 0.99):6.3f} ms",
        f"c=1  router p50/p99 ......... {statistics.median(r1):6.3f} / {pct(r1, 0.99):6.3f} ms",
        f"c=1  added p50 .............. {add50:6.3f} ms     target < 1 ms   {verdict(add50 < 1)}",
        f"c=1  added p99 .............. {add99:6.3f} ms     target < 3 ms   {verdict(add99 < 3)}",
        f"c=1  router CPU/request ..... {cpu_c1:6.3f} ms",
        f"c=50 direct {drps:6.0f} req/s, p50/p99 {statistics.median(dlat):6.2f} / "
        f"{pct(dlat, 0.99):6.2f} ms",
        f"c=50 router {rps:6.0f} req/s, p50/p99 {statistics.median(rlat):6.2f} / "
        f"{pct(rlat, 0.99):6.2f} ms   target >= 1000 req/s   {verdict(rps >= 1000)}",
        f"c=50 added p50/p99 .......... {add50_c50:6.2f} / {add99_c50:6.2f} ms",
        f"c=50 router CPU/request ..... {cpu_c50:6.3f} ms     target <= 0.8 ms"
        f"   {verdict(cpu_c50 <= 0.8)}  (=> {1000 / cpu_c50:5.0f} req/s per core)",
        f"stream added time to first chunk (p50) {ttfc:6.3f} ms   target < 1 ms"
        f"   {verdict(ttfc < 1)}",
        f"50 streams, gaps direct p50/p99 {statistics.median(gd):5.1f} / {pct(gd, 0.99):5.1f} ms;"
        f" via router {statistics.median(gr):5.1f} / {pct(gr, 0.99):5.1f} ms (upstream: 20 ms)"
        f"   {verdict(abs(statistics.median(gr) - statistics.median(gd)) < 2)}",
        "for scale: a popular Python gateway adds ~21 ms per request, ~50 req/s on such a machine",
    ]
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
