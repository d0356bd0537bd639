"""Descendants that leave a child's group are found by the run marker (here without subreaper)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator

import psutil
import pytest

from supervisor import ChildProcess, ChildSpec, ChildState
from supervisor.tree import MARKER_ENV, marked
from tests.supervisor.conftest import LineRecorder, make_spec
from tests.support.processes import alive

S = ChildState
MakeChild = Callable[[ChildSpec], ChildProcess]


@pytest.fixture
def strays() -> Iterator[list[psutil.Process]]:
    """Grandchildren to kill at teardown if a test failed to (they are not pytest's children)."""
    procs: list[psutil.Process] = []
    yield procs
    for proc in procs:
        if alive(proc):
            proc.kill()
    psutil.wait_procs(procs, timeout=3)


async def escaped_grandchildren(child: ChildProcess) -> list[psutil.Process]:
    lines = LineRecorder()
    child.add_log_listener(lines)
    assert await child.start() is S.RUNNING
    line = await lines.wait_for(lambda line: line.line.startswith("GRANDCHILDREN "))
    return [psutil.Process(int(pid)) for pid in line.line.split()[1:]]


async def until_gone(procs: list[psutil.Process], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if not any(alive(p) for p in procs):
                return
            await asyncio.sleep(0.02)


async def test_escaped_grandchildren_carry_the_run_marker(
    make_child: MakeChild, strays: list[psutil.Process]
) -> None:
    child = make_child(make_spec("escaping_grandchildren.py"))
    escaped = await escaped_grandchildren(child)
    strays.extend(escaped)
    assert child.pid is not None
    marker = psutil.Process(child.pid).environ()[MARKER_ENV]
    assert marker.split(".")[1:] == ["fake", "1"]  # owner token, child name, run number
    assert {p.pid for p in marked(marker)} == {child.pid, *(p.pid for p in escaped)}
    assert all(os.getpgid(p.pid) != child.pid for p in escaped)
    await child.stop()
    await until_gone(escaped)


async def test_a_crash_kills_the_escaped_grandchildren(
    make_child: MakeChild, strays: list[psutil.Process]
) -> None:
    child = make_child(make_spec("escaping_grandchildren.py"))
    escaped = await escaped_grandchildren(child)
    strays.extend(escaped)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    await until_gone(escaped)
    await child.wait_for_state(S.RUNNING, timeout=5)
    await child.stop()  # and the next run's grandchildren with it


def test_the_marker_scan_matches_a_run_and_its_sub_runs_only() -> None:
    """The /proc scan finds exactly what psutil's environ() reading finds."""
    owner = f"scan-{os.getpid()}"
    values = [f"{owner}.qwen.7", f"{owner}.qwen.70", f"{owner}.qwen.7.x", "other"]
    procs = [
        psutil.Popen(["sleep", "30"], env={**os.environ, MARKER_ENV: value}) for value in values
    ]
    # A variable whose *value* holds the marker text is not the marker.
    procs.append(
        psutil.Popen(["sleep", "30"], env={**os.environ, "X": f"{MARKER_ENV}={owner}.qwen.7"})
    )
    try:
        found = {p.pid for p in marked(f"{owner}.qwen.7")}
        assert found == {procs[0].pid, procs[2].pid}
        assert {p.pid for p in marked(owner)} == {p.pid for p in procs[:3]}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
