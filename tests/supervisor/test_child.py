"""ChildProcess against real fake children: exits, restarts, crash loop, stop, ports, adoption."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import psutil
import pytest

from supervisor import ChildProcess, ChildSpec, ChildState, LogLine, ProcessExit, SpawnRecord
from supervisor.orphans import stop_orphan
from tests.supervisor.conftest import LineRecorder, Recorder, fake_argv, make_spec
from tests.support.processes import alive, free_port

S = ChildState
MakeChild = Callable[[ChildSpec], ChildProcess]


def watched(child: ChildProcess) -> tuple[Recorder, LineRecorder]:
    recorder, lines = Recorder(), LineRecorder()
    child.add_listener(recorder)
    child.add_log_listener(lines)
    return recorder, lines


async def test_start_becomes_running_and_stop_uses_sigterm(make_child: MakeChild) -> None:
    child = make_child(make_spec())
    recorder, lines = watched(child)

    assert await child.start() is S.RUNNING

    assert recorder.edges() == [("stopped", "starting"), ("starting", "running")]
    assert recorder.events[1].pid == child.pid is not None
    ready = await lines.wait_for(lambda line: line.line == "READY")
    assert (ready.child, ready.stream) == ("fake", "stdout")
    assert {"stream": "stdout", "line": "READY"}.items() <= child.logs()[-1].items()
    assert child.healthy

    pid = child.pid
    await child.stop()

    assert recorder.edges()[2:] == [("running", "stopping"), ("stopping", "stopped")]
    stopped = recorder.events[-1]
    assert (stopped.pid, stopped.exit_code, stopped.exit_signal) == (pid, 0, None)
    assert stopped.expected is True
    assert stopped.reason == "stopped with SIGTERM"
    assert child.pid is None and child.state is S.STOPPED


async def test_sigkill_restarts_at_once(make_child: MakeChild) -> None:
    child = make_child(make_spec())
    recorder, _ = watched(child)
    await child.start()
    old_pid = child.pid
    assert old_pid is not None
    loop = asyncio.get_running_loop()

    recorder.drain()
    killed_at = loop.time()
    os.kill(old_pid, signal.SIGKILL)
    events = await recorder.until(S.RUNNING)

    assert [(e.old, e.new) for e in events] == [
        (S.RUNNING, S.BACKOFF),
        (S.BACKOFF, S.STARTING),
        (S.STARTING, S.RUNNING),
    ]
    crash = events[0]
    assert (crash.pid, crash.exit_code, crash.exit_signal) == (old_pid, None, "SIGKILL")
    assert crash.expected is False
    assert crash.reason == "exited with signal SIGKILL"
    assert crash.at - killed_at < 0.1  # the watcher learns the exit at once, not by polling
    assert events[2].pid == child.pid != old_pid
    assert child.restarts == 1
    assert child.last_exit is not None and child.last_exit.signal == "SIGKILL"
    assert child.snapshot()["lastExit"]["signal"] == "SIGKILL"


async def test_crash_loop_ends_failed_and_explicit_start_resets(make_child: MakeChild) -> None:
    spec = make_spec("exit_with.py", 3, "boom: bad config", crash_limit=2, backoff_base=0.01)
    child = make_child(spec)
    recorder, _ = watched(child)

    assert await child.start() is S.FAILED

    assert recorder.edges() == [
        ("stopped", "starting"),
        ("starting", "backoff"),
        ("backoff", "starting"),
        ("starting", "backoff"),
        ("backoff", "starting"),
        ("starting", "failed"),
    ]
    failed = recorder.events[-1]
    assert failed.exit_code == 3
    assert failed.reason is not None
    assert "3 failures" in failed.reason
    assert "exited with code 3" in failed.reason
    assert "boom: bad config" in failed.reason
    assert child.snapshot()["reason"] == failed.reason

    recorder.events.clear()
    assert await child.start() is S.FAILED  # it still crashes, but only after a fresh series
    assert recorder.edges()[0] == ("failed", "starting")
    assert len(recorder.events) == 6


async def test_stop_escalates_to_sigkill_on_the_whole_group(make_child: MakeChild) -> None:
    child = make_child(make_spec("ignore_sigterm.py", stop_timeout=0.3))
    recorder, lines = watched(child)
    await child.start()
    line = await lines.wait_for(lambda line: line.line.startswith("GRANDCHILD "))
    assert child.pid is not None
    tree = [psutil.Process(child.pid), psutil.Process(int(line.line.split()[1]))]
    loop = asyncio.get_running_loop()

    began = loop.time()
    await child.stop()
    elapsed = loop.time() - began

    assert 0.3 <= elapsed < 1.5
    stopped = recorder.events[-1]
    assert (stopped.new, stopped.exit_signal) == (S.STOPPED, "SIGKILL")
    assert stopped.reason == "stopped with SIGKILL after 0.3s stop timeout"
    assert [p.pid for p in tree if alive(p)] == []


async def test_port_held_by_a_stranger_fails_and_spares_it(make_child: MakeChild) -> None:
    port = free_port()
    stranger = await asyncio.create_subprocess_exec(
        *fake_argv("ready_then_wait.py"),
        env={"PORT": str(port)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert stranger.stdout is not None
        async with asyncio.timeout(5):
            assert await stranger.stdout.readline() == b"READY\n"
        child = make_child(make_spec(port=port))
        recorder, _ = watched(child)

        assert await child.start() is S.FAILED

        name = psutil.Process(stranger.pid).name()
        assert recorder.edges() == [("stopped", "starting"), ("starting", "failed")]
        assert child.reason == f"port {port} in use by pid {stranger.pid} ({name})"
        assert recorder.events[-1].pid is None  # nothing was spawned
        assert stranger.returncode is None and alive(psutil.Process(stranger.pid))
    finally:
        stranger.terminate()
        await stranger.wait()


async def test_readiness_timeout_kills_and_backs_off(make_child: MakeChild) -> None:
    child = make_child(make_spec("slow_start.py", 60, start_timeout=0.3))
    recorder, _ = watched(child)
    await child.start(wait=False)

    events = await recorder.until(S.BACKOFF)

    assert events[-1].old is S.STARTING
    assert events[-1].reason == "not ready within 0.3s"
    assert events[-1].exit_signal == "SIGKILL"


async def test_liveness_failures_count_as_a_crash(make_child: MakeChild) -> None:
    spec = make_spec("unhealthy_after.py", 0.3, liveness_interval=0.05, liveness_failures=2)
    child = make_child(spec)
    recorder, _ = watched(child)
    assert await child.start() is S.RUNNING
    recorder.drain()

    events = await recorder.until(S.BACKOFF)

    assert (events[-1].old, events[-1].reason) == (S.RUNNING, "liveness probe failed 2 times")
    assert events[-1].exit_signal == "SIGKILL"


async def test_stop_wins_over_a_pending_restart(make_child: MakeChild) -> None:
    # The first failure restarts at once; the second waits backoff_base (0.3 s) in BACKOFF.
    spec = make_spec("exit_with.py", 1, backoff_base=0.3, crash_limit=10)
    child = make_child(spec)
    recorder, _ = watched(child)
    await child.start(wait=False)
    await recorder.until(S.BACKOFF)
    await recorder.until(S.BACKOFF)
    loop = asyncio.get_running_loop()

    began = loop.time()
    await child.stop()

    assert loop.time() - began < 0.1
    assert recorder.events[-1].old is S.BACKOFF and child.state is S.STOPPED
    recorder.drain()
    with pytest.raises(TimeoutError):  # the restart that was due at 0.3 s never happens
        await recorder.next(timeout=0.6)


async def test_stop_during_start_wins(make_child: MakeChild) -> None:
    child = make_child(make_spec("slow_start.py", 60))
    recorder, lines = watched(child)
    start = asyncio.create_task(child.start())
    await lines.wait_for(lambda line: line.line == "READY")  # spawned, not yet healthy

    await child.stop()

    async with asyncio.timeout(1):
        assert await start in (S.STOPPING, S.STOPPED)
    assert recorder.edges() == [
        ("stopped", "starting"),
        ("starting", "stopping"),
        ("stopping", "stopped"),
    ]


async def test_stop_right_after_start_request(make_child: MakeChild) -> None:
    child = make_child(make_spec())
    recorder, _ = watched(child)
    await child.start(wait=False)
    await child.stop()
    assert child.state is S.STOPPED
    assert recorder.edges()[-1] == ("stopping", "stopped")


async def test_spawn_failure_is_failed(make_child: MakeChild) -> None:
    spec = ChildSpec(name="fake", argv=("/nonexistent/program",), port=free_port())
    child = make_child(spec)
    assert await child.start() is S.FAILED
    assert child.reason is not None and child.reason.startswith("spawn failed:")


async def test_spawn_and_exit_listeners_get_records(make_child: MakeChild) -> None:
    spec = make_spec()
    child = make_child(spec)
    spawned: list[SpawnRecord] = []
    exited: list[ProcessExit] = []
    child.add_spawn_listener(spawned.append)
    child.add_exit_listener(exited.append)

    await child.start()
    assert child.pid is not None
    create_time = psutil.Process(child.pid).create_time()
    await child.stop()

    assert len(spawned) == 1
    record = spawned[0]
    assert (record.child, record.argv, record.port) == ("fake", spec.argv, spec.port)
    assert record.create_time == pytest.approx(create_time)
    assert len(exited) == 1
    assert (exited[0].pid, exited[0].expected, exited[0].exit_code) == (record.pid, True, 0)


async def test_snapshot_and_stats(make_child: MakeChild) -> None:
    child = make_child(make_spec())
    stopped = child.snapshot()
    assert stopped == {
        "running": False,
        "port": child.spec.port,
        "pid": None,
        "uptime": 0.0,
        "state": "stopped",
        "healthy": False,
        "restarts": 0,
        "startedAt": None,
        "lastExit": None,
        "reason": None,
        "cpu": 0.0,
        "memory": 0,
    }

    await child.start()
    snap = child.snapshot()

    assert snap["running"] is True and snap["state"] == "running" and snap["healthy"] is True
    assert snap["pid"] == child.pid
    assert isinstance(snap["startedAt"], str) and snap["startedAt"].endswith("Z")
    assert snap["uptime"] >= 0
    assert snap["memory"] > 1_000_000  # a Python interpreter's RSS
    assert snap["cpu"] >= 0
    assert child.stats() == {"cpu": snap["cpu"], "memory": snap["memory"]}  # cached ≤ 1/s


async def test_log_ring_buffer_is_bounded() -> None:
    child = ChildProcess(make_spec(log_lines=3))
    got: list[LogLine] = []
    child.add_log_listener(got.append)
    for n in range(5):
        child._output.add("stderr", f"line {n}\n".encode())
    assert [entry["line"] for entry in child.logs()] == ["line 2", "line 3", "line 4"]
    assert [entry["line"] for entry in child.logs(lines=1)] == ["line 4"]
    assert set(child.logs()[0]) == {"ts", "stream", "line"}
    assert len(got) == 5 and got[0].stream == "stderr"


async def test_explicit_restart_counts(make_child: MakeChild) -> None:
    child = make_child(make_spec())
    recorder, _ = watched(child)
    await child.start()
    first = child.pid
    assert await child.restart() is S.RUNNING
    assert child.pid != first and child.restarts == 1
    assert recorder.edges()[2:] == [
        ("running", "stopping"),
        ("stopping", "stopped"),
        ("stopped", "starting"),
        ("starting", "running"),
    ]


# ---------------------------------------------------------------------- adoption


async def spawn_orphan(port: int) -> asyncio.subprocess.Process:
    """Start a fake child the way a previous daemon would have (own session), READY."""
    orphan = await asyncio.create_subprocess_exec(
        *fake_argv("ready_then_wait.py"),
        env={"PORT": str(port)},
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert orphan.stdout is not None
    async with asyncio.timeout(5):
        assert await orphan.stdout.readline() == b"READY\n"
    return orphan


async def test_adopt_same_create_time_watches_it(make_child: MakeChild) -> None:
    port = free_port()
    orphan = await spawn_orphan(port)
    try:
        child = make_child(make_spec(port=port))
        recorder, _ = watched(child)
        create_time = psutil.Process(orphan.pid).create_time()

        assert await child.adopt(orphan.pid, create_time)
        assert await child.wait_for_state(S.RUNNING, S.FAILED, timeout=5) is S.RUNNING

        assert recorder.events[0].reason == f"adopting pid {orphan.pid}"
        assert recorder.events[1].pid == child.pid == orphan.pid
        assert child.logs()[-1]["stream"] == "system"

        recorder.drain()
        orphan.kill()  # its exit must be seen at once (pidfd), then a fresh child is spawned
        events = await recorder.until(S.RUNNING)
        assert [(e.old, e.new) for e in events][0] == (S.RUNNING, S.BACKOFF)
        assert events[0].pid == orphan.pid
        assert child.pid not in (None, orphan.pid)
    finally:
        if orphan.returncode is None:
            orphan.kill()
        await orphan.wait()


async def test_adopted_child_is_stopped_with_its_group(make_child: MakeChild) -> None:
    port = free_port()
    orphan = await spawn_orphan(port)
    try:
        child = make_child(make_spec(port=port))
        assert await child.adopt(orphan.pid, psutil.Process(orphan.pid).create_time())
        await child.wait_for_state(S.RUNNING, timeout=5)
        await child.stop()
        assert child.state is S.STOPPED
        async with asyncio.timeout(2):
            assert await orphan.wait() == 0  # ended by our SIGTERM
    finally:
        if orphan.returncode is None:
            orphan.kill()
        await orphan.wait()


async def test_recycled_pid_is_not_adopted_nor_stopped(make_child: MakeChild) -> None:
    port = free_port()
    orphan = await spawn_orphan(port)
    try:
        child = make_child(make_spec(port=port))
        recorder, _ = watched(child)
        real = psutil.Process(orphan.pid).create_time()

        assert not await child.adopt(orphan.pid, real + 5.0)
        assert not await stop_orphan("fake", orphan.pid, real - 5.0, stop_timeout=1.0)

        assert child.state is S.STOPPED and recorder.events == []
        assert orphan.returncode is None and alive(psutil.Process(orphan.pid))

        assert await stop_orphan("fake", orphan.pid, real, stop_timeout=1.0)
        async with asyncio.timeout(2):
            assert await orphan.wait() == 0
    finally:
        if orphan.returncode is None:
            orphan.kill()
        await orphan.wait()


async def test_detached_child_survives_and_is_adopted_by_the_next_owner(
    make_child: MakeChild,
) -> None:
    spec = make_spec()
    first = make_child(spec)
    spawned: list[SpawnRecord] = []
    first.add_spawn_listener(spawned.append)
    await first.start()
    assert first.pid is not None
    pid = first.pid  # still our child: the test reaps it at the end

    first.detach()
    await first.stop()  # ignored: the process is left for the next daemon

    record = spawned[0]
    assert record.create_time is not None
    assert alive(psutil.Process(record.pid))
    second = make_child(spec)
    assert await second.adopt(record.pid, record.create_time)
    assert await second.wait_for_state(S.RUNNING, timeout=5) is S.RUNNING
    await second.stop()
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)  # ended by the second owner
    assert os.waitstatus_to_exitcode(status) == 0


async def test_an_orphan_gone_before_it_is_watched_is_a_crash(
    make_child: MakeChild, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orphan ends between the create-time check and the pidfd: its exit is not lost."""
    port = free_port()
    child = make_child(make_spec(port=port))
    recorder, _ = watched(child)
    orphan = await spawn_orphan(port)
    try:

        def gone(pid: int, flags: int = 0) -> int:
            raise ProcessLookupError(pid)

        monkeypatch.setattr(os, "pidfd_open", gone)
        assert await child.adopt(orphan.pid, psutil.Process(orphan.pid).create_time())
        monkeypatch.undo()
        events = await recorder.until(S.BACKOFF)
        assert events[-1].pid == orphan.pid  # handled as the orphan's exit, then restarted
    finally:
        if orphan.returncode is None:
            orphan.kill()
        await orphan.wait()
        await child.stop()
