"""A client that does not read its ~11 MB write response delays nobody else's events."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time

import pytest

from tests.realtime.clients import EventClient
from tests.realtime.conftest import Connect
from tests.support.capture import record
from tests.support.daemon import Api, Daemon

PROVIDER = "lm-studio-default"
BIG_KEYS = 11  # ~1 MB each: the config the PUT answers with is ~11 MB


async def event_delay(api: Api, client: EventClient, i: int) -> float:
    """Seconds from sending a write to its event reaching ``client``."""
    t0 = time.monotonic()
    status, _ = await api.put("/api/models/qwen3-max", {"name": f"Other write {i}"})
    assert status == 200
    data = await client.expect("models:updated")
    assert data["items"]
    return time.monotonic() - t0


async def unread_write(daemon: Daemon) -> socket.socket:
    """Send a config write whose ~11 MB response this client never reads."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", daemon.port))
    body = json.dumps({"config": {"small": 1}}).encode()
    await loop.sock_sendall(
        sock,
        (
            f"PUT /api/providers/{PROVIDER}/config HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body,
    )
    return sock


@pytest.mark.timeout(60)
async def test_an_unread_response_delays_no_other_event(
    daemon: Daemon, api: Api, connect: Connect
) -> None:
    for i in range(BIG_KEYS):
        status, _ = await api.put(
            f"/api/providers/{PROVIDER}/config", {"config": {f"big{i}": "v" * 1_000_000}}
        )
        assert status == 200
    listeners = [await connect(daemon, "python", "websocket"), await connect(daemon, "node")]
    baseline = [await event_delay(api, listeners[0], i) for i in range(5)]
    await listeners[1].expect("models:updated")  # keep the second listener in step
    for _ in range(4):
        await listeners[1].expect("models:updated")

    stuck = await unread_write(daemon)
    try:
        # The unread write's own event still goes out: its response was handed to the socket.
        for listener in listeners:
            data = await listener.expect("providers:updated")
            assert data["providerId"] == PROVIDER
        delays = [await event_delay(api, listeners[0], 10 + i) for i in range(5)]
        for _ in range(5):
            await listeners[1].expect("models:updated")
        added_ms = (statistics.median(delays) - statistics.median(baseline)) * 1000
        record("head-of-line delay", f"baseline {baseline} with unread response {delays}")
        assert added_ms < 50, (baseline, delays)
        # And the response really is still unread: the daemon's socket buffer holds it.
        _, stats = await api.get("/api/events/stats")
        assert stats["clients"]["total"] == 2
    finally:
        stuck.close()
