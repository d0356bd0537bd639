"""Benchmark Socket.IO event delivery of a live daemon to 1, 100, 500 and 1000 websocket clients.

Starts the daemon as a real process (temporary database, free port on 127.0.0.1, log level
warning) and client worker processes. The clients are raw Engine.IO v4 / Socket.IO v5 websocket
clients written on asyncio protocols (no task per client, no per-message await), so the client
side costs a few microseconds per message and is not what gets measured. Clock: the monotonic
clock is system-wide on Linux, so receipt times of the workers compare with the 2xx times of the
writer here.

For every client count it prints:
- latency from a write's 2xx response (as seen by the writer) to receipt at every client:
  p50, p99, max over all (event, client) pairs, and the latency of the *last* client per event
  (p50, max) — the figure the issue's target is about;
- sustained events/s: back-to-back writes (each waits for the previous 2xx), counted until the
  last client received the last event;
- the daemon's RSS per connected client, and its CPU time per event.
It asserts nothing about timing.

Usage: .venv/bin/python bench/events.py [--clients 1,100,500,1000] [--latency-writes 40]
       [--burst-writes 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from figures import free_port, pct

# -- the worker: many raw Socket.IO websocket clients in one process ---------------------------

EVENT_PREFIX = b'42["models:updated"'
STATUS_PREFIX = b'42["proxy:status"'


class Receipts:
    """Receipt times per seq, shared by all clients of one worker."""

    def __init__(self) -> None:
        self.by_seq: dict[int, list[float]] = {}
        self.greeted = 0
        self.waiters: list[tuple[int, int, asyncio.Future[None]]] = []

    def record(self, seq: int, t: float) -> None:
        times = self.by_seq.get(seq)
        if times is None:
            times = self.by_seq[seq] = []
        times.append(t)
        if self.waiters:
            for item in list(self.waiters):
                want_seq, count, fut = item
                if want_seq == seq and len(times) >= count and not fut.done():
                    fut.set_result(None)
                    self.waiters.remove(item)


def _seq_of(payload: bytes) -> int:
    i = payload.rfind(b'"seq":') + 6
    j = i
    while payload[j : j + 1].isdigit():
        j += 1
    return int(payload[i:j])


class RawClient(asyncio.Protocol):
    """A minimal Socket.IO-over-websocket client: connect, answer pings, time events."""

    def __init__(self, host: str, port: int, receipts: Receipts) -> None:
        self.host, self.port = host, port
        self.receipts = receipts
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.inflate: Any = None  # set when the server accepted permessage-deflate
        self.greeted: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                # Offered like browsers and Node's ws do; the server may decline it.
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.greeted.done():
            self.greeted.set_exception(ConnectionError(f"connection lost: {exc}"))

    def send_text(self, data: bytes) -> None:
        assert self.transport is not None
        assert len(data) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.transport.write(bytes((0x81, 0x80 | len(data))) + mask + masked)

    def data_received(self, data: bytes) -> None:
        t = time.perf_counter()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[: buf.find(b"\r\n")]:
                self.greeted.set_exception(ConnectionError(bytes(buf[:200]).decode()))
                return
            if b"permessage-deflate" in buf[:end].lower():
                self.inflate = zlib.decompressobj(-15)
            del buf[: end + 4]
            self.upgraded = True
        while len(buf) >= 2:
            size = buf[1] & 0x7F
            offset = 2
            if size == 126:
                if len(buf) < 4:
                    return
                size, offset = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size, offset = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < offset + size:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[offset : offset + size])
            if buf[0] & 0x40 and self.inflate is not None:  # a compressed message
                payload = self.inflate.decompress(payload + b"\x00\x00\xff\xff")
            del buf[: offset + size]
            if opcode == 0x1:
                self.on_message(payload, t)

    def on_message(self, payload: bytes, t: float) -> None:
        if payload.startswith(EVENT_PREFIX):
            self.receipts.record(_seq_of(payload), t)
        elif payload == b"2":
            self.send_text(b"3")
        elif payload.startswith(STATUS_PREFIX):
            if not self.greeted.done():
                self.receipts.greeted += 1
                self.greeted.set_result(None)
        elif payload.startswith(b"0{"):
            self.send_text(b"40")  # Engine.IO open → Socket.IO connect to "/"
        elif payload.startswith(b"44"):
            self.greeted.set_exception(ConnectionError(payload.decode()))


async def worker_main(host: str, port: int) -> None:
    """Serve commands from the bench on stdin (one JSON per line), answer on stdout."""
    loop = asyncio.get_running_loop()
    receipts = Receipts()
    clients: list[RawClient] = []
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def open_one() -> None:
        _, client = await loop.create_connection(
            lambda: RawClient(host, port, receipts), host, port
        )
        clients.append(client)
        await asyncio.wait_for(client.greeted, 30)

    def reply(obj: Any) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "connect":
            todo = int(cmd["n"])
            while todo > 0:
                batch = min(todo, 50)
                await asyncio.gather(*(open_one() for _ in range(batch)))
                todo -= batch
            reply({"clients": len(clients)})
        elif cmd["cmd"] == "wait":
            seq, count = int(cmd["seq"]), len(clients)
            if len(receipts.by_seq.get(seq, ())) < count:
                fut: asyncio.Future[None] = loop.create_future()
                receipts.waiters.append((seq, count, fut))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fut, float(cmd.get("timeout", 30)))
            reply({"received": len(receipts.by_seq.get(seq, ()))})
        elif cmd["cmd"] == "collect":
            reply({"receipts": receipts.by_seq})
            receipts.by_seq = {}
        elif cmd["cmd"] == "quit":
            for client in clients:
                if client.transport is not None:
                    client.transport.close()
            reply({"bye": True})
            return


# -- the bench ---------------------------------------------------------------------------------


class Worker:
    """One client worker process, driven by JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.clients = 0

    async def call(self, **cmd: Any) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("client worker exited")
        return json.loads(line)


