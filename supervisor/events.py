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
class ExitInfo:
    """Record how a child's process ended: exit code or signal name, and when."""

    code: int | None
    signal: str | None
    at: str

    def as_dict(self) -> dict[str, Any]:
        """Return ``{code, signal, at}`` for the status payload."""
        return {"code": self.code, "signal": self.signal, "at": self.at}


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
