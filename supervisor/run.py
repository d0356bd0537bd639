"""One incarnation of a child: its process handle, output readers, notify socket and tree."""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Callable
from typing import BinaryIO

import psutil
import structlog

from supervisor import process, tree
from supervisor.handle import ProcessHandle
from supervisor.output import read_lines
from supervisor.readiness import NotifySocket
from supervisor.spec import ChildSpec

KILL_GRACE = 2.0  # how long SIGKILLed processes get to disappear before we give up and log
DRAIN = 0.2  # how long an ended run waits for its last output lines

_log = structlog.stdlib.get_logger(__name__)


class Run:
    """A spawned or adopted process of one child and everything that lives as long as it."""

    def __init__(self, handle: ProcessHandle) -> None:
        self.handle = handle
        self.pid = handle.pid
        self.kill_reason: str | None = None  # set when we killed it for a probe failure
        self.tree: dict[int, psutil.Process] = {}  # descendants seen so far (for cleanup)
        self.readers: list[asyncio.Task[None]] = []
        self.notify: NotifySocket | None = None
        self.reported = False  # exit listeners called

    @classmethod
    def start(
        cls,
        spec: ChildSpec,
        marker: str,
        on_line: Callable[[str, bytes], object],
        on_notify: Callable[[int | None, dict[str, str]], None],
    ) -> Run:
        """Spawn ``spec`` with its marker (and a NOTIFY_SOCKET) now; its output is read from now on.

        Synchronous (no await between a crash and the next exec): the pipes' readers wrap them
        in their own tasks, after the spawn.
        """
        env = {**spec.child_env(), tree.MARKER_ENV: marker}
        pipes = process.open_pipes()
        notify: NotifySocket | None = None
        try:
            if spec.notify:
                notify = NotifySocket(f"qwenstack/{marker}", on_notify)
                env["NOTIFY_SOCKET"] = notify.address
            handle = ProcessHandle.start(
                spec.argv, env=env, cwd=spec.cwd, stdout=pipes.out_w, stderr=pipes.err_w,
                marker=marker,
            )  # fmt: skip
        except BaseException:
            pipes.close_all()
            if notify is not None:
                notify.close()
            raise
        pipes.close_write_ends()
        run = cls(handle)
        run.notify = notify
        loop = asyncio.get_running_loop()
        for name, pipe in (("stdout", pipes.out), ("stderr", pipes.err)):
            task = loop.create_task(
                read_lines(name, pipe, on_line), name=f"{spec.name}:read-{name}"
            )
            # A reader cancelled before its first step never wrapped (nor closed) its pipe.
            task.add_done_callback(functools.partial(_close_pipe, pipe))
            run.readers.append(task)
        return run

    def sent_by_run(self, pid: int | None) -> bool:
        """Return True if a notification from ``pid`` comes from this run (None: unknown)."""
        return pid is None or pid == self.pid or carries(pid, self.handle.marker)

    async def everything_soon(self) -> list[psutil.Process]:
        """Return ``everything()``, scanned in a worker thread (the loop keeps delivering)."""
        return await asyncio.to_thread(self.everything)

    def everything(self) -> list[psutil.Process]:
        """Return the known descendants plus every live process carrying the run's marker."""
        found = dict(self.tree)
        if self.handle.marker is not None:
            found.update((p.pid, p) for p in tree.marked(self.handle.marker))
        found.pop(self.pid, None)
        return list(found.values())

    def signal_all(self, sig: signal.Signals, procs: list[psutil.Process]) -> None:
        """Signal the run's process group, then each of ``procs`` that escaped it."""
        h = self.handle
        process.signal_tree(h.pid, h.own_group, procs, sig, include_tree=True)

    async def kill_leftovers(self) -> None:
        """SIGKILL every descendant still alive (after a crash) and wait until they are gone."""
        leftovers = await self.everything_soon()
        if not leftovers:
            return
        self.signal_all(signal.SIGKILL, leftovers)
        _log.info("child_leftovers_killed", pid=self.pid, pids=sorted(p.pid for p in leftovers))
        deadline = asyncio.get_running_loop().time() + KILL_GRACE
        if not await process.wait_tree_gone(leftovers, deadline):
            _log.warning("child_tree_survived", pids=process.alive_pids(leftovers))

    async def drain(self) -> None:
        """Give the readers a moment to reach EOF (the last lines explain a crash)."""
        if self.readers:
            await asyncio.wait(self.readers, timeout=DRAIN)

    def close(self) -> None:
        """Stop watching the process and reading its output; release the notify socket."""
        self.handle.close()
        if self.notify is not None:
            self.notify.close()
        for task in self.readers:
            task.cancel()  # closes the read pipes; normally they already hit EOF


def _close_pipe(pipe: BinaryIO, _reader: asyncio.Task[None]) -> None:
    pipe.close()  # a no-op when the reader's transport already closed it


def carries(pid: int, marker: str | None) -> bool:
    """Return True if process ``pid`` carries the run marker ``marker`` (one of the run's)."""
    if marker is None:
        return False
    try:
        return psutil.Process(pid).environ().get(tree.MARKER_ENV) == marker
    except (psutil.Error, OSError):
        return False
