"""Own one supervised child: spawn, probe, watch, restart with backoff, stop its whole tree."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psutil
import structlog

from supervisor import process
from supervisor.events import (
    ExitInfo,
    LogLine,
    ProcessExit,
    SpawnRecord,
    StatusEvent,
    iso_utc,
)
from supervisor.states import ALLOWED, ChildState, InvalidTransition

StatusListener = Callable[[StatusEvent], None]
LogListener = Callable[[LogLine], None]
SpawnListener = Callable[[SpawnRecord], None]
ExitListener = Callable[[ProcessExit], None]

_T = TypeVar("_T")

_READY_POLL = 0.025  # seconds between readiness probes while STARTING
_DRAIN = 0.2  # how long a crash waits for the last output lines before it is classified
_KILL_GRACE = 2.0  # how long SIGKILLed processes get to disappear before we give up and log
_STDERR_TAIL = 3  # stderr lines quoted in a FAILED reason


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """Describe how to run, probe and pace one child program (all timings in seconds)."""

    name: str
    argv: tuple[str, ...]
    port: int
    host: str = "127.0.0.1"
    cwd: str | None = None
    # The child's whole environment: the daemon's own is never inherited. PORT and HOST are
    # added from ``port``/``host`` unless set here.
    env: Mapping[str, str] = field(default_factory=dict)
    health_path: str = "/health"
    start_timeout: float = 15.0
    stop_timeout: float = 10.0
    probe_timeout: float = 2.0
    backoff_base: float = 0.5
    backoff_factor: float = 2.0
    backoff_cap: float = 30.0
    backoff_jitter: float = 0.1
    stable_uptime: float = 60.0
    crash_limit: int = 5
    crash_window: float = 120.0
    liveness_interval: float = 10.0
    liveness_failures: int = 3
    log_lines: int = 500

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", tuple(self.argv))
        object.__setattr__(self, "env", dict(self.env))
        problems = []
        if not self.name:
            problems.append("name is empty")
        if not self.argv:
            problems.append("argv is empty")
        if not 0 < self.port < 65536:
            problems.append(f"port {self.port} out of range")
        for knob in ("start_timeout", "stop_timeout", "probe_timeout", "liveness_interval"):
            if getattr(self, knob) <= 0:
                problems.append(f"{knob} must be > 0")
        if self.crash_limit < 0 or self.liveness_failures < 1 or self.log_lines < 1:
            problems.append("crash_limit, liveness_failures and log_lines must be positive")
        if problems:
            raise ValueError(f"child spec {self.name!r}: " + "; ".join(problems))

    def child_env(self) -> dict[str, str]:
        """Return the environment the child is spawned with."""
        return {"PORT": str(self.port), "HOST": self.host, **self.env}


class _Run:
    """One incarnation of the child: a spawned or adopted process and its helpers."""

    def __init__(
        self,
        *,
        pid: int,
        proc: asyncio.subprocess.Process | None,
        ps: psutil.Process | None,
        own_group: bool,
        started: float,
        wall: float,
    ) -> None:
        self.pid = pid
        self.proc = proc  # None when adopted: not our child, exit comes from a pidfd
        self.ps = ps
        self.own_group = own_group
        self.started = started  # loop time of the spawn
        self.wall = wall
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gone: asyncio.Future[None] | None = None  # adopted: resolved by the pidfd reader
        self.pidfd: int | None = None
        self.exit_code: int | None = None
        self.exit_signal: str | None = None
        self.kill_reason: str | None = None  # set when we killed it for a probe failure
        self.tree: dict[int, psutil.Process] = {}  # descendants seen so far (for cleanup)
        self.readers: list[asyncio.Task[None]] = []
        self.watcher: asyncio.Task[None] | None = None
        self.poller: asyncio.Task[None] | None = None  # adopted without pidfd support
        self.reported = False  # exit listeners called


class ChildProcess:
    """Own one supervised child: its state, process tree, probes, restarts and output.

    Every state change goes through ``_set_state``. ``restarts`` counts automatic restarts after
    a failure plus explicit ``restart()`` calls, for the daemon's lifetime.
    """

    def __init__(
        self,
        spec: ChildSpec,
        *,
        rng: random.Random | None = None,
        stats_interval: float = 1.0,
    ) -> None:
        self.spec = spec
        self._log = structlog.stdlib.get_logger(__name__).bind(child=spec.name)
        self._rng = rng or random.Random()
        self._stats_interval = stats_interval
        self._state = ChildState.STOPPED
        self._reason: str | None = None
        self._pid: int | None = None  # pid the next event is about (the live or just-ended run)
        self._run: _Run | None = None
        self._restarts = 0
        self._last_exit: ExitInfo | None = None
        self._healthy = False
        self._running_since: float | None = None
        self._attempt = 0  # consecutive failures since the last stable run or explicit start
        self._failures: deque[float] = deque()  # loop times of failures, for the crash window
        self._manual_stop = False
        self._detached = False  # after detach() the process belongs to the next daemon
        self._listeners: list[StatusListener] = []
        self._log_listeners: list[LogListener] = []
        self._spawn_listeners: list[SpawnListener] = []
        self._exit_listeners: list[ExitListener] = []
        self._buffer: deque[LogLine] = deque(maxlen=spec.log_lines)
        self._waiters: list[tuple[frozenset[ChildState], asyncio.Future[ChildState]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._launch_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._backoff_task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._ps_cache: dict[int, psutil.Process] = {}
        self._stats_at: float | None = None
        self._stats: tuple[float, int] = (0.0, 0)

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
    def started_at(self) -> str | None:
        """Return when the live process started (ISO 8601), if any."""
        return iso_utc(self._run.wall) if self._run is not None else None

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
        return self._state is ChildState.RUNNING and self._healthy

    # ------------------------------------------------------------------ listeners

    def add_listener(self, callback: StatusListener) -> Callable[[], None]:
        """Call ``callback(StatusEvent)`` on every transition; return an unsubscribe function."""
        return _subscribe(self._listeners, callback)

    def add_log_listener(self, callback: LogListener) -> Callable[[], None]:
        """Call ``callback(LogLine)`` for every output line; return an unsubscribe function."""
        return _subscribe(self._log_listeners, callback)

    def add_spawn_listener(self, callback: SpawnListener) -> Callable[[], None]:
        """Call ``callback(SpawnRecord)`` after every spawn; return an unsubscribe function."""
        return _subscribe(self._spawn_listeners, callback)

    def add_exit_listener(self, callback: ExitListener) -> Callable[[], None]:
        """Call ``callback(ProcessExit)`` once a process and its tree are gone."""
        return _subscribe(self._exit_listeners, callback)

    # ------------------------------------------------------------------ the state machine

    def _set_state(
        self,
        new: ChildState,
        *,
        reason: str,
        exit_code: int | None = None,
        exit_signal: str | None = None,
        expected: bool | None = None,
    ) -> None:
        """Move to ``new``: the only writer of ``_state``; emits one event per real change."""
        old = self._state
        if new is old:
            return
        if new not in ALLOWED[old]:
            raise InvalidTransition(self.name, old, new)
        self._state = new
        self._reason = reason
        event = StatusEvent(
            child=self.name,
            old=old,
            new=new,
            pid=self._pid,
            exit_code=exit_code,
            exit_signal=exit_signal,
            expected=expected,
            reason=reason,
            at=asyncio.get_running_loop().time(),
            wall=time.time(),
        )
        self._log.info(
            "child_state_changed",
            old=old.value,
            new=new.value,
            pid=event.pid,
            exit_code=exit_code,
            exit_signal=exit_signal,
            reason=reason,
        )
        _notify(self._log, self._listeners, event)
        for entry in list(self._waiters):
            states, future = entry
            if new in states:
                self._waiters.remove(entry)
                if not future.done():
                    future.set_result(new)

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
        if self._state in (ChildState.STOPPED, ChildState.FAILED):
            self._attempt = 0
            self._failures.clear()
            self._begin_launch(reason)
        elif self._state is ChildState.BACKOFF:
            self._cancel(self._backoff_task)
            self._backoff_task = None
            self._begin_launch(reason)
        if not wait:
            return self._state
        return await self.wait_for_state(
            ChildState.RUNNING, ChildState.FAILED, ChildState.STOPPED, ChildState.STOPPING
        )

    def request_stop(self, reason: str = "stop requested") -> asyncio.Task[None] | None:
        """Begin stopping now (wins over a pending start or restart); return the stop task."""
        self._manual_stop = True
        if self._stop_task is not None and not self._stop_task.done():
            return self._stop_task
        if self._detached:
            return None  # the process is left running on purpose
        self._cancel(self._backoff_task)
        self._backoff_task = None
        if self._state in (ChildState.BACKOFF, ChildState.FAILED):
            self._set_state(ChildState.STOPPED, reason=reason)
        if self._state is ChildState.STOPPED:
            return None
        self._set_state(ChildState.STOPPING, reason=reason)
        self._cancel(self._probe_task)
        self._stop_task = self._spawn(self._stop_sequence(), "stop")
        return self._stop_task

    async def stop(self, reason: str = "stop requested") -> None:
        """Stop the child and its whole process tree; return once it is STOPPED."""
        task = self.request_stop(reason)
        if task is not None:
            # Shielded: a cancelled caller must not leave the child half-stopped.
            await asyncio.shield(task)

    async def restart(self) -> ChildState:
        """Stop the child, then start it again; return the state it settles in."""
        await self.stop("restart requested")
        return await self.start(reason="restart requested", restart=True)

    async def adopt(self, pid: int, create_time: float) -> bool:
        """Watch a recorded orphan as this child's process; return False if it is not ours.

        ``pid`` is ours only if it still runs with the recorded ``create_time`` (a recycled pid
        has another). Its earlier output is gone; exit is learnt from a pidfd.
        """
        if self._detached or self._state not in (ChildState.STOPPED, ChildState.FAILED):
            raise RuntimeError(f"{self.name}: cannot adopt while {self._state}")
        ps = process.same_process(pid, create_time)
        if ps is None:
            self._log.info("child_orphan_not_ours", pid=pid)
            return False
        try:
            own_group = os.getpgid(pid) == pid
        except ProcessLookupError:
            return False
        loop = asyncio.get_running_loop()
        now_wall = time.time()
        started_wall = ps.create_time()
        run = _Run(
            pid=pid,
            proc=None,
            ps=ps,
            own_group=own_group,
            started=loop.time() - max(0.0, now_wall - started_wall),
            wall=started_wall,
        )
        run.gone = loop.create_future()
        try:
            run.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        except (AttributeError, OSError):
            run.pidfd = None  # no pidfd support: poll psutil instead (see _poll_gone)
        self._manual_stop = False
        self._attempt = 0
        self._failures.clear()
        self._pid = None
        self._set_state(ChildState.STARTING, reason=f"adopting pid {pid}")
        self._run = run
        self._pid = pid
        self._healthy = False
        if run.pidfd is not None:
            loop.add_reader(run.pidfd, self._pidfd_readable, run)
        else:
            run.poller = self._spawn(self._poll_gone(run), "poll-gone")
        self._system_line(f"adopted pid {pid}; its earlier output is not available")
        run.watcher = self._spawn(self._watch(run), "watch")
        self._probe_task = self._spawn(self._probe(run), "probe")
        return True

    async def stop_orphan(self, pid: int, create_time: float) -> bool:
        """Stop a recorded orphan and its tree (SIGTERM, then SIGKILL); False if not ours."""
        ps = process.same_process(pid, create_time)
        if ps is None:
            self._log.info("child_orphan_not_ours", pid=pid)
            return False
        try:
            own_group = os.getpgid(pid) == pid
            tree = {p.pid: p for p in ps.children(recursive=True)}
        except (ProcessLookupError, psutil.Error):
            return False
        everything = [ps, *tree.values()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.stop_timeout
        process.signal_tree(pid, own_group, tree.values(), signal.SIGTERM, include_tree=True)
        ended_by = "SIGTERM"
        if not await process.wait_tree_gone(everything, deadline):
            ended_by = "SIGKILL"
            process.signal_tree(pid, own_group, tree.values(), signal.SIGKILL, include_tree=True)
            if not await process.wait_tree_gone(everything, loop.time() + _KILL_GRACE):
                self._log.warning(
                    "child_tree_survived", pids=sorted(process.alive_pids(everything))
                )
        self._log.info("child_orphan_stopped", pid=pid, signal=ended_by)
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
            self._close_pidfd(run)
        for task in list(self._tasks):
            task.cancel()
        self._log.info("child_detached", pid=run.pid if run else None)

    # ------------------------------------------------------------------ output and stats

    def logs(self, lines: int = 200) -> list[dict[str, Any]]:
        """Return up to ``lines`` recent output lines, oldest first, as ``{ts, stream, line}``."""
        if lines <= 0:
            return []
        recent = list(self._buffer)[-lines:]
        return [entry.as_dict() for entry in recent]

    def stats(self) -> dict[str, Any]:
        """Return ``{cpu, memory}`` of the child and its descendants (sampled ≤ once/interval)."""
        now = asyncio.get_running_loop().time()
        if self._stats_at is None or now - self._stats_at >= self._stats_interval:
            self._stats_at = now
            self._stats = self._sample()
        cpu, rss = self._stats
        return {"cpu": round(cpu, 1), "memory": rss}

    def snapshot(self) -> dict[str, Any]:
        """Return the per-child status detail of events.md, taken now."""
        run = self._run
        running = self._state is ChildState.RUNNING
        uptime = 0.0
        if running and run is not None:
            uptime = round(asyncio.get_running_loop().time() - run.started, 1)
        stats = self.stats() if run is not None else {"cpu": 0.0, "memory": 0}
        return {
            "running": running,
            "port": self.spec.port,
            "pid": run.pid if run is not None else None,
            "uptime": uptime,
            "state": self._state.value,
            "healthy": self.healthy,
            "restarts": self._restarts,
            "startedAt": iso_utc(run.wall) if run is not None else None,
            "lastExit": self._last_exit.as_dict() if self._last_exit is not None else None,
            "reason": self._reason,
            "cpu": stats["cpu"],
            "memory": stats["memory"],
        }

    def _sample(self) -> tuple[float, int]:
        run = self._run
        if run is None or run.ps is None:
            self._ps_cache = {}
            return 0.0, 0
        try:
            found = [run.ps, *run.ps.children(recursive=True)]
        except psutil.Error:
            return 0.0, 0
        cpu, rss = 0.0, 0
        cache: dict[int, psutil.Process] = {}
        for proc in found:
            # Reuse the cached object (same pid and create time) so cpu_percent has a baseline.
            cached = self._ps_cache.get(proc.pid)
            if cached is None or cached != proc:
                cached = proc
            try:
                with cached.oneshot():
                    cpu += cached.cpu_percent(None)
                    rss += cached.memory_info().rss
            except psutil.Error:
                continue
            cache[proc.pid] = cached
            if proc.pid != run.pid:
                run.tree[proc.pid] = cached
        self._ps_cache = cache
        return cpu, rss

    # ------------------------------------------------------------------ launch

    def _begin_launch(self, reason: str) -> None:
        self._pid = None
        self._healthy = False
        self._set_state(ChildState.STARTING, reason=reason)
        self._launch_task = self._spawn(self._launch(), "launch")

    async def _launch(self) -> None:
        problem = await self._port_problem()
        if self._state is not ChildState.STARTING:
            return  # a stop won while we checked the port
        if problem is not None:
            self._set_state(ChildState.FAILED, reason=problem)
            return
        try:
            run = await self._exec()
        except Exception as exc:  # a bad argv or cwd must not leave the child STARTING forever
            if self._state is ChildState.STARTING:
                self._set_state(ChildState.FAILED, reason=f"spawn failed: {exc}")
            return
        if self._state is ChildState.STARTING:
            self._probe_task = self._spawn(self._probe(run), "probe")

    async def _port_problem(self) -> str | None:
        port = self.spec.port
        if not process.port_in_use(self.spec.host, port):
            return None
        pid, name = await asyncio.to_thread(process.port_holder, port)
        if pid is None:
            return f"port {port} in use by an unknown process"
        return f"port {port} in use by pid {pid} ({name or 'unknown'})"

    async def _exec(self) -> _Run:
        loop = asyncio.get_running_loop()
        spec = self.spec
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        # Our own pipes rather than PIPE: the process transport then closes at exit even if an
        # escaped grandchild keeps the pipes open, and we can close the read ends ourselves.
        try:
            out = await process.open_reader(out_r)
        except BaseException:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            raise
        try:
            err = await process.open_reader(err_r)
        except BaseException:
            out[1].close()
            for fd in (out_w, err_r, err_w):
                os.close(fd)
            raise
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                cwd=spec.cwd,
                env=spec.child_env(),
                start_new_session=True,
            )
        except BaseException:
            out[1].close()
            err[1].close()
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        ps: psutil.Process | None
        try:
            ps = psutil.Process(proc.pid)
            create_time: float | None = ps.create_time()
        except psutil.Error:
            ps, create_time = None, None  # already gone; the watcher reports it
        run = _Run(
            pid=proc.pid,
            proc=proc,
            ps=ps,
            own_group=True,
            started=loop.time(),
            wall=time.time(),
        )
        self._run = run
        self._pid = proc.pid
        self._ps_cache = {}
        self._stats_at = None
        run.readers = [
            self._spawn(self._read(run, "stdout", *out), "read-stdout"),
            self._spawn(self._read(run, "stderr", *err), "read-stderr"),
        ]
        run.watcher = self._spawn(self._watch(run), "watch")
        self._log.info("child_spawned", pid=proc.pid, argv=list(spec.argv), port=spec.port)
        record = SpawnRecord(
            child=self.name, pid=proc.pid, create_time=create_time, argv=spec.argv, port=spec.port
        )
        _notify(self._log, self._spawn_listeners, record)
        return run

    # ------------------------------------------------------------------ probes

    async def _probe(self, run: _Run) -> None:
        """Wait for readiness within start_timeout, then probe liveness while running."""
        loop = asyncio.get_running_loop()
        spec = self.spec
        deadline = loop.time() + spec.start_timeout
        ready = False
        while (remaining := deadline - loop.time()) > 0:
            timeout = min(spec.probe_timeout, remaining)
            if await process.http_ok(spec.host, spec.port, spec.health_path, timeout):
                ready = True
                break
            await asyncio.sleep(_READY_POLL)
        if run is not self._run or self._state is not ChildState.STARTING:
            return
        if not ready:
            self._kill_for(run, f"not ready within {spec.start_timeout:g}s")
            return
        self._healthy = True
        self._running_since = loop.time()
        self._set_state(ChildState.RUNNING, reason="health check passed")
        await self._liveness(run)

    async def _liveness(self, run: _Run) -> None:
        """Probe every liveness_interval; N failures in a row count as a crash."""
        spec = self.spec
        failures = 0
        while True:
            await asyncio.sleep(spec.liveness_interval)
            if run is not self._run or self._state is not ChildState.RUNNING:
                return
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

    def _kill_for(self, run: _Run, reason: str) -> None:
        """Kill a run that is alive but useless; its watcher then reports the failure."""
        run.kill_reason = reason
        self._log.warning("child_killed", pid=run.pid, reason=reason)
        process.signal_tree(
            run.pid, run.own_group, run.tree.values(), signal.SIGKILL, include_tree=True
        )

    # ------------------------------------------------------------------ exits

    async def _watch(self, run: _Run) -> None:
        """Await the process's exit (the only source of exit truth) and classify it."""
        if run.proc is not None:
            returncode = await run.proc.wait()
            if returncode < 0:
                run.exit_signal = process.signal_name(-returncode)
            else:
                run.exit_code = returncode
        elif run.gone is not None:
            await run.gone  # adopted: not our child, so its status is unknowable
        loop = asyncio.get_running_loop()
        self._last_exit = ExitInfo(run.exit_code, run.exit_signal, iso_utc(time.time()))
        self._healthy = False
        run.exited.set_result(None)
        self._log.info(
            "child_exited", pid=run.pid, exit_code=run.exit_code, exit_signal=run.exit_signal
        )
        if run is not self._run or self._state not in (ChildState.STARTING, ChildState.RUNNING):
            return  # a stop is in progress: the stop sequence finishes the job
        # Unexpected: kill what is left of the tree so the port and pipes are released, and
        # give the readers a moment so the last stderr lines make it into the reason.
        self._cancel(self._probe_task)
        process.signal_tree(
            run.pid, run.own_group, run.tree.values(), signal.SIGKILL, include_tree=True
        )
        if run.readers:
            await asyncio.wait(run.readers, timeout=_DRAIN)
        if run is not self._run or self._state not in (ChildState.STARTING, ChildState.RUNNING):
            return  # a stop came in while we drained
        self._finish_run(run, expected=False)
        self._on_failure(run, loop.time())

    def _finish_run(self, run: _Run, *, expected: bool) -> None:
        """Forget the run and tell exit listeners, once."""
        if self._run is run:
            self._run = None
        self._close_pidfd(run)
        for task in run.readers:
            task.cancel()  # closes the read pipes; normally they already hit EOF
        if run.reported:
            return
        run.reported = True
        record = ProcessExit(
            child=self.name,
            pid=run.pid,
            exit_code=run.exit_code,
            exit_signal=run.exit_signal,
            expected=expected,
            at=asyncio.get_running_loop().time(),
            wall=time.time(),
        )
        _notify(self._log, self._exit_listeners, record)

    def _on_failure(self, run: _Run, now: float) -> None:
        spec = self.spec
        if self._running_since is not None and now - self._running_since >= spec.stable_uptime:
            self._attempt = 0  # a long stable run forgives earlier failures
        self._running_since = None
        self._attempt += 1
        self._failures.append(now)
        while self._failures and self._failures[0] < now - spec.crash_window:
            self._failures.popleft()
        exit_text = run.kill_reason or process.describe_exit(run.exit_code, run.exit_signal)
        exit_kw: dict[str, Any] = {
            "exit_code": run.exit_code,
            "exit_signal": run.exit_signal,
            "expected": False,
        }
        if len(self._failures) > spec.crash_limit:
            reason = (
                f"crash loop: {len(self._failures)} failures within {spec.crash_window:g}s; "
                f"last exit: {exit_text}"
            )
            tail = [e.line for e in self._buffer if e.stream == "stderr"][-_STDERR_TAIL:]
            if tail:
                reason += "; stderr: " + " | ".join(tail)
            self._set_state(ChildState.FAILED, reason=reason, **exit_kw)
            self._pid = None
            return
        delay = self._backoff_delay(self._attempt)
        self._set_state(ChildState.BACKOFF, reason=exit_text, **exit_kw)
        self._pid = None
        self._log.info("child_restart_scheduled", delay=round(delay, 3), attempt=self._attempt)
        self._backoff_task = self._spawn(self._backoff(delay), "backoff")

    def _backoff_delay(self, attempt: int) -> float:
        """Return the wait before restart ``attempt``: 0 first, then capped exponential."""
        spec = self.spec
        if attempt <= 1:
            return 0.0  # the first failure after a stable run restarts at once
        delay = min(spec.backoff_cap, spec.backoff_base * spec.backoff_factor ** (attempt - 2))
        jitter = self._rng.uniform(-spec.backoff_jitter, spec.backoff_jitter)
        return max(0.0, delay * (1.0 + jitter))

    async def _backoff(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._state is not ChildState.BACKOFF or self._manual_stop:
            return
        self._backoff_task = None
        self._restarts += 1
        self._begin_launch("restarting after failure")

    # ------------------------------------------------------------------ stop

    async def _stop_sequence(self) -> None:
        """SIGTERM the group, wait, SIGKILL, verify no descendant is left, then STOPPED."""
        loop = asyncio.get_running_loop()
        spec = self.spec
        if self._launch_task is not None and not self._launch_task.done():
            # Let a spawn in progress finish, so the process it creates is stopped too.
            await asyncio.wait({self._launch_task})
        run = self._run
        if run is None:
            self._set_state(ChildState.STOPPED, reason="stopped before spawn")
            return
        deadline = loop.time() + spec.stop_timeout
        run.tree.update(_descendants(run))
        ended_by: str | None = None
        if not run.exited.done():
            ended_by = "SIGTERM"
            process.signal_tree(
                run.pid, run.own_group, run.tree.values(), signal.SIGTERM, include_tree=True
            )
            if not await process.wait_future(run.exited, deadline - loop.time()):
                ended_by = "SIGKILL"
                process.signal_tree(
                    run.pid, run.own_group, run.tree.values(), signal.SIGKILL, include_tree=True
                )
                if not await process.wait_future(run.exited, _KILL_GRACE):
                    self._log.warning("child_unkillable", pid=run.pid)
        # The leader is gone; descendants get the rest of the stop timeout, then SIGKILL
        # (after an escalation they already had it: they only need a moment to die).
        leftovers = False
        if ended_by == "SIGKILL":
            deadline = max(deadline, loop.time() + _KILL_GRACE)
        if not await process.wait_tree_gone(run.tree.values(), deadline):
            leftovers = True
            process.signal_tree(
                run.pid, run.own_group, run.tree.values(), signal.SIGKILL, include_tree=True
            )
            if not await process.wait_tree_gone(run.tree.values(), loop.time() + _KILL_GRACE):
                self._log.warning(
                    "child_tree_survived", pids=sorted(process.alive_pids(run.tree.values()))
                )
        if run.readers:
            await asyncio.wait(run.readers, timeout=_DRAIN)
        if ended_by is None:
            reason = "stopped (" + process.describe_exit(run.exit_code, run.exit_signal) + ")"
        elif ended_by == "SIGKILL":
            reason = f"stopped with SIGKILL after {spec.stop_timeout:g}s stop timeout"
        else:
            reason = "stopped with SIGTERM"
        if leftovers:
            reason += "; leftover processes killed with SIGKILL"
        self._finish_run(run, expected=True)
        self._running_since = None
        self._set_state(
            ChildState.STOPPED,
            reason=reason,
            exit_code=run.exit_code,
            exit_signal=run.exit_signal,
            expected=True,
        )
        self._pid = None

    # ------------------------------------------------------------------ helpers

    async def _read(
        self, run: _Run, stream: str, reader: asyncio.StreamReader, transport: asyncio.BaseTransport
    ) -> None:
        """Read one pipe line by line until EOF (an unread pipe would block the child)."""
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        self._line(stream, exc.partial)
                    return
                except asyncio.LimitOverrunError:
                    raw = await reader.read(process.LINE_LIMIT)  # an overlong line comes in pieces
                self._line(stream, raw)
        finally:
            transport.close()

    def _line(self, stream: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        entry = LogLine(child=self.name, stream=stream, line=text, ts=iso_utc(time.time()))
        self._buffer.append(entry)
        self._log.info("child_output", stream=stream, line=text)
        _notify(self._log, self._log_listeners, entry)

    def _system_line(self, text: str) -> None:
        self._line("system", text.encode())

    def _pidfd_readable(self, run: _Run) -> None:
        self._close_pidfd(run)
        if run.gone is not None and not run.gone.done():
            run.gone.set_result(None)

    def _close_pidfd(self, run: _Run) -> None:
        if run.pidfd is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(run.pidfd)
        os.close(run.pidfd)
        run.pidfd = None

    async def _poll_gone(self, run: _Run) -> None:
        """Watch an adopted process without pidfd support (polling is the only way left)."""
        while True:
            if run.ps is None or not process.alive(run.ps):
                break
            await asyncio.sleep(process.TREE_POLL)
        if run.gone is not None and not run.gone.done():
            run.gone.set_result(None)

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


# ---------------------------------------------------------------------- module helpers


def _subscribe(listeners: list[Any], callback: Any) -> Callable[[], None]:
    listeners.append(callback)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            listeners.remove(callback)

    return unsubscribe


def _notify(log: Any, listeners: list[Callable[[_T], None]], item: _T) -> None:
    """Call each listener; one that raises is logged and never breaks the caller."""
    for callback in list(listeners):
        try:
            callback(item)
        except Exception:
            log.exception("listener_failed", listener=repr(callback))


def _descendants(run: _Run) -> dict[int, psutil.Process]:
    if run.ps is None:
        return {}
    try:
        return {p.pid: p for p in run.ps.children(recursive=True)}
    except psutil.Error:
        return {}
