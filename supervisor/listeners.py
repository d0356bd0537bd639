"""The four kinds of listener a child reports to, and the call that isolates them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from supervisor.events import LogLine, ProcessExit, SpawnRecord, StatusEvent

StatusListener = Callable[[StatusEvent], None]
LogListener = Callable[[LogLine], None]
SpawnListener = Callable[[SpawnRecord], None]
ExitListener = Callable[[ProcessExit], None]

_T = TypeVar("_T")
_log = structlog.stdlib.get_logger(__name__)


class Listeners:
    """Hold the listeners of one child; a listener that raises is logged, never propagated."""

    def __init__(self) -> None:
        self._status: list[StatusListener] = []
        self._lines: list[LogListener] = []
        self._spawns: list[SpawnListener] = []
        self._exits: list[ExitListener] = []

    def add_listener(self, callback: StatusListener) -> Callable[[], None]:
        """Call ``callback(StatusEvent)`` on every transition; return an unsubscribe function."""
        return _subscribe(self._status, callback)

    def add_log_listener(self, callback: LogListener) -> Callable[[], None]:
        """Call ``callback(LogLine)`` for every output line; return an unsubscribe function."""
        return _subscribe(self._lines, callback)

    def add_spawn_listener(self, callback: SpawnListener) -> Callable[[], None]:
        """Call ``callback(SpawnRecord)`` after every spawn; return an unsubscribe function."""
        return _subscribe(self._spawns, callback)

    def add_exit_listener(self, callback: ExitListener) -> Callable[[], None]:
        """Call ``callback(ProcessExit)`` once a process and its tree are gone."""
        return _subscribe(self._exits, callback)

    def notify_status(self, event: StatusEvent) -> None:
        _call_each(self._status, event)

    def notify_log(self, line: LogLine) -> None:
        _call_each(self._lines, line)

    def notify_spawn(self, record: SpawnRecord) -> None:
        _call_each(self._spawns, record)

    def notify_exit(self, record: ProcessExit) -> None:
        _call_each(self._exits, record)


def _subscribe(listeners: list[Any], callback: Any) -> Callable[[], None]:
    listeners.append(callback)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            listeners.remove(callback)

    return unsubscribe


def _call_each(listeners: list[Callable[[_T], None]], item: _T) -> None:
    for callback in list(listeners):
        try:
            callback(item)
        except Exception:
            _log.exception("listener_failed", listener=repr(callback))