async def wait_healthy(http: aiohttp.ClientSession, url: str, timeout: float = 15.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            async with http.get(url + "/api/health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.01)
    raise RuntimeError(f"{url} did not become healthy")


async def bench(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1000 sockets each side
    tmp = tempfile.mkdtemp(prefix="bench-events-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": tmp,
        "API_PORT": str(port),
        "DATABASE_PATH": str(Path(tmp) / "bench.db"),
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
        "QWEN_PROXY_PORT": str(free_port()),
        "PROVIDER_ROUTER_PORT": str(free_port()),
    }
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "apiserver", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    workers: list[Worker] = []
    rows: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, url)
            dproc = psutil.Process(daemon.pid)
            for _ in range(args.workers):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--worker", "127.0.0.1", str(port),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**28,
                )  # fmt: skip
                workers.append(Worker(proc))

            async def write(i: int) -> float:
                """Rename the bench model; return the time its 2xx arrived."""
                async with http.put(
                    f"{url}/api/models/bench-model", json={"name": f"Bench model {i}"}
                ) as resp:
                    t = time.perf_counter()
                    await resp.read()
                    assert resp.status == 200, resp.status
                    return t

            async with http.post(
                f"{url}/api/models", json={"id": "bench-model", "name": "Bench model"}
            ) as resp:
                assert resp.status == 201, resp.status
            for i in range(100):  # warm up the daemon's code paths and caches
                await write(i)

            async def last_seq() -> int:
                async with http.get(url + "/api/events/stats") as resp:
                    return int((await resp.json())["lastSeq"])

            async def wait_all(seq: int) -> int:
                replies = await asyncio.gather(*(w.call(cmd="wait", seq=seq) for w in workers))
                return sum(int(r["received"]) for r in replies)

            async def collect() -> dict[int, list[float]]:
                merged: dict[int, list[float]] = {}
                for w in workers:
                    for seq, times in (await w.call(cmd="collect"))["receipts"].items():
                        merged.setdefault(int(seq), []).extend(times)
                return merged

            await asyncio.sleep(0.2)
            rss0 = dproc.memory_info().rss
            connected = 0
            for n in args.clients:
                # Spread the new clients over the workers.
                add = n - connected
                for k, w in enumerate(workers):
                    share = add // len(workers) + (1 if k < add % len(workers) else 0)
                    if share:
                        w.clients = (await w.call(cmd="connect", n=share))["clients"]
                connected = n
                await asyncio.sleep(0.3)
                rss = dproc.memory_info().rss
                await collect()

                # 1) latency: spaced writes, each delivered before the next is made
                sent: dict[int, float] = {}
                seq = await last_seq()
                for i in range(args.latency_writes):
                    t = await write(1000 + i)
                    seq += 1  # only the bench writes
                    got = await wait_all(seq)
                    if got < n:
                        print(f"  ! seq {seq}: {got}/{n} clients received it", file=sys.stderr)
                    sent[seq] = t
                receipts = await collect()
                every: list[float] = []
                last: list[float] = []
                for seq, t0 in sent.items():
                    lat = [(t - t0) * 1000 for t in receipts.get(seq, [])]
                    every.extend(lat)
                    if lat:
                        last.append(max(lat))

                # 2) throughput: back-to-back writes, until the last client has the last event
                cpu0 = sum(dproc.cpu_times()[:2])
                first_seq = await last_seq() + 1
                t_start = time.perf_counter()
                for i in range(args.burst_writes):
                    await write(5000 + i)
                t_written = time.perf_counter()
                final_seq = first_seq + args.burst_writes - 1
                got = await wait_all(final_seq)
                burst = await collect()
                cpu = sum(dproc.cpu_times()[:2]) - cpu0
                t_end = max(burst.get(final_seq, [time.perf_counter()]))
                missing = sum(n - len(burst.get(s, [])) for s in range(first_seq, final_seq + 1))
                eps = args.burst_writes / (t_end - t_start)
                rows.append(
                    f"{n:>5} clients | 2xx→receipt all: p50 {statistics.median(every):6.2f}  "
                    f"p99 {pct(every, 0.99):6.2f}  max {max(every):7.2f} ms | last client: "
                    f"p50 {statistics.median(last):6.2f}  max {max(last):7.2f} ms | "
                    f"{eps:6.0f} events/s (writes {args.burst_writes / (t_written - t_start):5.0f}"
                    f"/s{'' if not missing else f', {missing} receipts missing'}) | "
                    f"daemon cpu {cpu * 1000 / args.burst_writes:5.2f} ms/event | "
                    f"rss/client {(rss - rss0) / n / 1024:6.1f} KiB"
                )
                print(rows[-1], flush=True)
                if got < n:
                    print(f"  ! last burst event reached {got}/{n} clients", file=sys.stderr)
    finally:
        for w in workers:
            try:
                async with asyncio.timeout(5):
                    await w.call(cmd="quit")
                    await w.proc.wait()
            except (TimeoutError, RuntimeError):
                w.proc.kill()
                await w.proc.wait()
        daemon.terminate()
        await daemon.wait()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    print()
    print(
        f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}; "
        f"{args.workers} client worker processes; event = models:updated (PUT /api/models/…)"
    )
    for row in rows:
        print(row)
    print("target (issue 3) at 500 clients: last client p50 <= 25 ms, >= 60 events/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,100,500,1000")
    parser.add_argument("--latency-writes", type=int, default=40)
    parser.add_argument("--burst-writes", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker", nargs=2, metavar=("HOST", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker_main(args.worker[0], int(args.worker[1])))
        return
    args.clients = sorted(int(c) for c in args.clients.split(","))
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
