"""What every benchmark script here needs: a free loopback port, percentiles, a process' CPU time.

Imported by the scripts as a sibling module (``python bench/x.py`` puts ``bench/`` on sys.path).
"""

from __future__ import annotations

import socket

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
    """Return the CPU seconds (user + system) ``proc`` has used so far."""
    t = proc.cpu_times()
    return t.user + t.system
