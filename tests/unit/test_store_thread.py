"""The store's database thread: jobs in order, and waiting without preempting the event loop."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from qwenstack_core.store import worker
from qwenstack_core.store.worker import DatabaseThread


def scheduler_of(native_id: int) -> int:
    return os.sched_getscheduler(native_id)


async def test_it_waits_as_a_batch_thread_and_works_as_a_normal_one() -> None:
    thread = DatabaseThread(yield_on_wake=True)
    try:
        policy_at_work = await thread.run(lambda: os.sched_getscheduler(0))
        native_id = await thread.run(threading.get_native_id)
        assert policy_at_work == os.SCHED_OTHER
        # Idle now, blocked in its wait for the next job: a batch thread, whose wake-up does
        # not preempt the thread that hands it work.
        for _ in range(5000):  # a deadline of about 5 s
            if scheduler_of(native_id) == os.SCHED_BATCH:
                break
            await asyncio.sleep(0.001)
        else:
            pytest.fail("the idle store thread never waited as SCHED_BATCH")
        assert await thread.run(lambda: 6 * 7) == 42
    finally:
        await thread.stop()


async def test_where_the_policy_cannot_be_changed_it_waits_as_a_normal_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(_policy: int | None) -> None:
        raise PermissionError("sched_setscheduler not allowed here")

    monkeypatch.setattr(worker, "_set_policy", refuse)
    thread = DatabaseThread(yield_on_wake=True)
    try:
        results = await asyncio.gather(*(thread.run(lambda n=n: n) for n in range(20)))
        assert results == list(range(20))  # every job ran, in order
        native_id = await thread.run(threading.get_native_id)
        assert scheduler_of(native_id) == os.SCHED_OTHER
        assert await thread.run(lambda: "still working") == "still working"
    finally:
        await thread.stop()


async def test_without_yield_on_wake_it_stays_a_normal_thread() -> None:
    thread = DatabaseThread()
    try:
        native_id = await thread.run(threading.get_native_id)
        await thread.run(lambda: None)
        assert scheduler_of(native_id) == os.SCHED_OTHER
    finally:
        await thread.stop()
