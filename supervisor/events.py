"""Immutable records the supervisor hands to its listeners, snapshotted when built."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from supervisor.states import ChildState


def iso_utc(wall: float) -> str:
    """Format a Unix time as an ISO 8601 UTC string with milliseconds (``...Z``)."""
    text = datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """Record how a child's process ended: exit code or signal name, and when."""

    code: int | None
    signal: str | None
    at: str

    def as_dict(self) -> dict[str, Any]:
        """Return ``{code, signal, at}`` for the status payload."""
        return {"code": self.code, "signal": self.signal, "at": self.at}


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """Everything the status payload says about one child, frozen at a transition.

    Built by the child's only state writer, so a listener can publish it without calling back
    into the supervisor. ``cpu``/``memory`` are the last sampled figures (sampling is never on
    the event path); ``started`` is the loop time the run started, so ``uptime`` is arithmetic.
    """

    port: int
    state: ChildState
    pid: int | None
    healthy: bool
    restarts: int
    started: float | None
    started_at: str | None
    last_exit: ExitInfo | None
    reason: str | None
    cpu: float
    memory: int

    def as_dict(self, now: float) -> dict[str, Any]:
        """Return the per-child detail of events.md, with ``uptime`` as of loop time ``now``."""
        running = self.state is ChildState.RUNNING
        uptime = 0.0
        if running and self.started is not None:
            uptime = round(max(0.0, now - self.started), 1)
        return {
            "running": running,
            "port": self.port,
            "pid": self.pid,
            "uptime": uptime,
            "state": self.state.value,
            "healthy": self.healthy,
            "restarts": self.restarts,
            "startedAt": self.started_at,
            "lastExit": self.last_exit.as_dict() if self.last_exit is not None else None,
            "reason": self.reason,
            "cpu": round(self.cpu, 1),
            "memory": self.memory,
        }


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """Describe one lifecycle transition of one child.

    ``at`` is the event loop's monotonic clock (order and durations); ``wall`` is Unix time
    (display). ``exit_code``/``exit_signal`` are set when the transition was caused by an exit;
    ``expected`` tells a requested stop (True) from a crash (False), None when no exit is involved.
    """

    child: str
    old: ChildState
    new: ChildState
    pid: int | None
    exit_code: int | None
    exit_signal: str | None
    expected: bool | None
    reason: str | None
    at: float
    wall: float
    status: ChildStatus | None = None  # the child's whole status right after the transition


@dataclass(frozen=True, slots=True)
class LogLine:
    """Carry one line a child wrote to ``stdout`` or ``stderr`` (``system`` for our own notes)."""

    child: str
    stream: str
    line: str
    ts: str

    def as_dict(self) -> dict[str, Any]:
        """Return the line as served by the logs API: ``{ts, stream, line}``."""
        return {"ts": self.ts, "stream": self.stream, "line": self.line}


@dataclass(frozen=True, slots=True)
class SpawnRecord:
    """Identify a freshly spawned child so the daemon can record it (and adopt it later)."""

    child: str
    pid: int
    create_time: float | None
    argv: tuple[str, ...]
    port: int


@dataclass(frozen=True, slots=True)
class ProcessExit:
    """Tell that a recorded child process is gone (its tree cleaned up), so the record can go."""

    child: str
    pid: int
    exit_code: int | None
    exit_signal: str | None
    expected: bool
    at: float
    wall: float
