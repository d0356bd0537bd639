"""Transition table tests: no processes, the machine is driven through ``_set_state``."""

from __future__ import annotations

import pytest

from supervisor import ALLOWED, ChildProcess, ChildState, InvalidTransition, StatusEvent
from tests.supervisor.conftest import Recorder, make_spec

S = ChildState

# A legal path from STOPPED to each state, used to put a child in a given state.
PATH_TO: dict[ChildState, list[ChildState]] = {
    S.STOPPED: [],
    S.STARTING: [S.STARTING],
    S.RUNNING: [S.STARTING, S.RUNNING],
    S.STOPPING: [S.STARTING, S.RUNNING, S.STOPPING],
    S.BACKOFF: [S.STARTING, S.BACKOFF],
    S.FAILED: [S.STARTING, S.FAILED],
}


def child_in(state: ChildState) -> tuple[ChildProcess, Recorder]:
    child = ChildProcess(make_spec(port=3999))
    for step in PATH_TO[state]:
        child._set_state(step, reason="setup")
    recorder = Recorder()
    child.add_listener(recorder)
    return child, recorder


def check_edge(old: ChildState, new: ChildState) -> None:
    child, recorder = child_in(old)
    child._set_state(new, reason="test", exit_code=3, exit_signal=None)
    assert child.state is new
    assert child.reason == "test"
    assert len(recorder.events) == 1
    event = recorder.events[0]
    assert (event.child, event.old, event.new) == ("fake", old, new)
    assert (event.exit_code, event.reason) == (3, "test")


async def test_stopped_to_starting() -> None:
    check_edge(S.STOPPED, S.STARTING)


async def test_starting_to_running() -> None:
    check_edge(S.STARTING, S.RUNNING)


async def test_starting_to_backoff() -> None:
    check_edge(S.STARTING, S.BACKOFF)


async def test_starting_to_failed() -> None:
    check_edge(S.STARTING, S.FAILED)


async def test_starting_to_stopping() -> None:
    check_edge(S.STARTING, S.STOPPING)


async def test_running_to_stopping() -> None:
    check_edge(S.RUNNING, S.STOPPING)


async def test_running_to_backoff() -> None:
    check_edge(S.RUNNING, S.BACKOFF)


async def test_running_to_failed() -> None:
    check_edge(S.RUNNING, S.FAILED)


async def test_stopping_to_stopped() -> None:
    check_edge(S.STOPPING, S.STOPPED)


async def test_backoff_to_starting() -> None:
    check_edge(S.BACKOFF, S.STARTING)


async def test_backoff_to_stopped() -> None:
    check_edge(S.BACKOFF, S.STOPPED)


async def test_backoff_to_failed() -> None:
    check_edge(S.BACKOFF, S.FAILED)


async def test_failed_to_starting() -> None:
    check_edge(S.FAILED, S.STARTING)


async def test_failed_to_stopped() -> None:
    check_edge(S.FAILED, S.STOPPED)


def test_every_allowed_edge_has_a_test() -> None:
    names = {f"test_{old}_to_{new}" for old, targets in ALLOWED.items() for new in targets}
    assert names <= set(globals())


ILLEGAL = [(old, new) for old in S for new in S if new is not old and new not in ALLOWED[old]]


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=[f"{o}-{n}" for o, n in ILLEGAL])
async def test_illegal_edge_raises(old: ChildState, new: ChildState) -> None:
    child, recorder = child_in(old)
    with pytest.raises(InvalidTransition) as info:
        child._set_state(new, reason="bug")
    assert (info.value.old, info.value.new) == (old, new)
    assert child.state is old
    assert recorder.events == []


@pytest.mark.parametrize("state", list(S))
async def test_unchanged_state_emits_nothing(state: ChildState) -> None:
    child, recorder = child_in(state)
    child._set_state(state, reason="again")
    assert recorder.events == []
    assert child.reason == "setup" or state is S.STOPPED


async def test_failing_listener_does_not_break_the_machine() -> None:
    child, recorder = child_in(S.STOPPED)

    def broken(event: StatusEvent) -> None:
        raise RuntimeError("listener bug")

    child.add_listener(broken)
    after = Recorder()
    child.add_listener(after)
    child._set_state(S.STARTING, reason="go")
    assert child.state is S.STARTING
    assert len(recorder.events) == len(after.events) == 1


async def test_unsubscribe_stops_events() -> None:
    child, _ = child_in(S.STOPPED)
    recorder = Recorder()
    unsubscribe = child.add_listener(recorder)
    unsubscribe()
    child._set_state(S.STARTING, reason="go")
    assert recorder.events == []


async def test_event_is_a_frozen_snapshot() -> None:
    child, recorder = child_in(S.STOPPED)
    child._set_state(S.STARTING, reason="go")
    event = recorder.events[0]
    with pytest.raises(AttributeError):
        event.reason = "changed"  # type: ignore[misc]
    assert event.at > 0 and event.wall > 0


async def test_wait_for_state_resolves_on_transition() -> None:
    child, _ = child_in(S.STOPPED)
    assert await child.wait_for_state(S.STOPPED) is S.STOPPED
    with pytest.raises(TimeoutError):
        await child.wait_for_state(S.RUNNING, timeout=0.01)
    child._set_state(S.STARTING, reason="go")
    child._set_state(S.RUNNING, reason="ready")
    assert await child.wait_for_state(S.RUNNING, S.FAILED, timeout=1) is S.RUNNING
