"""Benchmark crash recovery of a live daemon, per kind of child, and its idle cost.

Runs the daemon as a real process (temporary database, free ports on 127.0.0.1, log level
warning) once per kind of child: a fake that sends ``READY=1`` on its ``NOTIFY_SOCKET``
(``tests/fakes/notify_ready.py``), a fake that never notifies and is found ready by the
``/health`` probe (``tests/fakes/ready_then_wait.py``), and, with ``--children real`` (or
``auto`` when importable), the real ``python -m qwen_proxy`` / ``python -m provider_router``.
A python-socketio client (websocket) stays connected throughout. Per kind:

- the child's own start-up, measured outside the daemon: spawn -> first output line, the
  median of ``--startups`` runs (the baseline of "running again");
- SIGKILLs the running qwen-proxy child N times (default 20). Before each kill it waits
  CHILD_STABLE_UPTIME (default 0.5 s) after the child is running again, so every crash is "the
  first crash after a stable run", which restarts without delay. From ``os.kill``
  (time.perf_counter, the client's clock) it measures:
    * SIGKILL -> ``proxy:status`` with qwen-proxy ``backoff`` received by the client;
    * SIGKILL -> ``proxy:status`` with qwen-proxy ``running`` received (running again);
    * SIGKILL -> serving again: that event received *and* ``GET /health`` answered 200;
  and prints p50, p99 and max of each in ms, and running-again minus start-up.
- Optionally (``--idle-seconds``, default 0 = skip) the daemon's CPU and RSS over an idle
  period with both children running and the client connected (last kind only).

It prints the figures beside the issue's targets and asserts nothing about timing. The machine
may be shared: wall-clock figures then include other processes' load.

Usage: .venv/bin/python bench/crash.py [--kills 20] [--startups 10] [--idle-seconds 0]
       [--stable-uptime 0.5] [--children auto|fake|real]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import socketio
from figures import free_port, pct

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "tests" / "fakes"
NOTIFYING = FAKES / "notify_ready.py"
POLLED = FAKES / "ready_then_wait.py"
MiB = 1024 * 1024


def row(name: str, values_s: list[float], target: str) -> str:
    ms = [v * 1000 for v in values_s]
    return (
        f"  {name:<47} p50 {pct(ms, 0.5):8.1f}  p99 {pct(ms, 0.99):8.1f}  "
        f"max {max(ms):8.1f} ms   (target: {target})"
    )


def child_kinds(kind: str) -> list[tuple[str, list[str], list[str]]]:
    """Return (label, qwen-proxy argv, provider-router argv) for each kind of child to run."""
    kinds = []
    for label, script in (("fake, sends READY=1", NOTIFYING), ("fake, /health only", POLLED)):
        argv = [sys.executable, "-u", str(script)]
        kinds.append((f"{label} ({script.relative_to(ROOT)})", argv, argv))
    real = all(importlib.util.find_spec(m) is not None for m in ("qwen_proxy", "provider_router"))
    if kind == "real" and not real:
        raise SystemExit("--children real: qwen_proxy / provider_router are not importable")
    if kind == "real" or (kind == "auto" and real):
        kinds.append(
            (
                "real (python -m qwen_proxy, python -m provider_router)",
                [sys.executable, "-m", "qwen_proxy"],
                [sys.executable, "-m", "provider_router"],
            )
        )
    return kinds


async def startup_time(argv: list[str], env: dict[str, str]) -> float:
    """Return spawn -> first output line of ``argv`` run by this process (its own start-up)."""
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(15):
            await proc.stdout.readline()
        return time.perf_counter() - t0
    finally:
        proc.kill()
        await proc.wait()


class StatusFeed:
    """``proxy:status`` events as (receive time, payload), in arrival order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    def on_status(self, data: dict[str, Any]) -> None:
        self.queue.put_nowait((time.perf_counter(), data))

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def until(self, predicate: Any, timeout: float = 15.0) -> tuple[float, dict[str, Any]]:
        """Return the first event from now on whose payload satisfies ``predicate``."""
        async with asyncio.timeout(timeout):
            while True:
                at, data = await self.queue.get()
                if predicate(data):
                    return at, data


