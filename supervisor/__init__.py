"""Run and watch child programs; report every lifecycle transition to listeners.

Knows nothing of HTTP servers, Socket.IO or SQLite: the daemon wires listeners.
"""

from supervisor.child import ChildProcess
from supervisor.events import ChildStatus, ExitInfo, LogLine, ProcessExit, SpawnRecord, StatusEvent
from supervisor.manager import SupervisorManager, UnknownChild
from supervisor.policy import RestartDecision, RestartPolicy
from supervisor.spec import ChildSpec
from supervisor.states import ALLOWED, ChildState, InvalidTransition

__all__ = [
    "ALLOWED",
    "ChildProcess",
    "ChildSpec",
    "ChildState",
    "ChildStatus",
    "ExitInfo",
    "InvalidTransition",
    "LogLine",
    "ProcessExit",
    "RestartDecision",
    "RestartPolicy",
    "SpawnRecord",
    "StatusEvent",
    "SupervisorManager",
    "UnknownChild",
]
