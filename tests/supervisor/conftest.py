"""Fixtures for supervisor tests: fake child specs and event recorders."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from supervisor import ChildProcess, ChildSpec, ChildState, LogLine, StatusEvent, SupervisorManager
from tests.support.processes import free_port

FAKES = Path(__file__).resolve().parent.parent / "fakes"

# Tiny timings (style.md #36): every knob the tests do not set explicitly.
FAST: dict[str, Any] = {
    "start_timeout": 5.0,
    "stop_timeout": 1.0,
    "probe_timeout": 0.5,
    "backoff_base": 0.05,
    "backoff_factor": 2.0,
    "backoff_cap": 0.2,
    "backoff_jitter": 0.0,
    "stable_uptime": 60.0,
    "crash_limit": 5,
    "crash_window": 30.0,
    "liveness_interval": 0.1,
    "liveness_failures": 2,
}


def fake_argv(script: str, *args: object) -> tuple[str, ...]:
    """Return the argv that runs a fake child script."""
    return (sys.executable, "-u", str(FAKES / script), *(str(a) for a in args))


def make_spec(
    script: str = "ready_then_wait.py",
    *args: object,
    name: str = "fake",
    port: int | None = None,
    **overrides: Any,
) -> ChildSpec:
    """Return a spec running a fake child with fast timings."""
    knobs = {**FAST, **overrides}
    return ChildSpec(
        name=name,
        argv=fake_argv(script, *args),
        port=port if port is not None else free_port(),
        env={"PYTHONDONTWRITEBYTECODE": "1"},
        **knobs,
    )


class Recorder:
    """Collect StatusEvents (a listener) and let tests await them in order."""

    def __init__(self) -> None:
        self.events: list[StatusEvent] = []
        self.queue: asyncio.Queue[StatusEvent] = asyncio.Queue()

    def __call__(self, event: StatusEvent) -> None:
        self.events.append(event)
        self.queue.put_nowait(event)

    def drain(self) -> None:
        """Forget queued events (``events`` keeps them) so ``until`` waits for new ones."""
        while not self.queue.empty():
            self.queue.get_nowait()

    async def next(self, timeout: float = 5.0) -> StatusEvent:
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    async def until(
        self, new: ChildState, *, child: str | None = None, timeout: float = 5.0
    ) -> list[StatusEvent]:
        """Return the events up to and including the first one entering ``new``."""
        seen: list[StatusEvent] = []
        async with asyncio.timeout(timeout):
            while True:
                event = await self.queue.get()
                seen.append(event)
                if event.new is new and (child is None or event.child == child):
                    return seen

    def edges(self, child: str | None = None) -> list[tuple[str, str]]:
        return [(e.old.value, e.new.value) for e in self.events if child in (None, e.child)]


class LineRecorder:
    """Collect LogLines (a log listener) and let tests await a specific line."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[LogLine] = asyncio.Queue()

    def __call__(self, line: LogLine) -> None:
        self.queue.put_nowait(line)

    async def wait_for(self, predicate: Callable[[LogLine], bool], timeout: float = 5.0) -> LogLine:
        async with asyncio.timeout(timeout):
            while True:
                line = await self.queue.get()
                if predicate(line):
                    return line


@pytest.fixture
async def make_child() -> AsyncIterator[Callable[[ChildSpec], ChildProcess]]:
    """Build ChildProcesses that are all stopped after the test, whatever happened."""
    made: list[ChildProcess] = []

    def factory(spec: ChildSpec) -> ChildProcess:
        child = ChildProcess(spec)
        made.append(child)
        return child

    yield factory
    for child in made:
        await child.stop()


@pytest.fixture
async def make_manager() -> AsyncIterator[Callable[..., SupervisorManager]]:
    """Build SupervisorManagers that are all shut down after the test."""
    made: list[SupervisorManager] = []

    def factory(specs: list[ChildSpec], **kwargs: Any) -> SupervisorManager:
        manager = SupervisorManager(specs, **kwargs)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        await manager.shutdown()
