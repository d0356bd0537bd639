"""What one supervised child holds (state, run, policy, output, sampler) and its read-only view."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

from supervisor import tree
from supervisor.events import ChildStatus, ExitInfo, LogLine, ProcessExit, iso_utc
from supervisor.listeners import Listeners
from supervisor.output import OutputBuffer
from supervisor.policy import RestartPolicy
from supervisor.run import Run
from supervisor.sampler import StatsSampler
from supervisor.spec import ChildSpec
from supervisor.states import ChildState

_T = TypeVar("_T")
S = ChildState
SWEEP_DEFER = 1.0  # longest wait of a crashed run's sweep for the next run to get ready
SETTLED = (S.RUNNING, S.BACKOFF, S.FAILED, S.STOPPING, S.STOPPED)


class ChildBase(Listeners):
    """Hold one child's state and parts, and give the read-only view of them.

    ``ChildProcess`` is the only writer; ``restarts`` counts automatic restarts after a failure
    plus explicit ``restart()`` calls, for the daemon's lifetime.
    """

    def __init__(
        self,
        spec: ChildSpec,
        *,
        rng: random.Random | None = None,
        stats_interval: float = 1.0,
        markers: tree.MarkerSource | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self._log = structlog.stdlib.get_logger(__name__).bind(child=spec.name)
        self._policy = RestartPolicy(
            base=spec.backoff_base,
            factor=spec.backoff_factor,
            cap=spec.backoff_cap,
            jitter=spec.backoff_jitter,
            stable_uptime=spec.stable_uptime,
            crash_limit=spec.crash_limit,
            crash_window=spec.crash_window,
            rng=rng,
        )
        self._markers = markers or tree.MarkerSource()
        self._sampler = StatsSampler(stats_interval)
        self._output = OutputBuffer(spec.name, spec.log_lines, self._emit_line)
        self._state = S.STOPPED
        self._reason: str | None = None
        self._pid: int | None = None  # pid the next event is about (the live or just-ended run)
        self._run: Run | None = None
        self._restarts = 0
        self._last_exit: ExitInfo | None = None
        self._healthy = False
        self._running_since: float | None = None
        self._ready_after: float | None = None  # spawn -> ready of the last spawned run
        self._manual_stop = False
        self._detached = False  # after detach() the process belongs to the next daemon
        self._waiters: list[tuple[frozenset[ChildState], asyncio.Future[ChildState]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cleanups: set[asyncio.Task[None]] = set()  # ended runs whose trees are being swept
        self._launch_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._backoff_task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ read-only view

    @property
    def name(self) -> str:
        """Return the child's name."""
        return self.spec.name

    @property
    def state(self) -> ChildState:
        """Return the current lifecycle state."""
        return self._state

    @property
    def pid(self) -> int | None:
        """Return the pid of the live process, if any."""
        return self._run.pid if self._run is not None else None

    @property
    def restarts(self) -> int:
        """Return how many times the child was restarted (automatically or explicitly)."""
        return self._restarts

    @property
    def last_exit(self) -> ExitInfo | None:
        """Return how the last process ended, if one did."""
        return self._last_exit

    @property
    def reason(self) -> str | None:
        """Return why the last transition happened."""
        return self._reason

    @property
    def healthy(self) -> bool:
        """Return True when running and the last probe passed."""
        return self._state is S.RUNNING and self._healthy

    def status(self) -> ChildStatus:
        """Return the frozen status as of now, with the last sampled CPU/memory (no sampling)."""
        run = self._run
        figures = self._sampler if run is not None else None
        return ChildStatus(
            port=self.spec.port,
            state=self._state,
            pid=run.pid if run is not None else None,
            healthy=self.healthy,
            restarts=self._restarts,
            started=run.handle.started if run is not None else None,
            started_at=iso_utc(run.handle.wall) if run is not None else None,
            last_exit=self._last_exit,
            reason=self._reason,
            cpu=figures.cpu if figures is not None else 0.0,
            memory=figures.memory if figures is not None else 0,
        )

    def stats(self) -> dict[str, Any]:
        """Return ``{cpu, memory}`` of the child and its descendants (sampled ≤ once/interval)."""
        run = self._run
        if run is None:
            self._sampler.reset()
        else:
            run.tree.update(self._sampler.sample(run.handle.ps, asyncio.get_running_loop().time()))
        return self._sampler.figures()

    def snapshot(self) -> dict[str, Any]:
        """Return the per-child status detail of events.md, sampled now (for GET)."""
        self.stats()
        return self.status().as_dict(asyncio.get_running_loop().time())

    def logs(self, lines: int = 200) -> list[dict[str, Any]]:
        """Return up to ``lines`` recent output lines, oldest first, as ``{ts, stream, line}``."""
        return self._output.recent(lines)

    def owned_pids(self) -> set[int] | None:
        """Return the pids whose exit status is this child's handle's.

        Never None (that would make the reaper wait): a spawn runs without an await, so the
        loop never sees a pid that is not recorded yet.
        """
        return {self._run.pid} if self._run is not None and self._run.handle.direct else set()

    async def wait_for_state(self, *states: ChildState, timeout: float | None = None) -> ChildState:
        """Wait until the child is in one of ``states``; return it (TimeoutError on timeout)."""
        if self._state in states:
            return self._state
        future: asyncio.Future[ChildState] = asyncio.get_running_loop().create_future()
        entry = (frozenset(states), future)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def _resolve_waiters(self, new: ChildState) -> None:
        for entry in list(self._waiters):
            states, future = entry
            if new in states:
                self._waiters.remove(entry)
                if not future.done():
                    future.set_result(new)

    # ------------------------------------------------------------------ helpers

    async def _sweep(self, run: Run, *, after_start: bool) -> None:
        """After a crash: kill every escaped descendant, let the output drain, report the exit.

        ``after_start``: first let the new run get ready (at most SWEEP_DEFER seconds).
        """
        if after_start:
            with contextlib.suppress(TimeoutError):
                await self.wait_for_state(*SETTLED, timeout=SWEEP_DEFER)
        await run.kill_leftovers()
        await run.drain()
        self._finish_run(run, expected=False)

    def _finish_run(self, run: Run, *, expected: bool) -> None:
        """Forget the run and tell exit listeners, once."""
        if self._run is run:
            self._run = None
        run.close()
        if run.reported:
            return
        run.reported = True
        h = run.handle
        loop = asyncio.get_running_loop()
        self.notify_exit(ProcessExit(self.name, run.pid, h.exit_code, h.exit_signal, expected,
                                     loop.time(), time.time()))  # fmt: skip

    def _emit_line(self, entry: LogLine) -> None:
        self._log.info("child_output", stream=entry.stream, line=entry.line)
        self.notify_log(entry)

    def _spawn(self, coro: Coroutine[Any, Any, _T], what: str) -> asyncio.Task[_T]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log.error("child_task_failed", task=task.get_name(), exc_info=exc)

    @staticmethod
    def _cancel(task: asyncio.Task[Any] | None) -> None:
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
