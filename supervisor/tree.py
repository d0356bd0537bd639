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

    Only processes of our own user can be read (and signalled); the others raise an access
    error at once and are skipped. On Linux each process costs one read of its environment
    (the scan runs after every crash, while the next run starts: it should cost little CPU).
    """
    if not os.path.isdir("/proc/self"):
        return _marked_by_psutil(prefix)
    needle = f"{MARKER_ENV}={prefix}".encode()
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as file:  # noqa: PTH123
                environ = file.read()
        except OSError:
            continue
        if _carries(environ, needle):
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(int(entry.name)))
    return found


def _carries(environ: bytes, needle: bytes) -> bool:
    """Return True if the NUL-separated ``environ`` has ``needle`` then NUL, ``.`` or its end."""
    start = 0
    while (at := environ.find(needle, start)) != -1:
        end = at + len(needle)
        if (at == 0 or environ[at - 1] == 0) and environ[end : end + 1] in (b"", b"\0", b"."):
            return True
        start = at + 1
    return False


def _marked_by_psutil(prefix: str) -> list[psutil.Process]:
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
        count = self._reap_exited(owned)
        self.reaped += count
        return count

    def _reap_exited(self, owned: set[int]) -> int:
        """Reap the exited children ``waitid`` names, without listing every process.

        ``WNOWAIT`` tells which child exited while leaving it waitable, so a run's own exit is
        never taken from its handle; only when such an exit is first in line (its pidfd
        callback is due) do the ones behind it need the scan of our children (/proc).
        """
        waitid = getattr(os, "waitid", None)
        if waitid is None:
            return self._reap_by_scan(owned)
        count = 0
        while True:
            try:
                info = waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return count  # no children at all
            if info is None:
                return count  # none has exited
            if info.si_pid in owned:
                return count + self._reap_by_scan(owned)
            try:
                pid, _ = os.waitpid(info.si_pid, os.WNOHANG)
            except ChildProcessError:
                continue  # reaped meanwhile
            if pid == 0:
                return count  # not waitable after all: the next SIGCHLD tries again
            count += 1

    @staticmethod
    def _reap_by_scan(owned: set[int]) -> int:
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
        return count
