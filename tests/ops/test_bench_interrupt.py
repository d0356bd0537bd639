"""An interrupted bench/events.py ends every process it started (daemon, Node client workers)."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from pathlib import Path

import psutil
import pytest

from tests.support.capture import record
from tests.support.processes import alive

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_an_interrupted_event_benchmark_leaves_no_process_behind(sig: signal.Signals) -> None:
    bench = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "events.py"), "--clients", "4", "--workers", "2",
        "--latency-writes", "100000", "--servers", "fast",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    parent = psutil.Process(bench.pid)

    def workers() -> list[psutil.Process]:
        found = []
        for child in parent.children(recursive=True):
            try:
                if any("bench-worker.mjs" in part for part in child.cmdline()):
                    found.append(child)
            except psutil.Error:
                continue
        return found

    try:
        async with asyncio.timeout(60):  # the daemon starts, then the client workers
            for _ in itertools.count():
                if len(workers()) >= 2:
                    break
                await asyncio.sleep(0.05)
        started = parent.children(recursive=True)
        assert len(started) >= 3  # the daemon and two workers
        bench.send_signal(sig)  # only the benchmark: its children must be ended by it
        async with asyncio.timeout(30):
            output, _ = await bench.communicate()
        record("bench/events.py", output.decode(errors="replace"))
        assert bench.returncode != 0
        gone, still = psutil.wait_procs(started, timeout=5)
        assert [p for p in still if alive(p)] == []
    finally:
        if bench.returncode is None:
            bench.kill()
            await bench.wait()
        for child in parent.children(recursive=True) if alive(parent) else []:
            child.kill()
