"""A stand-in for ``supervisor.SupervisorManager`` that runs nothing, for the in-process tests.

Commands move a child's state at once (or leave it ``failed`` with a reason when told to) and
report each transition to the status listeners as the real one does; the daemon's services
above it are real. Only what apiserver calls is implemented.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from supervisor import ChildSpec, ChildState, ChildStatus, StatusEvent, UnknownChild


class FakeChild:
    """The part of a ChildProcess the daemon reads: its spec and state."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.state = ChildState.STOPPED
        self.reason: str | None = None
        self.lines: list[dict[str, Any]] = []


class FakeSupervisor:
    """Record commands and answer with states; no process is ever started."""

    def __init__(self, specs: Sequence[ChildSpec]) -> None:
        self._children = {spec.name: FakeChild(spec) for spec in specs}
        self.commands: list[tuple[str, str | None]] = []
        self.refusals: dict[str, str] = {}  # child name -> reason its next starts fail with
        self.shut_down = False
        self._listeners: list[Callable[[StatusEvent], None]] = []

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._children)

    def child(self, name: str) -> FakeChild:
        try:
            return self._children[name]
        except KeyError:
            raise UnknownChild(name) from None

    def statuses(self) -> dict[str, ChildStatus]:
        return {name: _status(child) for name, child in self._children.items()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: status.as_dict(0.0) for name, status in self.statuses().items()}

    def logs(self, name: str, lines: int = 200) -> list[dict[str, Any]]:
        return self.child(name).lines[-lines:]

    def add_listener(self, callback: Callable[[StatusEvent], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    # Output, spawns and exits never happen here.
    def _ignore(self, _callback: Callable[[Any], None]) -> Callable[[], None]:
        return lambda: None

    add_log_listener = add_spawn_listener = add_exit_listener = _ignore

    def _move(self, child: FakeChild, new: ChildState, reason: str | None) -> None:
        old, child.state, child.reason = child.state, new, reason
        if old is new:
            return
        event = StatusEvent(
            child=child.spec.name,
            old=old,
            new=new,
            pid=None,
            exit_code=None,
            exit_signal=None,
            expected=None,
            reason=reason,
            at=time.monotonic(),
            wall=time.time(),
            status=_status(child),
        )
        for listener in list(self._listeners):
            listener(event)

    def _run(self, name: str) -> None:
        reason = self.refusals.get(name)
        self._move(self.child(name), ChildState.FAILED if reason else ChildState.RUNNING, reason)

    def _halt(self, name: str) -> None:
        self._move(self.child(name), ChildState.STOPPED, None)

    async def start(self, name: str) -> None:
        self.commands.append(("start", name))
        self._run(name)

    async def stop(self, name: str) -> None:
        self.commands.append(("stop", name))
        self._halt(name)

    async def restart(self, name: str) -> None:
        self.commands.append(("restart", name))
        self._halt(name)
        self._run(name)

    async def start_all(self) -> None:
        self.commands.append(("start_all", None))
        for name in self.names:
            self._run(name)

    async def stop_all(self) -> None:
        self.commands.append(("stop_all", None))
        for name in reversed(self.names):
            self._halt(name)

    async def restart_all(self) -> None:
        self.commands.append(("restart_all", None))
        for name in self.names:
            self._halt(name)
            self._run(name)

    async def adopt(self, name: str, pid: int, create_time: float) -> bool:
        return False

    async def stop_orphan(self, name: str, pid: int, create_time: float) -> bool:
        return False

    async def shutdown(self) -> None:
        self.shut_down = True
        for name in self.names:
            self._halt(name)


def _status(child: FakeChild) -> ChildStatus:
    return ChildStatus(
        port=child.spec.port,
        state=child.state,
        pid=None,
        healthy=child.state is ChildState.RUNNING,
        restarts=0,
        started=None,
        started_at=None,
        last_exit=None,
        reason=child.reason,
        cpu=0.0,
        memory=0,
    )
