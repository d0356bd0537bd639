"""Run and watch child programs; report every lifecycle transition to listeners.

Knows nothing of HTTP servers, Socket.IO or SQLite: the daemon wires listeners.
"""

from supervisor.child import ChildProcess, ChildSpec
from supervisor.events import ExitInfo, LogLine, ProcessExit, SpawnRecord, StatusEvent
from supervisor.manager import SupervisorManager, UnknownChild
from supervisor.states import ALLOWED, ChildState, InvalidTransition

__all__ = [
    "ALLOWED",
    "ChildProcess",
    "ChildSpec",
    "ChildState",
    "ExitInfo",
    "InvalidTransition",
    "LogLine",
    "ProcessExit",
    "SpawnRecord",
    "StatusEvent",
    "SupervisorManager",
    "UnknownChild",
]
