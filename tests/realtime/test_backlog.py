"""Bounded memory: clients that never read or never poll are dropped; everyone else gets all.

The daemon runs with small caps (1 MiB per client, 16 MiB for all) and ~100 KB events. The
bound checked for its peak RSS (``RSS_BOUND_MIB``) is the one the README states for these caps.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.realtime.clients import EventClient
from tests.realtime.conftest import Connect
from tests.realtime.stalled import StalledWebSocket, stalled_poller
from tests.support.daemon import Api, Daemon

EVENTS = 100
NORMAL = 20
PAYLOAD_KIB = 100
# Peak RSS over the daemon's RSS before the clients came (MiB): caps + one copy of each event
# kept for sync + encoding buffers. Without the caps each stalled client held every event.
RSS_BOUND_MIB = 120


def rss_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(field)


@pytest.mark.timeout(90)
async def test_stalled_clients_are_dropped_and_the_others_get_every_event(
    daemon_factory: Any, http: aiohttp.ClientSession, connect: Connect
) -> None:
    daemon: Daemon = await daemon_factory(
        {"SOCKETIO_CLIENT_BACKLOG_MB": "1", "SOCKETIO_TOTAL_BACKLOG_MB": "16"}
    )
    api = Api(http, daemon.url)
    for i in range(PAYLOAD_KIB // 4):  # models:updated carries every model: ~100 KB
        body = {"id": f"big-{i}", "name": f"Big {i}", "description": "d" * 4000}
        assert (await api.post("/api/models", body))[0] == 201
    clients: list[EventClient] = await asyncio.gather(
        *(connect(daemon, "python", "websocket" if i % 2 else "polling") for i in range(NORMAL))
    )
    rss_before = rss_mib(daemon.pid, "VmRSS")
    stalled_ws = await StalledWebSocket().open(daemon)
    stalled_poll = await stalled_poller(daemon, http)
    try:
        _, stats = await api.get("/api/events/stats")
        first = stats["lastSeq"] + 1
        for i in range(EVENTS):
            status, _ = await api.put("/api/models/big-0", {"name": f"Big {i}"})
            assert status == 200

        async def drain(client: EventClient) -> list[int]:
            return [(await client.expect("models:updated", 20))["seq"] for _ in range(EVENTS)]

        received = await asyncio.gather(*(drain(c) for c in clients))
        for client, seqs in zip(clients, received, strict=True):
            assert seqs == list(range(first, first + EVENTS)), client.transport
            assert client.disconnects == []

        # Both stalled clients were disconnected, with the reason.
        async with asyncio.timeout(10):
            while True:
                slow = {e["eio_sid"]: e["why"] for e in daemon.logs("socketio_client_too_slow")}
                if {stalled_ws.sid, stalled_poll} <= set(slow):
                    break
                await asyncio.sleep(0.05)
        assert all("too slow" in why for why in slow.values())
        gone = [e["why"] for e in daemon.logs("socketio_client_disconnected")]
        assert sum("too slow" in (why or "") for why in gone) >= 2
        _, stats = await api.get("/api/events/stats")
        assert stats["clients"]["total"] == NORMAL
        peak = rss_mib(daemon.pid, "VmHWM")
        assert peak - rss_before < RSS_BOUND_MIB, (rss_before, peak)
    finally:
        stalled_ws.close()
