"""What every benchmark script here needs: a free loopback port, percentiles, a process' CPU time.

Imported by the scripts as a sibling module (``python bench/x.py`` puts ``bench/`` on sys.path).
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import psutil


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    """Return the ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def cpu_of(proc: psutil.Process) -> float:
    """Return the CPU seconds ``proc`` has used so far, to the nanosecond where Linux tells.

    The sum of its threads' run time in ``/proc/<pid>/task/*/schedstat`` (the scheduler's own
    nanosecond clock). psutil's user + system time counts 10 ms ticks: a run of 0.1 s of CPU
    read ±10%, and so did a ratio of two such runs. Threads that ended are not counted (the
    programs measured here keep theirs); without schedstat, psutil's figure it is.
    """
    total = 0
    try:
        tasks = list(Path(f"/proc/{proc.pid}/task").iterdir())
        for task in tasks:
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        times = proc.cpu_times()
        return float(times.user + times.system)
    return total / 1e9
