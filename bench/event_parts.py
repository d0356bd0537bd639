"""The parts of bench/events.py that hold no measuring logic.

The driver of a Node client worker, the records of a server under test and of one row of
figures, the kernel's peak-RSS mark and TCP counters, the daemons' logs, and the printed report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from figures import pct


def read_logs(folder: Path, names: list[str]) -> dict[str, Counter[str]]:
    """Count what each daemon ``folder/<name>.log`` holds (LOG_LEVEL=warning), by event."""
    logged: dict[str, Counter[str]] = {}
    for name in names:
        path = folder / f"{name}.log"
        if not path.exists():
            continue
        counts: Counter[str] = Counter()
        for line in path.read_text(errors="replace").splitlines():
            try:
                counts[str(json.loads(line).get("event", "?"))] += 1
            except ValueError:
                counts["(not JSON)"] += 1
        logged[name] = counts
    return logged


def tcp_counters() -> dict[str, int]:
    """Return the machine's TCP counters (``/proc/net/snmp`` and ``netstat``) by name.

    Machine-wide: read around a burst while only one server is sending, they tell what the
    kernel did meanwhile (segments sent again after the receiver dropped them, milliseconds
    under TCP memory pressure).
    """
    counters: dict[str, int] = {}
    for name in ("snmp", "netstat"):
        with contextlib.suppress(OSError):
            lines = Path(f"/proc/net/{name}").read_text().splitlines()
            for head, values in zip(lines[::2], lines[1::2], strict=False):
                prefix = head.split(":")[0]
                for key, value in zip(head.split()[1:], values.split()[1:], strict=False):
                    with contextlib.suppress(ValueError):
                        counters[f"{prefix}.{key}"] = int(value)
    return counters


def peak_rss_reset(pid: int) -> None:
    """Reset the kernel's peak-RSS mark of ``pid`` (Linux clear_refs 5), when allowed."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss(pid: int) -> int:
    """Return the peak RSS (VmHWM) of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class Worker:
    """One Node client worker, driven by JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(self, **cmd: Any) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("client worker exited")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"client worker: {answer['error']}")
        return answer


@dataclass(frozen=True)
class Burst:
    """One burst of ``events``: until every client had the last, receipts lost, server CPU."""

    events: int
    seconds: float
    lost: int
    cpu_s: float


@dataclass
class Row:
    """The figures of one server at one client count."""

    server: str
    clients: int
    models_last: list[float] = field(default_factory=list)  # ms, per write
    fixed_last: list[float] = field(default_factory=list)
    peak_mib: float = 0.0
    missing: int = 0
    drops: Counter[str] = field(default_factory=Counter)  # clients that lost their connection
    clients_cpu_s: float = 0.0  # CPU seconds the client workers used in the bursts
    tcp: Counter[str] = field(default_factory=Counter)  # the kernel's TCP counters, bursts' share
    bursts: list[Burst] = field(default_factory=list)  # in the order they ran

    @property
    def burst_eps(self) -> float:
        """Events per second over all this row's bursts."""
        seconds = sum(b.seconds for b in self.bursts)
        return sum(b.events for b in self.bursts) / seconds if seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        """The server's CPU milliseconds per event over all this row's bursts."""
        events = sum(b.events for b in self.bursts)
        return sum(b.cpu_s for b in self.bursts) * 1000 / events if events else 0.0

    @property
    def burst_delivered(self) -> float:
        """The share of the bursts' receipts that arrived."""
        expected = self.clients * sum(b.events for b in self.bursts)
        return 1 - sum(b.lost for b in self.bursts) / expected if expected else 1.0


@dataclass
class Server:
    """One server under test, its client workers and the writes it was sent."""

    name: str
    proc: asyncio.subprocess.Process
    ps: psutil.Process
    url: str
    workers: list[Worker] = field(default_factory=list)
    counter: int = 0  # bench models created so far
    seq: int = 0  # the last event seq it published
    rss_before: int = 0  # before any client came
    left_at: float = 0.0  # monotonic time its clients were told to leave
    drops: Counter[str] = field(default_factory=Counter)  # by socket.io-client's reason


