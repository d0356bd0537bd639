"""Many clients at once: every client gets every event, in seq order, without gaps."""

from __future__ import annotations

import asyncio

from tests.realtime.clients import EventClient
from tests.realtime.conftest import Connect
from tests.support.daemon import Api, Daemon

CLIENTS = 50
WRITES = 100


async def test_fifty_clients_get_all_hundred_writes_in_order(
    daemon: Daemon, api: Api, connect: Connect
) -> None:
    # Half over websocket, half over polling, all connected before the first write.
    clients: list[EventClient] = await asyncio.gather(
        *(connect(daemon, "python", "websocket" if i % 2 else "polling") for i in range(CLIENTS))
    )
    status, body = await api.get("/api/events/stats")
    assert status == 200
    assert body["clients"] == {
        "total": CLIENTS,
        "byTransport": {"websocket": CLIENTS // 2, "polling": CLIENTS // 2},
    }
    first = body["lastSeq"] + 1

    for i in range(WRITES):
        status, _ = await api.put("/api/models/qwen3-max", {"name": f"Qwen3 Max {i}"})
        assert status == 200

    async def drain(client: EventClient) -> list[int]:
        seqs = []
        for _ in range(WRITES):
            data = await client.expect("models:updated", timeout=10)
            seqs.append(data["seq"])
        return seqs

    received = await asyncio.gather(*(drain(c) for c in clients))
    expected = list(range(first, first + WRITES))
    for client, seqs in zip(clients, received, strict=True):
        assert seqs == expected, client.transport
        assert client.pending() == []
    # Every event carried the state after its own write.
    last = clients[0].seen[-1][1]
    assert any(m["name"] == f"Qwen3 Max {WRITES - 1}" for m in last["items"])

    status, body = await api.get("/api/events/stats")
    assert body["events"]["models:updated"] == WRITES
    assert body["lastSeq"] == first + WRITES - 1