async def wait_until_ok(http: aiohttp.ClientSession, url: str, timeout: float = 15.0) -> float:
    """Poll ``url`` until it answers 200; return the perf_counter time it did."""
    deadline = time.perf_counter() + timeout
    while True:
        try:
            async with http.get(url) as resp:
                if resp.status == 200:
                    return time.perf_counter()
        except aiohttp.ClientError:
            pass
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout} s")
        await asyncio.sleep(0.002)


async def start_daemon(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "apiserver",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def stop_daemon(daemon: asyncio.subprocess.Process) -> None:
    if daemon.returncode is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await daemon.wait()
        except TimeoutError:
            daemon.kill()
            await daemon.wait()


async def bench(args: argparse.Namespace) -> None:
    kinds = child_kinds(args.children)
    print("machine may be shared with other work: wall-clock figures include its load")
    for n, (label, qwen_argv, router_argv) in enumerate(kinds):
        idle = args.idle_seconds if n == len(kinds) - 1 else 0.0
        await crash_round(args, label, qwen_argv, router_argv, idle)


async def crash_round(
    args: argparse.Namespace, label: str, qwen_argv: list[str], router_argv: list[str], idle: float
) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-crash-")
    port = free_port()
    qwen_port, router_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    base_env = {"PATH": os.environ.get("PATH", ""), "HOME": tmp}
    startups = [
        await startup_time(qwen_argv, {**base_env, "PORT": str(free_port()), "HOST": "127.0.0.1"})
        for _ in range(args.startups)
    ]
    env = {
        **base_env,
        "API_PORT": str(port),
        "API_HOST": "127.0.0.1",
        "DATABASE_PATH": str(Path(tmp) / "bench.db"),
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
        "QWEN_PROXY_PORT": str(qwen_port),
        "PROVIDER_ROUTER_PORT": str(router_port),
        "QWEN_PROXY_COMMAND": shlex.join(qwen_argv),
        "PROVIDER_ROUTER_COMMAND": shlex.join(router_argv),
        "CHILD_STABLE_UPTIME": str(args.stable_uptime),
    }
    feed = StatusFeed()
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    sio.on("proxy:status", feed.on_status)
    daemon = await start_daemon(env)
    to_event: list[float] = []
    to_starting: list[float] = []
    to_running: list[float] = []
    to_serving: list[float] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await wait_until_ok(http, f"{url}/api/health")
            dproc = psutil.Process(daemon.pid)
            await sio.connect(url, transports=["websocket"], wait_timeout=10)
            async with http.post(f"{url}/api/proxy/start") as resp:
                body = await resp.json()
            if body.get("status") != "running":
                raise RuntimeError(f"the children did not start: {json.dumps(body)[:500]}")
            health = f"http://127.0.0.1:{qwen_port}/health"
            qwen = body["qwenProxy"]
            running_at = time.perf_counter()
            print(f"\nchildren: {label}")
            print(
                f"  daemon pid {daemon.pid}; {args.kills} SIGKILLs of qwen-proxy, each "
                f"{args.stable_uptime:g} s + 0.1 s after it runs again (CHILD_STABLE_UPTIME)"
            )
            cpu_before = dproc.cpu_times()
            for i in range(args.kills):
                # A stable run before each crash: the restart must not wait for a backoff.
                await asyncio.sleep(
                    max(0.0, running_at + args.stable_uptime + 0.1 - time.perf_counter())
                )
                old_pid = qwen["pid"]
                feed.drain()
                t0 = time.perf_counter()
                os.kill(old_pid, signal.SIGKILL)
                t_backoff, data = await feed.until(lambda d: d["qwenProxy"]["state"] != "running")
                state = data["qwenProxy"]["state"]
                if state != "backoff":
                    raise RuntimeError(f"kill {i + 1}: expected backoff, got {state}")
                t_starting, _ = await feed.until(lambda d: d["qwenProxy"]["state"] == "starting")
                t_running, data = await feed.until(
                    lambda d, old=old_pid: (
                        d["qwenProxy"]["state"] == "running" and d["qwenProxy"]["pid"] != old
                    )
                )
                t_serving = await wait_until_ok(http, health)
                to_event.append(t_backoff - t0)
                to_starting.append(t_starting - t0)
                to_running.append(t_running - t0)
                to_serving.append(t_serving - t0)
                qwen = data["qwenProxy"]
                running_at = t_running

            cpu_after = dproc.cpu_times()
            cpu_ms = (
                (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
            ) * 1000
            async with http.get(f"{url}/api/proxy/status") as resp:
                body = await resp.json()
            restarts = body["qwenProxy"]["restarts"]
            startup = statistics.median(startups)
            print(f"  crash recovery over {args.kills} SIGKILLs (qwen-proxy restarts: {restarts})")
            print(row("child start-up alone (spawn -> first line)", startups, "baseline"))
            print(row("SIGKILL -> proxy:status backoff received", to_event,
                      "p50 <= 3 ms, p99 < 8 ms"))  # fmt: skip
            print(row("SIGKILL -> proxy:status starting received", to_starting, "-"))
            print(row("SIGKILL -> proxy:status running received", to_running,
                      "notifying: p50 <= start-up + 5 ms"))  # fmt: skip
            print(row("SIGKILL -> serving (running + GET /health 200)", to_serving, "-"))
            over = (pct(to_running, 0.5) - startup) * 1000
            print(f"  running again p50 - start-up p50: {over:+.1f} ms")
            print(f"  daemon CPU per crash cycle (crash, restart, events, probes): "
                  f"{cpu_ms / args.kills:.1f} ms")  # fmt: skip
            in_daemon = [r - s for r, s in zip(to_running, to_starting, strict=True)]
            print(row("start-up seen by the daemon (starting -> running)", in_daemon, "-"))
            if idle > 0:
                await measure_idle(dproc, idle)
    finally:
        with contextlib.suppress(Exception):
            await sio.disconnect()
        await stop_daemon(daemon)
        shutil.rmtree(tmp, ignore_errors=True)


async def measure_idle(dproc: psutil.Process, seconds: float) -> None:
    """Print the daemon's CPU and RSS over ``seconds`` of idling."""
    print(f"\n  idle for {seconds:g} s with both children running ...", flush=True)
    await asyncio.sleep(1.0)  # let the last requests and events settle
    rss: list[int] = []
    cpu0 = dproc.cpu_times()
    w0 = time.perf_counter()
    end = w0 + seconds
    while (now := time.perf_counter()) < end:
        rss.append(dproc.memory_info().rss)
        await asyncio.sleep(min(1.0, end - now))
    cpu1 = dproc.cpu_times()
    wall = time.perf_counter() - w0
    rss.append(dproc.memory_info().rss)
    busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")  # resolution of cpu_times
    print(
        f"  daemon CPU      {busy / wall * 100:8.3f} % of a core "
        f"({busy * 1000:.0f} ms CPU in {wall:.1f} s, resolution {tick_ms:.0f} ms)"
    )
    print(
        f"  daemon RSS      {rss[-1] / MiB:8.1f} MiB at the end, "
        f"mean {statistics.mean(rss) / MiB:.1f}, max {max(rss) / MiB:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of qwen-proxy")
    parser.add_argument(
        "--idle-seconds", type=float, default=0.0, help="idle measurement (0: skip)"
    )
    parser.add_argument("--startups", type=int, default=10, help="start-up baseline runs")
    parser.add_argument(
        "--stable-uptime",
        type=float,
        default=0.5,
        help="CHILD_STABLE_UPTIME given to the daemon; waited before every kill",
    )
    parser.add_argument(
        "--children",
        choices=("auto", "fake", "real"),
        default="auto",
        help="real children when importable (auto), or force one kind",
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
