"""A 1 000-write burst: every client, polling or websocket, gets every event in seq order."""

from __future__ import annotations

import asyncio

import pytest

from tests.realtime.clients import EventClient
from tests.realtime.conftest import Connect
from tests.support.daemon import Api, Daemon

WRITES = 1000
POLLING = 5
WEBSOCKET = 15


@pytest.mark.timeout(180)
async def test_a_thousand_writes_reach_every_client_in_order(
    daemon: Daemon, api: Api, connect: Connect
) -> None:
    # More than 16 events wait for a polling client between two polls: each poll response must
    # still hold at most 16 packets, or python-engineio's client drops the connection.
    transports = ["polling"] * POLLING + ["websocket"] * WEBSOCKET
    clients: list[EventClient] = await asyncio.gather(
        *(connect(daemon, "python", t) for t in transports)
    )
    _, stats = await api.get("/api/events/stats")
    first = stats["lastSeq"] + 1

    async def writes() -> None:
        for i in range(WRITES):
            status, _ = await api.put("/api/models/qwen3-max", {"name": f"Burst {i}"})
            assert status == 200

    async def drain(client: EventClient) -> list[int]:
        return [(await client.expect("models:updated", 30))["seq"] for _ in range(WRITES)]

    _, *received = await asyncio.gather(writes(), *(drain(c) for c in clients))
    expected = list(range(first, first + WRITES))
    for client, seqs in zip(clients, received, strict=True):
        assert seqs == expected, client.transport
        assert client.disconnects == []
    assert daemon.logs("socketio_client_disconnected") == []
    assert daemon.logs("socketio_client_too_slow") == []
