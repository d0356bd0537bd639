"""SupervisorManager: order, aggregate status, serialised commands, stop winning."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from supervisor import ChildSpec, ChildState, StatusEvent, SupervisorManager, UnknownChild
from tests.supervisor.conftest import LineRecorder, Recorder, make_spec

S = ChildState
MakeManager = Callable[..., SupervisorManager]


def pair(qwen: tuple[Any, ...] = ("ready_then_wait.py",), **overrides: Any) -> list[ChildSpec]:
    return [
        make_spec(*qwen, name="qwen-proxy", **overrides),
        make_spec("ready_then_wait.py", name="provider-router", **overrides),
    ]


def check_chains(events: list[StatusEvent]) -> None:
    """Assert each child's events form one unbroken chain starting from STOPPED."""
    last: dict[str, ChildState] = {}
    for event in events:
        assert event.old is last.get(event.child, S.STOPPED), event
        last[event.child] = event.new


async def test_start_all_in_order_and_stop_all_in_reverse(make_manager: MakeManager) -> None:
    manager = make_manager(pair())
    recorder = Recorder()
    manager.add_listener(recorder)
    assert manager.names == ("qwen-proxy", "provider-router")

    await manager.start_all()

    assert manager.aggregate_status() == "running"
    assert [(e.child, e.new.value) for e in recorder.events] == [
        ("qwen-proxy", "starting"),
        ("qwen-proxy", "running"),
        ("provider-router", "starting"),
        ("provider-router", "running"),
    ]
    snapshot = manager.snapshot()
    assert set(snapshot) == {"qwen-proxy", "provider-router"}
    assert all(child["running"] for child in snapshot.values())

    recorder.events.clear()
    await manager.stop_all()

    assert manager.aggregate_status() == "stopped"
    assert [(e.child, e.new.value) for e in recorder.events] == [
        ("provider-router", "stopping"),
        ("provider-router", "stopped"),
        ("qwen-proxy", "stopping"),
        ("qwen-proxy", "stopped"),
    ]


async def test_single_child_commands_and_partial(make_manager: MakeManager) -> None:
    manager = make_manager(pair())
    assert await manager.start("provider-router") is S.RUNNING
    assert manager.child("qwen-proxy").state is S.STOPPED
    assert manager.aggregate_status() == "partial"
    pid = manager.child("provider-router").pid
    assert await manager.restart("provider-router") is S.RUNNING
    assert manager.child("provider-router").pid != pid
    assert manager.snapshot()["provider-router"]["restarts"] == 1
    await manager.stop("provider-router")
    assert manager.aggregate_status() == "stopped"


async def test_aggregate_status_rules() -> None:
    manager = SupervisorManager(pair())
    qwen, router = manager.children

    assert manager.aggregate_status() == "stopped"
    qwen._set_state(S.STARTING, reason="t")
    assert manager.aggregate_status() == "starting"
    qwen._set_state(S.BACKOFF, reason="t")
    assert manager.aggregate_status() == "starting"
    router._set_state(S.STARTING, reason="t")
    router._set_state(S.RUNNING, reason="t")
    assert manager.aggregate_status() == "partial"
    qwen._set_state(S.FAILED, reason="t")
    assert manager.aggregate_status() == "partial"
    qwen._set_state(S.STARTING, reason="t")
    qwen._set_state(S.RUNNING, reason="t")
    assert manager.aggregate_status() == "running"
    qwen._set_state(S.STOPPING, reason="t")
    router._set_state(S.FAILED, reason="t")
    assert manager.aggregate_status() == "stopped"


async def test_unknown_child_raises(make_manager: MakeManager) -> None:
    manager = make_manager(pair())
    with pytest.raises(UnknownChild) as info:
        await manager.start("nope")
    assert isinstance(info.value, KeyError)
    with pytest.raises(KeyError):
        await manager.stop("nope")
    with pytest.raises(KeyError):
        manager.logs("nope")


@pytest.mark.parametrize("last", ["start_all", "stop_all", "restart_all"])
async def test_concurrent_requests_end_consistent(make_manager: MakeManager, last: str) -> None:
    with capture_logs() as logs:
        manager = make_manager(pair())
        recorder = Recorder()
        manager.add_listener(recorder)
        rng = random.Random(last)
        names = [rng.choice(["start_all", "stop_all", "restart_all"]) for _ in range(9)] + [last]

        async with asyncio.timeout(20):
            await asyncio.gather(*(getattr(manager, name)() for name in names))

    expected = S.STOPPED if last == "stop_all" else S.RUNNING
    assert [child.state for child in manager.children] == [expected, expected]
    check_chains(recorder.events)
    problems = [e for e in logs if e["log_level"] in ("error", "critical", "exception")]
    assert problems == []


async def test_stop_all_preempts_a_pending_start_all(make_manager: MakeManager) -> None:
    manager = make_manager(pair(("slow_start.py", 60), start_timeout=10))
    recorder, lines = Recorder(), LineRecorder()
    manager.add_listener(recorder)
    manager.add_log_listener(lines)
    start = asyncio.create_task(manager.start_all())
    await lines.wait_for(lambda line: line.child == "qwen-proxy" and line.line == "READY")
    loop = asyncio.get_running_loop()

    began = loop.time()
    await manager.stop_all()

    assert loop.time() - began < 1.0
    async with asyncio.timeout(1):
        await start
    assert [(e.child, e.new.value) for e in recorder.events] == [
        ("qwen-proxy", "starting"),
        ("qwen-proxy", "stopping"),
        ("qwen-proxy", "stopped"),
    ]  # provider-router was never started: the stop overtook the rest of start_all
    assert manager.aggregate_status() == "stopped"


async def test_start_during_stop_waits_for_it(make_manager: MakeManager) -> None:
    manager = make_manager(pair())
    await manager.start_all()
    recorder = Recorder()
    manager.add_listener(recorder)

    stop = asyncio.create_task(manager.stop_all())
    start = asyncio.create_task(manager.start_all())
    async with asyncio.timeout(10):
        await asyncio.gather(stop, start)

    states = [e.new.value for e in recorder.events]
    assert states.count("stopped") == 2
    last_stopped = max(i for i, s in enumerate(states) if s == "stopped")
    first_starting = states.index("starting")
    assert last_stopped < first_starting
    assert manager.aggregate_status() == "running"


async def test_shutdown_stops_everything_and_refuses_starts(make_manager: MakeManager) -> None:
    manager = make_manager(pair())
    await manager.start_all()
    pids = [child.pid for child in manager.children]
    assert None not in pids

    await manager.shutdown()

    assert manager.aggregate_status() == "stopped"
    await manager.start_all()
    assert manager.aggregate_status() == "stopped"
