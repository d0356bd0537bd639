"""Benchmark live events as users see them: the daemon (fast and supported paths) vs Node socket.io.

In one invocation, each server gets the same sequence of writes and the same clients. All
servers are up at once, each with its own client workers; the spaced writes of the latency
figures go to the servers in turn (which one goes first changes every round), so a change in
the load of a shared machine meets every server alike. Bursts run one server at a time while
the other servers' clients sit idle: the ``--burst`` creates of a client count are sent in
``--burst-rounds`` bursts per server (default 2 of 100), in ABBA order, so each server goes
first as often and each meets the same event sizes (its list grows by 100 per burst). One
burst per server, the daemon's always first, left the order's effect in every ratio.

- ``fast``: the daemon, ``SOCKETIO_FAST_PATH=on``; ``supported``: the daemon with ``off``
  (python-socketio's ``AsyncServer.emit``); ``node``: a stock Node socket.io 4.8 server
  (tests/js/reference-server.mjs) that answers the same writes with the same payloads.
- Clients: Node socket.io-client 4.x over websocket, in worker processes (tests/js/
  bench-worker.mjs); every event is decoded by socket.io-client before its receipt is timed.
- Payloads are the seed's: ``models:updated`` after ``POST /api/models`` (its ``items`` grow
  with every create, as they do for users) and ``providers:updated`` after enable/disable (a
  fixed-size event). The Node server starts with the daemon's own model and provider rows.
- Clock: CLOCK_MONOTONIC on both sides (Node ``process.hrtime``, Python ``monotonic_ns``),
  read *before* the write is sent; "last client" is the latest receipt of an event.

For each client count it prints, per server and as a ratio to Node's: last-client p50/p99 of
both events (spaced writes, each delivered before the next: 50 creates, whose events grow
as the burst's will, and 400 enables/disables: over 150 of them the fixed event's ratio of
p50s moved by up to 10% between runs (0.90-1.00x), and a p99 of 150 is their second-highest),
events/s in bursts of back-to-back creates (until the last client has the last event; over
all bursts, each burst's figure beside it), server CPU per event in the bursts, peak RSS
during them, and RSS after all clients left minus RSS before they came: once every client is
gone and the RSS held still for 2 s ("settled"), and again ``--later`` seconds after they
left (default 35: after the daemon's last follow-up heap trim, at 30 s).
It asserts nothing about timing. The machine may be shared: CPU per event is the stable figure.
With each burst it prints the CPU seconds its client workers used, and what the kernel's TCP
did meanwhile (machine-wide counters, only this server sending): segments sent again because
a receiver dropped them, and seconds under TCP memory pressure. At 1000 clients the receivers'
queues outgrow the kernel's TCP memory limit (``tcp_mem``); it then drops arriving segments,
and a client waiting for a resend (200 ms, doubling on every loss) can end a burst seconds
after the others: a burst whose server's sockets met more of that is slower for it.
It also counts what each daemon logged (warnings and errors, by event: a client dropped as
too slow shows there) and, for a server whose clients missed part of a burst, the share of
the burst that was delivered. Such a server finishes its burst sooner, with fewer clients to
serve: the burst ratio is then also given for the events delivered (events/s times the
share delivered, against the same for Node).
Interrupted (Ctrl-C or SIGTERM), it ends every process it started (daemon, Node server,
client workers) before it exits.

Usage: .venv/bin/python bench/events.py [--clients 500,1000] [--latency-writes 50]
       [--fixed-writes 400] [--burst 200] [--burst-rounds 2] [--workers 4]
       [--servers fast,supported,node] [--later 35]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import event_parts as parts
import psutil
from event_parts import Row, Server, Worker, format_row
from figures import cpu_of, free_port

ROOT = Path(__file__).resolve().parents[1]
JS_DIR = ROOT / "tests" / "js"
FIXED_PROVIDER = "lm-studio-default"


class Bench:
    """Run the same writes and clients against every server, all up at once.

    Each server has its own client workers. The spaced writes of the latency figures go to
    the servers in turn (the first one changing every round), so a change in the machine's
    load while the benchmark runs meets every server alike; the bursts run one server at a
    time, in ABBA order, while the other servers' clients sit idle.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.node = shutil.which("node") or "node"
        self.rows: list[Row] = []
        # MiB after clients left minus before they came: settled, and ``--later`` s after
        self.leave: dict[str, tuple[float, float | None]] = {}
        self.seed: dict[str, Any] = {}
        self.logged: dict[str, Counter[str]] = {}  # what each daemon logged, by event
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-events-"))
        self.started: list[asyncio.subprocess.Process] = []  # ended by ``end_all`` at exit

    async def spawn(self, *argv: str, **options: Any) -> asyncio.subprocess.Process:
        """Start a process this benchmark owns (so an interruption ends it too)."""
        proc = await asyncio.create_subprocess_exec(*argv, **options)
        self.started.append(proc)
        return proc

    def end_all(self) -> None:
        """Kill whatever this benchmark started and is still running (interrupted runs)."""
        for proc in self.started:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

    async def start_daemon(self, mode: str) -> tuple[asyncio.subprocess.Process, str]:
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.tmp),
            "API_PORT": str(port),
            "DATABASE_PATH": str(self.tmp / f"{mode}.db"),
            "LOG_LEVEL": "warning",
            "LOG_FORMAT": "json",
            "QWEN_PROXY_PORT": str(free_port()),
            "PROVIDER_ROUTER_PORT": str(free_port()),
            "SOCKETIO_FAST_PATH": "on" if mode == "fast" else "off",
        }
        with (self.tmp / f"{mode}.log").open("w") as log:  # the daemon keeps its own copy
            proc = await self.spawn(sys.executable, "-m", "apiserver", env=env, stdout=log)
        return proc, f"http://127.0.0.1:{port}"

    async def start_node(self) -> tuple[asyncio.subprocess.Process, str]:
        options = json.dumps({"port": free_port(), **self.seed})
        proc = await self.spawn(
            self.node, str(JS_DIR / "reference-server.mjs"), options,
            cwd=JS_DIR, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        port = json.loads(await proc.stdout.readline())["port"]
        return proc, f"http://127.0.0.1:{port}"

    async def run(self) -> None:
        # SIGTERM cancels the run like Ctrl-C does, so the cleanups below run either way.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1000 sockets per side
        servers: list[Server] = []
        try:
            async with aiohttp.ClientSession() as http:
                self.http = http
                # The daemons first: the Node reference starts with a daemon's rows.
                for name in sorted(self.args.servers, key=lambda n: n == "node"):
                    servers.append(await self.start_server(name))
                await self.measure(servers)
        finally:
            await self.stop(servers)
            self.end_all()
            self.logged = parts.read_logs(self.tmp, [s.name for s in servers if s.name != "node"])
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    async def start_server(self, name: str) -> Server:
        if name == "node":
            if not self.seed:
                raise SystemExit("the node reference needs a daemon server beside it")
            proc, url = await self.start_node()
        else:
            proc, url = await self.start_daemon(name)
        server = Server(name, proc, psutil.Process(proc.pid), url)
        await self.wait_up(url)
        if name != "node":  # the daemon runs the delivery path asked for
            async with self.http.get(url + "/api/events/stats") as resp:
                mode = (await resp.json())["mode"]
            assert mode == name, f"asked for {name}, the daemon uses {mode}"
            if not self.seed:
                await self.read_seed(url)
        for i in range(10):  # warm up the write and event paths
            await self.toggle(server, i)
        server.seq = await self.last_seq(server)
        server.rss_before = server.ps.memory_info().rss
        for _ in range(self.args.workers):
            wproc = await self.spawn(
                self.node, str(JS_DIR / "bench-worker.mjs"), json.dumps({"url": url}),
                cwd=JS_DIR, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                limit=2**28,
            )  # fmt: skip
            server.workers.append(Worker(wproc))
        return server

    async def measure(self, servers: list[Server]) -> None:
        connected = 0
        for n in self.args.clients:
            add = n - connected
            for server in servers:
                workers = server.workers
                await asyncio.gather(*(
                    w.call(cmd="connect", n=add // len(workers) + (k < add % len(workers)))
                    for k, w in enumerate(workers)
                ))  # fmt: skip
            connected = n
            rows = {server.name: Row(server.name, n) for server in servers}
            await self.latency(servers, rows)
            for r in range(self.args.burst_rounds):  # ABBA: each server bursts first as often
                for server in servers[:: -1 if r % 2 else 1]:
                    await self.burst(server, rows[server.name])
            for server in servers:
                rows[server.name].drops, server.drops = server.drops, Counter()
                self.rows.append(rows[server.name])
                print(format_row(rows[server.name]), flush=True)
        for server in servers:  # one server's clients leave, it settles, then the next
            await asyncio.gather(*(w.call(cmd="disconnect") for w in server.workers))
            server.left_at = time.monotonic()
            if server.name != "node":
                await self.wait_all_gone(server)
            settled = (await self.settled_rss(server.ps) - server.rss_before) / 2**20
            self.leave[server.name] = (settled, None)
        if self.args.later > 0:
            for server in servers:
                await asyncio.sleep(max(0.0, server.left_at + self.args.later - time.monotonic()))
                later = (server.ps.memory_info().rss - server.rss_before) / 2**20
                self.leave[server.name] = (self.leave[server.name][0], later)

    async def stop(self, servers: list[Server]) -> None:
        for server in servers:
            for w in server.workers:
                if w.proc.stdin is not None:
                    w.proc.stdin.close()
                try:
                    async with asyncio.timeout(5):
                        await w.proc.wait()
                except TimeoutError:
                    w.proc.kill()
                    await w.proc.wait()
            if server.proc.returncode is None:
                server.proc.terminate()
                await server.proc.wait()

    async def wait_up(self, url: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(url + "/api/events/stats") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{url} did not come up")

    async def read_seed(self, url: str) -> None:
        async with self.http.get(url + "/api/models") as resp:
            models = (await resp.json())["models"]
        async with self.http.get(url + "/api/providers") as resp:
            providers = (await resp.json())["providers"]
        self.seed = {"models": models, "providers": providers, "modelTemplate": models[0]}

    async def last_seq(self, server: Server) -> int:
        async with self.http.get(server.url + "/api/events/stats") as resp:
            return int((await resp.json())["lastSeq"])

    async def create(self, server: Server) -> int:
        """Create the next bench model; return the clock reading taken before sending."""
        server.counter += 1
        body = {"id": f"bench-model-{server.counter}", "name": f"Bench model {server.counter}"}
        t0 = time.monotonic_ns()
        async with self.http.post(server.url + "/api/models", json=body) as resp:
            await resp.read()
            assert resp.status == 201, resp.status
        server.seq += 1
        return t0

    async def toggle(self, server: Server, i: int) -> int:
        action = "disable" if i % 2 == 0 else "enable"
        t0 = time.monotonic_ns()
        async with self.http.post(f"{server.url}/api/providers/{FIXED_PROVIDER}/{action}") as r:
            await r.read()
            assert r.status == 200, r.status
        server.seq += 1
        return t0

    async def wait_all(self, server: Server, seq: int, timeout: float = 60) -> int:
        replies = await asyncio.gather(
            *(w.call(cmd="wait", seq=seq, timeout=timeout) for w in server.workers)
        )
        return sum(int(r["received"]) for r in replies)

    async def collect(self, server: Server) -> dict[int, list[int]]:
        merged: dict[int, list[int]] = {}
        for w in server.workers:
            answer = await w.call(cmd="collect")
            for seq, times in answer["receipts"].items():
                merged.setdefault(int(seq), []).extend(int(t) for t in times)
            server.drops.update(answer.get("drops", {}))
        return merged

    async def latency(self, servers: list[Server], rows: dict[str, Row]) -> None:
        """Spaced writes, each delivered to every client before the next, servers in turn."""
        for server in servers:
            await self.collect(server)
            server.seq = await self.last_seq(server)
        counts = {"models": self.args.latency_writes, "fixed": self.args.fixed_writes}
        for i in range(max(counts.values())):
            turn = i % len(servers)
            for kind in (k for k, n in counts.items() if i < n):
                for server in servers[turn:] + servers[:turn]:
                    row = rows[server.name]
                    t0 = await (self.create(server) if kind == "models" else self.toggle(server, i))
                    got = await self.wait_all(server, server.seq)
                    row.missing += row.clients - got
                    times = (await self.collect(server)).get(server.seq, [])
                    if times:
                        ms = (max(times) - t0) / 1e6
                        (row.models_last if kind == "models" else row.fixed_last).append(ms)

    async def burst(self, server: Server, row: Row) -> None:
        await self.collect(server)
        server.seq = await self.last_seq(server)
        first = server.seq + 1
        pid = server.ps.pid
        parts.peak_rss_reset(pid)
        clients = [psutil.Process(w.proc.pid) for w in server.workers]
        cpu0 = cpu_of(server.ps)
        clients_cpu0 = sum(map(cpu_of, clients))
        tcp0 = parts.tcp_counters()
        t_start = time.monotonic_ns()
        events = self.args.burst // self.args.burst_rounds
        for _ in range(events):
            await self.create(server)
        final = server.seq
        got = await self.wait_all(server, final, timeout=120)
        cpu = cpu_of(server.ps) - cpu0
        row.clients_cpu_s += sum(map(cpu_of, clients)) - clients_cpu0
        row.tcp.update({k: v - tcp0.get(k, 0) for k, v in parts.tcp_counters().items()})
        receipts = await self.collect(server)
        lost = sum(row.clients - len(receipts.get(s, [])) for s in range(first, final + 1))
        row.missing += lost
        t_end = max(receipts.get(final, [time.monotonic_ns()]))
        row.bursts.append(parts.Burst(events, (t_end - t_start) / 1e9, lost, cpu))
        row.peak_mib = max(row.peak_mib, parts.peak_rss(pid) / 2**20)
        if got < row.clients:
            print(f"  ! {row.server}: last burst event reached {got}/{row.clients}", flush=True)

    async def wait_all_gone(self, server: Server) -> None:
        """Wait (at most 20 s) until the daemon counts no connected client."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            async with self.http.get(server.url + "/api/events/stats") as resp:
                if (await resp.json())["clients"]["total"] == 0:
                    return
            await asyncio.sleep(0.1)

    async def settled_rss(self, proc: psutil.Process) -> int:
        """Return the RSS once it held still for 2 s (buffers freed and trimmed), within 20 s."""
        samples = [proc.memory_info().rss]
        for _ in range(40):
            await asyncio.sleep(0.5)
            samples.append(proc.memory_info().rss)
            recent = samples[-5:]
            if len(recent) == 5 and max(recent) - min(recent) < 256 * 1024:
                break
        return samples[-1]

    def summary(self) -> None:
        machine = (
            f"machine: {os.cpu_count()} cores (shared), python {sys.version.split()[0]}, node "
            f"{os.popen(f'{self.node} --version').read().strip()}; {self.args.workers} client "
            f"worker processes; {self.args.latency_writes} spaced creates, "
            f"{self.args.fixed_writes} spaced enable/disable; burst "
            f"of {self.args.burst} creates in {self.args.burst_rounds} bursts (ABBA)"
        )
        parts.print_summary(machine, self.rows, self.leave, self.logged, self.args.later)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="500,1000")
    parser.add_argument("--latency-writes", type=int, default=50)  # creates (models grow)
    parser.add_argument("--fixed-writes", type=int, default=400)  # toggles (fixed-size event)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--burst-rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--servers", default="fast,supported,node")
    parser.add_argument("--later", type=float, default=35.0)
    args = parser.parse_args()
    args.clients = sorted(int(c) for c in args.clients.split(","))
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if args.burst_rounds < 1 or args.burst % args.burst_rounds:
        parser.error("--burst must be a multiple of --burst-rounds (1 or more)")
    bench = Bench(args)
    try:
        asyncio.run(bench.run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        bench.end_all()  # in case the run was interrupted before its own cleanup
        print("interrupted: every process the benchmark started was ended", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    bench.summary()


if __name__ == "__main__":
    main()