def format_row(row: Row) -> str:
    """Return the printed line of one server at one client count."""
    missing = f" | {row.missing} receipts missing" if row.missing else ""
    if row.burst_delivered < 1:  # events/s then counts a burst that not everyone got
        missing += f" ({row.burst_delivered:.0%} of the burst's delivered)"
    if row.drops:
        why = ", ".join(f"{reason} x{n}" for reason, n in row.drops.most_common())
        missing += f" | clients dropped: {why}"
    resent, pressure = (
        row.tcp.get("Tcp.RetransSegs"),
        row.tcp.get("TcpExt.TCPMemoryPressuresChrono"),
    )
    kernel = ""
    if resent is not None and pressure is not None:
        kernel = (
            f" | tcp resent {resent / 1000:.1f}k segments, memory pressure {pressure / 1000:.1f} s"
        )
    each_eps = each_cpu = ""
    if len(row.bursts) > 1:  # each burst's, in the order they ran
        each_eps = " (" + ", ".join(f"{b.events / b.seconds:.1f}" for b in row.bursts) + ")"
        each_cpu = " (" + ", ".join(f"{b.cpu_s * 1000 / b.events:.1f}" for b in row.bursts) + ")"
    return (
        f"{row.server:>9} {row.clients:>5} clients | last client ms: models p50 "
        f"{statistics.median(row.models_last):7.1f} p99 {pct(row.models_last, 0.99):7.1f}, "
        f"fixed p50 {statistics.median(row.fixed_last):7.1f} p99 "
        f"{pct(row.fixed_last, 0.99):7.1f} | burst {row.burst_eps:6.1f} events/s{each_eps} | "
        f"cpu {row.cpu_ms:7.2f} ms/event{each_cpu} | peak rss {row.peak_mib:7.1f} MiB | "
        f"burst's clients cpu {row.clients_cpu_s:5.1f} s{kernel}{missing}"
    )


def print_summary(
    machine: str,
    rows: list[Row],
    leave: dict[str, tuple[float, float | None]],
    logged: dict[str, Counter[str]],
    later_s: float,
) -> None:
    """Print every row with its ratios to Node's, the RSS after leaving and the daemons' logs."""
    print()
    print(machine)
    ref = {r.clients: r for r in rows if r.server == "node"}
    for row in rows:
        print(format_row(row))
        base = ref.get(row.clients)
        if base is None or row.server == "node":
            continue
        delivered = ""
        if min(row.burst_delivered, base.burst_delivered) < 1:
            # A server whose clients were dropped finishes sooner with fewer clients: compare
            # the events each client got per second as well.
            share = row.burst_delivered / base.burst_delivered
            delivered = f" ({row.burst_eps * share / base.burst_eps:.2f}x of delivered events)"
        print(
            f"{'':>9} ratio to node | models p50 "
            f"{statistics.median(row.models_last) / statistics.median(base.models_last):5.2f}"
            f"x, fixed p50 "
            f"{statistics.median(row.fixed_last) / statistics.median(base.fixed_last):5.2f}x"
            f" | burst {row.burst_eps / base.burst_eps:5.2f}x{delivered} | cpu "
            f"{row.cpu_ms / base.cpu_ms:5.2f}x | peak rss {row.peak_mib / base.peak_mib:5.2f}x"
        )
    for server, (settled, later) in leave.items():
        after = f", {later:+7.1f} MiB {later_s:.0f} s after" if later is not None else ""
        print(
            f"{server:>9} rss after all clients left: {settled:+7.1f} MiB settled{after}"
            " (vs before they came)"
        )
    for server, counts in logged.items():  # e.g. a client dropped as too slow
        events = ", ".join(f"{event} x{n}" for event, n in counts.most_common())
        print(f"{server:>9} daemon log (warnings, errors): {events or 'nothing'}")
    print(
        "targets: last-client p50 <= node's; burst events/s >= node's; peak rss (bursts of "
        "200 events in all, 1000 clients) <= 1.5x node's; rss after leaving within 30 MiB"
    )
