"""Every descendant of a child, even the ones that left its process group, and their reaping.

How descendants are found (and why this way):
- Each run gets an environment marker (``QWENSTACK_SUPERVISED_RUN=<owner>.<child>.<n>``) that
  every descendant inherits through fork and exec, whatever it does with sessions, groups or
  its parent: ``setsid`` and double forks keep it. Finding "all processes with this marker"
  therefore does not depend on having seen a short-lived intermediate parent, unlike walking
  the tree from the child (which loses a grandchild the moment its parent exits), and it tells
  the runs of different children, and of one child's successive runs, apart.
- Snapshots of the child's tree (psutil ``children(recursive=True)``, taken while sampling and
  before a stop) cover a descendant that scrubbed its environment while its parent still runs.
- On Linux the daemon is the child subreaper: escaped descendants are reparented to it instead
  of init. ``OrphanReaper`` collects their exit status so no zombie is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import itertools
import os
import secrets
import signal
import sys
from collections.abc import Callable, Iterable

import psutil

MARKER_ENV = "QWENSTACK_SUPERVISED_RUN"
_PR_SET_CHILD_SUBREAPER = 36


class MarkerSource:
    """Hand out run markers: one owner token per supervisor, a counter per run."""

    def __init__(self) -> None:
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._counter = itertools.count(1)

    def new(self, child: str) -> str:
        """Return a marker for the next run of ``child``."""
        return f"{self.owner}.{child}.{next(self._counter)}"


def marked(prefix: str) -> list[psutil.Process]:
    """Return every live process (but us) whose marker is ``prefix`` or starts with it + ``.``.

    Only processes of our own user can be read (and signalled); the others raise AccessDenied
    at once and are skipped.
    """
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            value = proc.environ().get(MARKER_ENV)
        except (psutil.Error, OSError):
            continue
        if value is not None and (value == prefix or value.startswith(prefix + ".")):
            found.append(proc)
    return found


def kill_all(procs: Iterable[psutil.Process], sig: signal.Signals) -> None:
    """Signal each process (psutil checks the create time: a recycled pid is never hit)."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def become_subreaper() -> bool:
    """Make this process the child subreaper (Linux); return whether it is one now."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class OrphanReaper:
    """Collect the exit status of reparented descendants (we are their subreaper).

    Only our direct children that are not a run's own process are reaped: a run's status
    belongs to its ``ProcessHandle`` (``owned`` returns those pids, or None while a spawn is
    under way and a new pid is not known yet), and ``waitpid(-1)`` would steal it. Reaping is
    coalesced and deferred a little, so a burst of SIGCHLDs costs one scan and never delays
    the crash -> event path.
    """

    DELAY = 0.05

    def __init__(self, owned: Callable[[], set[int] | None]) -> None:
        self._owned = owned
        self._scheduled = False
        self.reaped = 0

    def on_sigchld(self) -> None:
        """Schedule a reap (install as the SIGCHLD handler of the event loop)."""
        if self._scheduled:
            return
        self._scheduled = True
        asyncio.get_running_loop().call_later(self.DELAY, self.reap)

    def reap(self) -> int:
        """Reap every exited reparented descendant now; return how many."""
        self._scheduled = False
        owned = self._owned()
        if owned is None:  # a spawn is under way: its pid is not known yet
            self.on_sigchld()
            return 0
        try:
            children = psutil.Process().children()
        except psutil.Error:
            return 0
        count = 0
        for child in children:
            if child.pid in owned:
                continue
            with contextlib.suppress(ChildProcessError, OSError):
                pid, _ = os.waitpid(child.pid, os.WNOHANG)
                count += pid != 0
        self.reaped += count
        return count
