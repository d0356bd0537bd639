"""Own one supervised child: the state machine, its commands, the exit watcher and the stop."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from supervisor import process, readiness, tree
from supervisor.base import ChildBase
from supervisor.events import ExitInfo, SpawnRecord, StatusEvent, iso_utc
from supervisor.handle import ProcessHandle
from supervisor.run import KILL_GRACE, Run
from supervisor.spec import ChildSpec
from supervisor.states import ALLOWED, ChildState, InvalidTransition

S = ChildState
_STDERR_TAIL = 3  # stderr lines quoted in a FAILED reason
HEALTH_PASSED = "health check passed"


class ChildProcess(ChildBase):
    """Own one supervised child: spawn, readiness, watch, restart with backoff, stop its tree.

    Every state change goes through ``_set_state``, the only writer of the state.
    """

    # ------------------------------------------------------------------ the state machine

    def _set_state(self, new: ChildState, *, reason: str, **exit_kw: Any) -> None:
        """Move to ``new``: the only writer of ``_state``; emits one event per real change."""
        old = self._state
        if new is old:
            return
        if new not in ALLOWED[old]:
            raise InvalidTransition(self.name, old, new)
        self._state = new
        self._reason = reason
        loop = asyncio.get_running_loop()
        event = StatusEvent(
            child=self.name,
            old=old,
            new=new,
            pid=self._pid,
            exit_code=exit_kw.get("exit_code"),
            exit_signal=exit_kw.get("exit_signal"),
            expected=exit_kw.get("expected"),
            reason=reason,
            at=loop.time(),
            wall=time.time(),
            status=self.status(),
        )
        self.notify_status(event)  # first: the event path carries nothing else before it
        self._log.info("child_state_changed", old=old.value, new=new.value, pid=event.pid,
                       reason=reason, **exit_kw)  # fmt: skip
        self._resolve_waiters(new)

    # ------------------------------------------------------------------ commands

    async def start(
        self, *, wait: bool = True, reason: str = "start requested", restart: bool = False
    ) -> ChildState:
        """Start the child (waits for a stop in progress); return the state it settles in.

        With ``wait`` the call returns once the child is running, failed, or stopping/stopped
        because a stop won. An explicit start clears FAILED and the failure counters;
        ``restart`` counts it in ``restarts``.
        """
        if self._detached:
            raise RuntimeError(f"{self.name}: detached")
        while self._stop_task is not None and not self._stop_task.done():
            await asyncio.wait({self._stop_task})
        self._manual_stop = False
        if restart:
            self._restarts += 1
        if self._state in (S.STOPPED, S.FAILED):
            self._policy.reset()
            self._begin_launch(reason)
        elif self._state is S.BACKOFF:
            self._cancel(self._backoff_task)
            self._backoff_task = None
            self._begin_launch(reason)
        if not wait:
            return self._state
        return await self.wait_for_state(S.RUNNING, S.FAILED, S.STOPPED, S.STOPPING)

    def request_stop(self, reason: str = "stop requested") -> asyncio.Task[None] | None:
        """Begin stopping now (wins over a pending start or restart); return the stop task."""
        self._manual_stop = True
        if self._stop_task is not None and not self._stop_task.done():
            return self._stop_task
        if self._detached:
            return None  # the process is left running on purpose
        self._cancel(self._backoff_task)
        self._backoff_task = None
        if self._state in (S.BACKOFF, S.FAILED):
            self._set_state(S.STOPPED, reason=reason)
        if self._state is S.STOPPED:
            return None
        self._set_state(S.STOPPING, reason=reason)
        self._cancel(self._probe_task)
        self._stop_task = self._spawn(self._stop_sequence(), "stop")
        return self._stop_task

    async def stop(self, reason: str = "stop requested") -> None:
        """Stop the child and its whole process tree; return once it is STOPPED."""
        task = self.request_stop(reason)
        if task is not None:
            # Shielded: a cancelled caller must not leave the child half-stopped.
            await asyncio.shield(task)
        if self._cleanups and not self._detached:
            await asyncio.wait(set(self._cleanups))  # trees of crashed runs are gone too

    async def restart(self) -> ChildState:
        """Stop the child, then start it again; return the state it settles in."""
        await self.stop("restart requested")
        return await self.start(reason="restart requested", restart=True)

    async def adopt(self, pid: int, create_time: float) -> bool:
        """Watch a recorded orphan as this child's process; return False if it is not ours.

        ``pid`` is ours only if it still runs with the recorded ``create_time`` (a recycled pid
        has another). Its earlier output is gone; its exit is learnt from a pidfd.
        """
        if self._detached or self._state not in (S.STOPPED, S.FAILED):
            raise RuntimeError(f"{self.name}: cannot adopt while {self._state}")
        handle = ProcessHandle.adopt(pid, create_time, tree.MARKER_ENV)
        if handle is None:
            self._log.info("child_orphan_not_ours", pid=pid)
            return False
        self._manual_stop = False
        self._policy.reset()
        self._pid = None
        self._set_state(S.STARTING, reason=f"adopting pid {pid}")
        run = self._run = Run(handle)
        self._pid = pid
        self._healthy = False
        self._output.add(
            "system", f"adopted pid {pid}; its earlier output is not available".encode()
        )
        self._watch(run)
        self._probe_task = self._spawn(self._probe(run), "probe")
        return True

    def detach(self) -> None:
        """Stop watching without touching the process, so the next daemon can adopt it.

        Final: the state is left as it was and later commands are refused or ignored. The
        stdout/stderr pipes close with this daemon, so a child that keeps writing gets EPIPE.
        """
        if self._detached:
            return
        self._detached = True
        self._manual_stop = True
        run = self._run
        if run is not None:
            run.close()
        for task in list(self._tasks):
            task.cancel()
        self._log.info("child_detached", pid=run.pid if run else None)

    # ------------------------------------------------------------------ launch

    def _begin_launch(self, reason: str) -> None:
        """Go STARTING and spawn now if the port is free, else once a sweep freed it."""
        self._pid = None
        self._healthy = False
        self._set_state(S.STARTING, reason=reason)
        if process.port_in_use(self.spec.host, self.spec.port):
            self._launch_task = self._spawn(self._launch(), "launch")
        else:
            self._spawn_run()  # the usual case: no await, no task between a crash and the exec

    async def _launch(self) -> None:
        problem = await process.port_problem(self.spec.host, self.spec.port)
        if problem is not None and self._cleanups:
            # A crashed run's escaped descendant may still hold the port: let the sweep end.
            await asyncio.wait(set(self._cleanups), timeout=KILL_GRACE + 1)
            problem = await process.port_problem(self.spec.host, self.spec.port)
        if self._state is not S.STARTING:
            return  # a stop won while we checked the port
        if problem is not None:
            self._set_state(S.FAILED, reason=problem)
            return
        self._spawn_run()

    def _spawn_run(self) -> None:
        """Spawn the next run (synchronously) and watch it; FAILED if it cannot be spawned."""
        spec = self.spec
        try:
            run = Run.start(spec, self._markers.new(spec.name), self._output.add, self._on_notify)
        except Exception as exc:  # a bad argv or cwd must not leave the child STARTING forever
            self._set_state(S.FAILED, reason=f"spawn failed: {exc}")
            return
        self._run = run
        self._pid = run.pid
        self._sampler.reset()
        self._watch(run)
        self._probe_task = self._spawn(self._probe(run), "probe")
        self._log.info("child_spawned", pid=run.pid, argv=list(spec.argv), port=spec.port)
        create_time = run.handle.create_time
        self.notify_spawn(SpawnRecord(self.name, run.pid, create_time, spec.argv, spec.port))

    # ------------------------------------------------------------------ readiness and liveness

    def _on_notify(self, sender: int | None, fields: dict[str, str]) -> None:
        run = self._run
        if fields.get("READY") != "1" or run is None or self._state is not S.STARTING:
            return
        if not run.sent_by_run(sender):
            self._log.warning("child_notify_ignored", sender=sender)
            return
        self._cancel(self._probe_task)
        self._became_ready(run, "ready notification (READY=1)")

    def _became_ready(self, run: Run, reason: str) -> None:
        self._healthy = True
        self._running_since = asyncio.get_running_loop().time()
        # How long a start takes, for a child found by /health: when its next polls go fast
        # (a notifying child is not polled faster: the polls would compete with its start).
        polled = run.handle.direct and reason == HEALTH_PASSED
        self._ready_after = self._running_since - run.handle.started if polled else None
        self._set_state(S.RUNNING, reason=reason)
        self._probe_task = self._spawn(self._liveness(run), "liveness")

    async def _probe(self, run: Run) -> None:
        """Poll /health until ready (unless READY=1 comes first) within start_timeout."""
        spec = self.spec
        ready = await readiness.wait_ready(
            spec.host,
            spec.port,
            spec.health_path,
            every=spec.ready_poll,
            probe_timeout=spec.probe_timeout,
            within=spec.start_timeout,
            expected=self._ready_after,
        )
        if run is not self._run or self._state is not S.STARTING:
            return
        if not ready:
            self._kill_for(run, f"not ready within {spec.start_timeout:g}s")
            return
        self._became_ready(run, HEALTH_PASSED)

    async def _liveness(self, run: Run) -> None:
        """Probe every liveness_interval; N failures in a row count as a crash."""
        spec = self.spec
        failures = 0
        while True:
            await asyncio.sleep(spec.liveness_interval)
            if run is not self._run or self._state is not S.RUNNING:
                return
            self.stats()  # refresh the CPU/memory figures and the tree snapshot
            if await process.http_ok(spec.host, spec.port, spec.health_path, spec.probe_timeout):
                failures = 0
                self._healthy = True
                continue
            failures += 1
            self._healthy = False
            self._log.warning("child_liveness_failed", pid=run.pid, failures=failures)
            if failures >= spec.liveness_failures:
                self._kill_for(run, f"liveness probe failed {failures} times")
                return

    def _kill_for(self, run: Run, reason: str) -> None:
        """Kill a run that is alive but useless; its watcher then reports the failure."""
        run.kill_reason = reason
        self._log.warning("child_killed", pid=run.pid, reason=reason)
        run.signal_all(signal.SIGKILL, list(run.tree.values()))

    # ------------------------------------------------------------------ exits

    def _watch(self, run: Run) -> None:
        """Handle the run's exit (the only source of exit truth) as soon as it is learnt."""
        if run.handle.exited.done():  # an adopted process that ended before it was watched
            asyncio.get_running_loop().call_soon(self._on_exit, run)
        else:
            run.handle.on_exit = lambda: self._on_exit(run)

    def _on_exit(self, run: Run) -> None:
        """Classify an exit, from the pidfd callback: the event leaves before anything else."""
        h = run.handle
        self._last_exit = ExitInfo(h.exit_code, h.exit_signal, iso_utc(time.time()))
        self._healthy = False
        if run is not self._run or self._state not in (S.STARTING, S.RUNNING):
            return  # a stop is in progress: the stop sequence finishes the job
        self._cancel(self._probe_task)
        now = asyncio.get_running_loop().time()
        uptime = None if self._running_since is None else now - self._running_since
        self._running_since = None
        decision = self._policy.on_failure(now, uptime)
        exit_text = run.kill_reason or process.describe_exit(h.exit_code, h.exit_signal)
        exit_kw = {"exit_code": h.exit_code, "exit_signal": h.exit_signal, "expected": False}
        if decision.give_up:
            # Terminal: worth waiting for the last stderr lines that explain it.
            _ = self._spawn(self._give_up(run, decision.failures, exit_text, exit_kw), "give-up")
        else:
            self._run = None
            self._set_state(S.BACKOFF, reason=exit_text, **exit_kw)
        # Unexpected: the group and the known tree are killed now (cheap, and it releases the
        # port); escaped descendants are swept by a scan of /proc, after the next spawn.
        run.signal_all(signal.SIGKILL, list(run.tree.values()))
        if not decision.give_up:
            self._pid = None
            self._log.info("child_restart_scheduled", delay=round(decision.delay, 3),
                           attempt=decision.attempt)  # fmt: skip
            if decision.delay <= 0:
                self._restarts += 1
                self._begin_launch("restarting after failure")
            else:
                self._backoff_task = self._spawn(self._backoff(decision.delay), "backoff")
        # A run spawned just now starts first: the sweep (and the exit record) would compete
        # with it for the CPU. A launch that waits for the port does not wait for the sweep.
        spawned = self._state is S.STARTING and self._run is not None
        cleanup = self._spawn(self._sweep(run, after_start=spawned), "sweep")
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)

    async def _give_up(
        self, run: Run, failures: int, exit_text: str, exit_kw: dict[str, Any]
    ) -> None:
        await run.drain()
        if run is not self._run or self._state not in (S.STARTING, S.RUNNING):
            return  # a stop came in while we drained
        reason = (
            f"crash loop: {failures} failures within "
            f"{self.spec.crash_window:g}s; last exit: {exit_text}"
        )
        if tail := self._output.tail("stderr", _STDERR_TAIL):
            reason += "; stderr: " + " | ".join(tail)
        self._run = None
        self._set_state(S.FAILED, reason=reason, **exit_kw)
        self._pid = None

    async def _backoff(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._state is not S.BACKOFF or self._manual_stop:
            return
        self._backoff_task = None
        self._restarts += 1
        self._begin_launch("restarting after failure")

    # ------------------------------------------------------------------ stop

    async def _stop_sequence(self) -> None:
        """SIGTERM the group and every descendant, wait, SIGKILL, verify, then STOPPED."""
        loop = asyncio.get_running_loop()
        spec = self.spec
        if self._launch_task is not None and not self._launch_task.done():
            # Let a spawn in progress finish, so the process it creates is stopped too.
            await asyncio.wait({self._launch_task})
        run = self._run
        if run is None:
            self._set_state(S.STOPPED, reason="stopped before spawn")
            return
        deadline = loop.time() + spec.stop_timeout
        self.stats()
        others = run.everything()
        ended_by: str | None = None
        if not run.handle.exited.done():
            ended_by = "SIGTERM"
            run.signal_all(signal.SIGTERM, others)
            if not await process.wait_future(run.handle.exited, deadline - loop.time()):
                ended_by = "SIGKILL"
                run.signal_all(signal.SIGKILL, others)
                if not await process.wait_future(run.handle.exited, KILL_GRACE):
                    self._log.warning("child_unkillable", pid=run.pid)
        # The leader is gone; descendants get the rest of the stop timeout, then SIGKILL.
        others = list({p.pid: p for p in [*others, *run.everything()]}.values())
        leftovers = False
        if ended_by == "SIGKILL":
            deadline = max(deadline, loop.time() + KILL_GRACE)
        if not await process.wait_tree_gone(others, deadline):
            leftovers = True
            run.signal_all(signal.SIGKILL, others)
            if not await process.wait_tree_gone(others, loop.time() + KILL_GRACE):
                self._log.warning("child_tree_survived", pids=process.alive_pids(others))
        await run.drain()
        h = run.handle
        if ended_by is None:
            reason = "stopped (" + process.describe_exit(h.exit_code, h.exit_signal) + ")"
        elif ended_by == "SIGKILL":
            reason = f"stopped with SIGKILL after {spec.stop_timeout:g}s stop timeout"
        else:
            reason = "stopped with SIGTERM"
        if leftovers:
            reason += "; leftover processes killed with SIGKILL"
        self._finish_run(run, expected=True)
        self._running_since = None
        self._set_state(S.STOPPED, reason=reason, exit_code=h.exit_code,
                        exit_signal=h.exit_signal, expected=True)  # fmt: skip
        self._pid = None


__all__ = ["ChildProcess", "ChildSpec"]
