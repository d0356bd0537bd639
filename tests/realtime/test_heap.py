"""Giving freed heap memory back: one trim per wave of requests, off the event loop."""

from __future__ import annotations

import asyncio
import threading

from apiserver.realtime.heap import HeapTrimmer, load_malloc_trim


async def test_a_wave_of_requests_makes_one_trim_in_a_worker_thread() -> None:
    calls: list[tuple[int, bool]] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def trim(pad: int) -> int:
        calls.append((pad, threading.current_thread() is threading.main_thread()))
        loop.call_soon_threadsafe(done.set)
        return 1

    trimmer = HeapTrimmer(trim, delay=0.05, min_interval=0.3, follow_ups=())
    for _ in range(100):  # e.g. a thousand clients leaving at once
        trimmer.request()
    await asyncio.wait_for(done.wait(), 5)
    assert calls == [(0, False)]  # malloc_trim(0), not on the event loop's thread

    done.clear()
    trimmer.request()  # within the interval: waits for its end, still one more trim
    trimmer.request()
    await asyncio.sleep(0.1)
    assert len(calls) == 1
    await asyncio.wait_for(done.wait(), 5)
    assert len(calls) == 2
    trimmer.close()


async def test_without_glibc_requests_do_nothing() -> None:
    trimmer = HeapTrimmer(None, delay=0)
    trimmer._trim = None  # as on a C library without malloc_trim
    trimmer.request()
    await asyncio.sleep(0.01)
    assert trimmer.trims == 0 and not trimmer.available


def test_glibc_malloc_trim_is_found_here() -> None:
    trim = load_malloc_trim()
    assert trim is not None  # the daemon's supported platform is Linux with glibc
    assert trim(0) in (0, 1)


async def test_memory_freed_late_is_trimmed_by_the_follow_ups() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def trim(_pad: int) -> int:
        calls.append(loop.time())
        if len(calls) == 3:
            loop.call_soon_threadsafe(done.set)
        return 1

    trimmer = HeapTrimmer(trim, delay=0.01, min_interval=0.01, follow_ups=(0.1, 0.2))
    started = loop.time()
    trimmer.request()
    await asyncio.wait_for(done.wait(), 5)
    assert len(calls) == 3  # the requested trim, then one per follow-up
    assert calls[1] - started >= 0.1 and calls[2] - started >= 0.2
    trimmer.close()


async def test_a_trim_after_clients_left_collects_garbage_only_when_it_pays() -> None:
    collections: list[int] = []
    trims = asyncio.Queue[int]()
    loop = asyncio.get_running_loop()
    connected = [3]

    def collect() -> int:
        collections.append(connected[0])
        return 0

    def trim(_pad: int) -> int:
        loop.call_soon_threadsafe(trims.put_nowait, 1)
        return 1

    trimmer = HeapTrimmer(
        trim, delay=0.01, min_interval=0.01, follow_ups=(), connected=lambda: connected[0],
        collect=collect,
    )  # fmt: skip
    trimmer.request(departed=1)  # 1 left, 3 stay: a collection would walk mostly live objects
    await asyncio.wait_for(trims.get(), 5)
    assert collections == [] and trimmer.collections == 0

    trimmer.request()  # a drained backlog, nobody left: no collection either
    await asyncio.wait_for(trims.get(), 5)
    assert collections == []

    connected[0] = 0
    trimmer.request(departed=3)  # 4 left since the last collection, none stay
    await asyncio.wait_for(trims.get(), 5)
    assert collections == [0] and trimmer.collections == 1

    trimmer.request(departed=0)  # counted from the last collection: nothing left since
    await asyncio.wait_for(trims.get(), 5)
    assert collections == [0]
    trimmer.close()
