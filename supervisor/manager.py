"""Own the supervised children in order and serialise the commands given to them."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psutil
import structlog

from supervisor import orphans, tree
from supervisor.child import ChildProcess, ChildSpec
from supervisor.events import ChildStatus
from supervisor.listeners import ExitListener, LogListener, SpawnListener, StatusListener
from supervisor.run import KILL_GRACE
from supervisor.states import ChildState, aggregate


class UnknownChild(KeyError):
    """Raised for a child name the manager does not supervise."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown child {self.name!r}"


class SupervisorManager:
    """Own the children (started in the given order, stopped in reverse) and serialise commands.

    Commands run one at a time under a lock. A stop wins: it preempts a start that is still
    in progress for that child at once, and any start/restart requested before it but not yet
    run is skipped. A start requested during a stop waits for the stop.
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        settle_timeout: float | None = None,
        stats_interval: float = 1.0,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate child names: {names}")
        self._log = structlog.stdlib.get_logger(__name__)
        # One owner token for every run marker: what carries it at shutdown is ours to kill.
        self._markers = tree.MarkerSource()
        self._children = {
            spec.name: ChildProcess(spec, stats_interval=stats_interval, markers=self._markers)
            for spec in specs
        }
        self._reaper: tree.OrphanReaper | None = None
        # How long a start command waits for a child to settle (None: its start_timeout + 1 s).
        self._settle_timeout = settle_timeout
        self._lock = asyncio.Lock()
        # Bumped by every stop request; a start carrying an older number was overtaken by it.
        self._stop_gen = dict.fromkeys(self._children, 0)
        self._closed = False

    # ------------------------------------------------------------------ read-only view

    @property
    def children(self) -> tuple[ChildProcess, ...]:
        """Return the children in start order."""
        return tuple(self._children.values())

    @property
    def names(self) -> tuple[str, ...]:
        """Return the child names in start order."""
        return tuple(self._children)

    def child(self, name: str) -> ChildProcess:
        """Return the child called ``name`` (``UnknownChild`` if there is none)."""
        try:
            return self._children[name]
        except KeyError:
            raise UnknownChild(name) from None

    def aggregate_status(self) -> str:
        """Return running, stopped, starting or partial, as defined in events.md."""
        return aggregate(child.state for child in self._children.values())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Return each child's status detail, by child name."""
        return {name: child.snapshot() for name, child in self._children.items()}

    def statuses(self) -> dict[str, ChildStatus]:
        """Return each child's frozen status (last sampled figures, no sampling), by name."""
        return {name: child.status() for name, child in self._children.items()}

    def logs(self, name: str, lines: int = 200) -> list[dict[str, Any]]:
        """Return recent output lines of one child as ``{ts, stream, line}``."""
        return self.child(name).logs(lines)

    # ------------------------------------------------------------------ listeners

    def add_listener(self, callback: StatusListener) -> Callable[[], None]:
        """Forward every child's StatusEvents to ``callback``; return an unsubscribe function."""
        return _all(child.add_listener(callback) for child in self._children.values())

    def add_log_listener(self, callback: LogListener) -> Callable[[], None]:
        """Forward every child's output lines to ``callback``; return an unsubscribe function."""
        return _all(child.add_log_listener(callback) for child in self._children.values())

    def add_spawn_listener(self, callback: SpawnListener) -> Callable[[], None]:
        """Forward every spawn (for the daemon's pid records); return an unsubscribe function."""
        return _all(child.add_spawn_listener(callback) for child in self._children.values())

    def add_exit_listener(self, callback: ExitListener) -> Callable[[], None]:
        """Forward every process exit (to clear pid records); return an unsubscribe function."""
        return _all(child.add_exit_listener(callback) for child in self._children.values())

    # ------------------------------------------------------------------ commands

    async def start_all(self) -> None:
        """Start the children in order, each waited for until running or failed (bounded)."""
        await self._start(self.names)

    async def start(self, name: str) -> ChildState:
        """Start one child; return the state it settled in."""
        await self._start((self.child(name).name,))
        return self.child(name).state

    async def stop_all(self) -> None:
        """Stop the children in reverse order."""
        await self._stop(tuple(reversed(self.names)))

    async def stop(self, name: str) -> None:
        """Stop one child."""
        await self._stop((self.child(name).name,))

    async def restart_all(self) -> None:
        """Stop the children in reverse order, then start them in order."""
        await self._restart(self.names)

    async def restart(self, name: str) -> ChildState:
        """Restart one child; return the state it settled in."""
        await self._restart((self.child(name).name,))
        return self.child(name).state

    async def adopt(self, name: str, pid: int, create_time: float) -> bool:
        """Adopt a recorded orphan as child ``name``; False if the pid is no longer it."""
        child = self.child(name)
        async with self._lock:
            if self._closed:
                return False
            return await child.adopt(pid, create_time)

    async def stop_orphan(self, name: str, pid: int, create_time: float) -> bool:
        """Stop a recorded orphan of child ``name``; False if the pid is no longer it."""
        spec = self.child(name).spec
        async with self._lock:
            return await orphans.stop_orphan(name, pid, create_time, spec.stop_timeout)

    def become_subreaper(self) -> bool:
        """Adopt every descendant that leaves a child's tree, and reap it (Linux; the daemon).

        Call once, from the event loop, in a process that spawns nothing else: reparented
        descendants are our children afterwards, and the reaper collects their exit status.
        """
        if self._reaper is not None:
            return True
        if not tree.become_subreaper():
            self._log.warning("subreaper_unavailable")
            return False
        self._reaper = tree.OrphanReaper(self._owned_pids)
        asyncio.get_running_loop().add_signal_handler(signal.SIGCHLD, self._reaper.on_sigchld)
        self._log.info("subreaper_enabled")
        return True

    def _owned_pids(self) -> set[int] | None:
        owned: set[int] = set()
        for child in self._children.values():
            pids = child.owned_pids()
            if pids is None:
                return None
            owned |= pids
        return owned

    async def shutdown(self, *, detach: bool = False) -> None:
        """Stop every child for daemon exit (or, with ``detach``, leave them for adoption)."""
        self._closed = True
        if detach:
            for child in self._children.values():
                child.detach()
            return
        await self.stop_all()
        # Whatever still carries one of our markers (a descendant of a run that ended while
        # the daemon was busy) goes too: nothing outlives the daemon.
        leftovers = await asyncio.to_thread(tree.marked, self._markers.owner)
        if leftovers:
            self._log.info("shutdown_leftovers_killed", pids=sorted(p.pid for p in leftovers))
            tree.kill_all(leftovers, signal.SIGKILL)
            await asyncio.to_thread(psutil_wait, leftovers, KILL_GRACE)
        if self._reaper is not None:
            self._reaper.reap()

    # ------------------------------------------------------------------ internals

    async def _start(self, names: Sequence[str]) -> None:
        tickets = {name: self._stop_gen[name] for name in names}  # taken before any await
        async with self._lock:
            for name in names:
                await self._start_one(name, tickets[name])

    async def _stop(self, names: Sequence[str]) -> None:
        for name in names:
            self._stop_gen[name] += 1
            child = self._children[name]
            if child.state in (ChildState.STARTING, ChildState.BACKOFF):
                # Preempt now: the start holding the lock returns as soon as this begins.
                child.request_stop()
        async with self._lock:
            for name in names:
                await self._children[name].stop()

    async def _restart(self, names: Sequence[str]) -> None:
        tickets = {name: self._stop_gen[name] for name in names}
        async with self._lock:
            current = [name for name in names if tickets[name] == self._stop_gen[name]]
            if self._closed or not current:
                return
            for name in reversed(current):
                await self._children[name].stop("restart requested")
            for name in current:
                await self._start_one(name, tickets[name], restart=True)

    async def _start_one(self, name: str, ticket: int, *, restart: bool = False) -> None:
        child = self._children[name]
        if self._closed or ticket != self._stop_gen[name]:
            self._log.info("child_start_skipped", child=name, why="stop requested later")
            return
        timeout = self._settle_timeout
        if timeout is None:
            timeout = child.spec.start_timeout + 1.0
        try:
            async with asyncio.timeout(timeout):
                reason = "restart requested" if restart else "start requested"
                await child.start(reason=reason, restart=restart)
        except TimeoutError:
            # The child keeps trying in the background; the next one is not held up forever.
            self._log.warning("child_start_unsettled", child=name, state=child.state.value)


def psutil_wait(procs: list[Any], timeout: float) -> None:
    """Wait (blocking; run it in a thread) until ``procs`` are gone, or ``timeout``."""
    psutil.wait_procs(procs, timeout=timeout)


def _all(unsubscribers: Iterable[Callable[[], None]]) -> Callable[[], None]:
    collected = list(unsubscribers)

    def unsubscribe() -> None:
        for undo in collected:
            undo()

    return unsubscribe
