"""Child lifecycle states and the only transitions allowed between them.

Stdlib only: the API server and the tests import this without pulling in psutil or asyncio.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class ChildState(StrEnum):
    """Name the lifecycle state of one supervised child (values are already JSON strings)."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    BACKOFF = "backoff"
    FAILED = "failed"


class InvalidTransition(Exception):
    """Raised when code asks for an edge that is not in ``ALLOWED`` (always a bug)."""

    def __init__(self, child: str, old: ChildState, new: ChildState) -> None:
        super().__init__(f"{child}: illegal transition {old} -> {new}")
        self.child = child
        self.old = old
        self.new = new


_S = ChildState

ALLOWED: dict[ChildState, frozenset[ChildState]] = {
    # An explicit start (or adoption of a recorded orphan) is the only way out of STOPPED.
    _S.STOPPED: frozenset({_S.STARTING}),
    # STARTING covers the port check, the spawn and the readiness probe:
    #   RUNNING  probe passed; BACKOFF  exited or probe timed out;
    #   FAILED   port held by a stranger, spawn impossible, or past the crash-loop limit;
    #   STOPPING a stop request wins over the pending start.
    _S.STARTING: frozenset({_S.RUNNING, _S.BACKOFF, _S.FAILED, _S.STOPPING}),
    # An unexpected exit or repeated liveness failure is BACKOFF, or FAILED past the limit.
    _S.RUNNING: frozenset({_S.STOPPING, _S.BACKOFF, _S.FAILED}),
    # The stop sequence always ends with the tree gone (SIGKILL is the last resort).
    _S.STOPPING: frozenset({_S.STOPPED}),
    # BACKOFF -> STOPPED: a stop during the delay cancels the pending restart (no process exists).
    # BACKOFF -> FAILED: the restart cannot happen at all (e.g. recovery gave up).
    _S.BACKOFF: frozenset({_S.STARTING, _S.STOPPED, _S.FAILED}),
    # FAILED is terminal until an explicit start; an explicit stop clears it to STOPPED so the
    # desired state "not running" reads the same whether or not the child had failed.
    _S.FAILED: frozenset({_S.STARTING, _S.STOPPED}),
}


def aggregate(states: Iterable[str]) -> str:
    """Return the status of a set of children: running, stopped, starting or partial.

    running: all run; stopped: none runs or is starting; starting: at least one is starting or
    backing off and none runs; partial: anything else (events.md).
    """
    states = list(states)
    running = sum(state == ChildState.RUNNING for state in states)
    starting = sum(state in (ChildState.STARTING, ChildState.BACKOFF) for state in states)
    if running == len(states):
        return "running"
    if running == 0 and starting == 0:
        return "stopped"
    if running == 0:
        return "starting"
    return "partial"


# States in which a process of this child may exist.
ACTIVE: frozenset[ChildState] = frozenset({_S.STARTING, _S.RUNNING, _S.STOPPING})
