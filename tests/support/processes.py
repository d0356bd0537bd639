"""Ports and processes: the one ``free_port`` and the one leak check of the suite."""

from __future__ import annotations

import socket
import time

import psutil

LEAK_GRACE_S = 3.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(proc: psutil.Process) -> bool:
    """Return True if the process runs (a zombie counts as gone)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def live_descendants() -> list[psutil.Process]:
    """Return every running descendant of this test process."""
    return [p for p in psutil.Process().children(recursive=True) if alive(p)]


def _describe(proc: psutil.Process) -> tuple[int, list[str] | str]:
    try:
        return proc.pid, proc.cmdline()
    except psutil.Error:
        return proc.pid, "?"


def assert_no_leaked_processes(grace: float = LEAK_GRACE_S) -> None:
    """Fail when a process started by the test still runs after ``grace`` seconds.

    Polled rather than waited for: reaping is the business of whoever started the process
    (asyncio's child watcher, the supervisor), and this check must not take it from them.
    """
    deadline = time.monotonic() + grace
    left = live_descendants()
    while left and time.monotonic() < deadline:
        time.sleep(0.02)  # deadline poll, not a sleep-then-assert
        left = live_descendants()
    assert not left, f"leaked processes: {[_describe(p) for p in left]}"
