"""What clients that left leave behind: their reference cycles are collected, then trimmed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.realtime.conftest import Connect
from tests.support.daemon import Api, Daemon


async def heap_after(
    api: Api, predicate: Callable[[dict[str, int]], bool], timeout: float = 10
) -> dict[str, int]:
    """Return the daemon's heap counters once no client is connected and ``predicate`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        _, stats = await api.get("/api/events/stats")
        heap: dict[str, int] = stats["heap"]
        if stats["clients"]["total"] == 0 and predicate(heap):
            return heap
        assert asyncio.get_running_loop().time() < deadline, stats
        await asyncio.sleep(0.05)


async def test_clients_that_all_left_get_their_garbage_collected_and_trimmed(
    daemon: Daemon, api: Api, connect: Connect
) -> None:
    _, stats = await api.get("/api/events/stats")
    assert stats["heap"] == {"trims": 0, "garbageCollections": 0}  # nobody came or left yet
    clients = await asyncio.gather(
        *(connect(daemon, "python", "websocket" if i % 2 else "polling") for i in range(6))
    )
    for client in clients:
        await client.close()
    heap = await heap_after(api, lambda h: h["garbageCollections"] >= 1 and h["trims"] >= 1)
    assert heap["garbageCollections"] <= heap["trims"]  # a collection always precedes a trim
