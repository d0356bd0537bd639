"""Readiness by notification: READY=1 on the run's NOTIFY_SOCKET, /health as the fallback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from supervisor import ChildProcess, ChildSpec, ChildState
from supervisor.readiness import next_poll
from tests.supervisor.conftest import LineRecorder, Recorder, make_spec

S = ChildState
MakeChild = Callable[[ChildSpec], ChildProcess]
SLOW_POLL = 5.0  # the first /health probe of these tests comes 5 s after the spawn


async def test_ready_notification_is_running_before_the_first_health_poll(
    make_child: MakeChild,
) -> None:
    child = make_child(make_spec("notify_ready.py", ready_poll=SLOW_POLL, start_timeout=20))
    recorder, lines = Recorder(), LineRecorder()
    child.add_listener(recorder)
    child.add_log_listener(lines)

    assert await child.start() is S.RUNNING

    starting, running = recorder.events
    assert running.new is S.RUNNING
    assert running.reason == "ready notification (READY=1)"
    # The fallback would only have probed SLOW_POLL seconds after the spawn.
    assert running.at - starting.at < SLOW_POLL
    await lines.wait_for(lambda line: line.line == "NOTIFIED")
    assert child.healthy


async def test_a_child_that_never_notifies_is_found_ready_by_health(make_child: MakeChild) -> None:
    child = make_child(make_spec("ready_then_wait.py"))
    recorder = Recorder()
    child.add_listener(recorder)

    assert await child.start() is S.RUNNING

    assert recorder.events[-1].reason == "health check passed"


async def test_without_notify_the_child_gets_no_socket(make_child: MakeChild) -> None:
    child = make_child(make_spec("notify_ready.py", notify=False))
    recorder, lines = Recorder(), LineRecorder()
    child.add_listener(recorder)
    child.add_log_listener(lines)

    assert await child.start() is S.RUNNING

    assert recorder.events[-1].reason == "health check passed"
    await lines.wait_for(lambda line: line.line == "NOT NOTIFIED")


def test_health_polls_come_fast_around_the_last_start_up_time() -> None:
    every, expected = 0.025, 0.040
    assert next_poll(0.0, every, None) == every  # nothing learnt yet: the regular pace
    assert next_poll(0.0, every, expected) == every  # well before: the regular pace
    assert next_poll(0.030, every, expected) == pytest.approx(0.002)  # up to 80 % of it
    assert next_poll(0.035, every, expected) == pytest.approx(every / 10)  # around it: fast
    assert next_poll(0.100, every, expected) == pytest.approx(every / 10)
    assert next_poll(0.106, every, expected) == every  # long after: back to the regular pace
