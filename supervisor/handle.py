"""The running process of a child: spawned by us or adopted, and how its exit is learnt.

A process we spawned is our direct child: its exit is learnt from a pidfd (readable the moment
it exits) and its status collected with exactly one ``waitpid``; without pidfd support one
thread blocks in that ``waitpid``. An adopted process is not our child, so its status is
unknowable: a pidfd tells that it is gone, or, as the last resort, a psutil poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping

import psutil

from supervisor import process


class ProcessHandle:
    """One process of a child and its exit: ``exited`` resolves once, with the status set."""

    def __init__(
        self,
        *,
        pid: int,
        ps: psutil.Process | None,
        own_group: bool,
        started: float,
        wall: float,
        direct: bool,
        marker: str | None,
    ) -> None:
        self.pid = pid
        self.ps = ps
        self.own_group = own_group
        self.started = started  # loop time of the start (for uptime)
        self.wall = wall  # Unix time of the start (for display)
        self.direct = direct  # our child: its exit status is ours to collect
        self.marker = marker  # environment marker every descendant inherits
        self.create_time = ps.create_time() if ps is not None else None
        self.exit_code: int | None = None
        self.exit_signal: str | None = None
        self._loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = self._loop.create_future()
        self._pidfd: int | None = None
        self._poller: asyncio.Task[None] | None = None
        # Called once, synchronously, when the exit is learnt (``exited`` is resolved first):
        # the crash path runs from the pidfd callback itself, without waiting for a task.
        self.on_exit: Callable[[], None] | None = None

    # ------------------------------------------------------------------ creation

    @classmethod
    def start(
        cls,
        argv: tuple[str, ...],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        stdout: int,
        stderr: int,
        marker: str | None,
    ) -> ProcessHandle:
        """Start ``argv`` in a new session (its own process group) and watch it, synchronously.

        On the event loop's thread, on purpose: CPython's ``_posixsubprocess`` uses ``vfork``
        for these arguments (no preexec_fn, no uid/gid/groups change), so the call blocks only
        until the child has exec'ed (0.3 ms for a Python child), while a worker thread costs a
        wake-up each way and fights the loop for the GIL while the restart is under way.
        """
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            close_fds=True,
        )
        # The status is collected below (pidfd + waitpid); Popen must neither wait for it
        # later (its cleanup of unwaited children would steal the status) nor warn.
        popen.returncode = 0
        ps: psutil.Process | None
        try:
            ps = psutil.Process(popen.pid)
        except psutil.Error:
            ps = None  # already gone: the watch below still collects the status
        loop = asyncio.get_running_loop()
        handle = cls(
            pid=popen.pid,
            ps=ps,
            own_group=True,
            started=loop.time(),
            wall=time.time(),
            direct=True,
            marker=marker,
        )
        handle._watch()
        return handle

    @classmethod
    def adopt(cls, pid: int, create_time: float, marker_name: str) -> ProcessHandle | None:
        """Watch ``pid`` if it still runs with ``create_time`` (not a recycled pid), else None."""
        ps = process.same_process(pid, create_time)
        if ps is None:
            return None
        try:
            own_group = os.getpgid(pid) == pid
            marker = ps.environ().get(marker_name)
        except (ProcessLookupError, psutil.Error):
            return None
        loop = asyncio.get_running_loop()
        started_wall = ps.create_time()
        handle = cls(
            pid=pid,
            ps=ps,
            own_group=own_group,
            started=loop.time() - max(0.0, time.time() - started_wall),
            wall=started_wall,
            direct=False,
            marker=marker,
        )
        handle._watch()
        return handle

    # ------------------------------------------------------------------ watching

    def _watch(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self._pidfd = None
            if not self.direct:
                self._resolve()
                return
        except (AttributeError, OSError):
            self._pidfd = None
        if self._pidfd is not None:
            self._loop.add_reader(self._pidfd, self._on_pidfd)
        elif self.direct:
            threading.Thread(
                target=self._wait_blocking, name=f"wait-{self.pid}", daemon=True
            ).start()
        else:
            self._poller = self._loop.create_task(self._poll(), name=f"poll-{self.pid}")

    def _on_pidfd(self) -> None:
        if self.direct:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, -1  # reaped by someone else: status unknown
            if pid == 0:
                return  # not exited yet (a stop or continue woke us)
            self._set_status(status)
        self._resolve()

    def _wait_blocking(self) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = -1
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._finish_blocking, status)

    def _finish_blocking(self, status: int) -> None:
        self._set_status(status)
        self._resolve()

    async def _poll(self) -> None:
        # psutil gives no exit notification for a process that is not our child.
        while True:
            if self.ps is None or not process.alive(self.ps):
                break
            await asyncio.sleep(process.TREE_POLL)
        self._resolve()

    def _set_status(self, status: int) -> None:
        if status < 0:
            return
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            self.exit_signal = process.signal_name(-code)
        else:
            self.exit_code = code

    def _resolve(self) -> None:
        on_exit, self.on_exit = self.on_exit, None
        self.close()
        if self.exited.done():
            return
        self.exited.set_result(None)
        if on_exit is not None:
            on_exit()

    def close(self) -> None:
        """Stop watching (the exit, if it comes later, is no longer reported)."""
        self.on_exit = None
        if self._pidfd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._poller is not None and self._poller is not asyncio.current_task():
            self._poller.cancel()
            self._poller = None

    def __repr__(self) -> str:
        return f"<ProcessHandle pid={self.pid} direct={self.direct}>"
