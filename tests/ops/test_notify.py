"""The daemon under a real ``NOTIFY_SOCKET``: READY, WATCHDOG, STATUS and STOPPING datagrams."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import DaemonFactory
from tests.ops.helpers import child_env
from tests.support.daemon import Api

WATCHDOG_USEC = 200_000  # systemd's WatchdogSec=0.2: the daemon pings every 0.1 s


@dataclass
class NotifySocket:
    """The systemd side: a unix datagram socket that records every message with its time."""

    path: Path
    sock: socket.socket
    messages: list[tuple[float, list[str]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            self.messages.append((time.monotonic(), data.decode().splitlines()))
            self.arrived.set()

    async def wait_for(
        self, predicate: Callable[[list[str]], bool], what: str, timeout: float = 10.0
    ) -> int:
        """Wait for a message matching ``predicate``; return its index."""
        checked = 0
        async with asyncio.timeout(timeout):
            while True:
                for index in range(checked, len(self.messages)):
                    if predicate(self.messages[index][1]):
                        return index
                checked = len(self.messages)
                self.arrived.clear()
                try:
                    await self.arrived.wait()
                except TimeoutError:
                    raise AssertionError(f"no {what}; got {self.messages}") from None

    def statuses(self) -> list[str]:
        return [ln[7:] for _, lines in self.messages for ln in lines if ln.startswith("STATUS=")]

    def pings(self) -> list[float]:
        return [at for at, lines in self.messages if "WATCHDOG=1" in lines]


@pytest.fixture
async def notify_socket(tmp_path: Path) -> AsyncIterator[NotifySocket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    listener = NotifySocket(path, sock)
    task = asyncio.create_task(listener.receive_forever())
    yield listener
    task.cancel()
    sock.close()


def has(line: str) -> Callable[[list[str]], bool]:
    return lambda lines: line in lines


def status_with(*parts: str) -> Callable[[list[str]], bool]:
    return lambda lines: any(
        ln.startswith("STATUS=") and all(p in ln for p in parts) for ln in lines
    )


@pytest.mark.timeout(60)
async def test_daemon_speaks_systemds_notify_protocol(
    daemon_factory: DaemonFactory, notify_socket: NotifySocket, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(
        env=child_env(
            NOTIFY_SOCKET=str(notify_socket.path),
            WATCHDOG_USEC=str(WATCHDOG_USEC),
            APISERVER_DEBUG_HOOKS="1",
        )
    )
    api = Api(http, daemon.url)

    # READY=1, with the children's summary, and the API answers by then.
    ready = await notify_socket.wait_for(has("READY=1"), "READY=1")
    assert ready == 0, notify_socket.messages  # nothing before it
    status, body = await api.get("/api/health")
    assert status == 200 and body["status"] == "ok"
    assert notify_socket.statuses()[0] == "qwen-proxy stopped, provider-router stopped"

    # Periodic WATCHDOG=1 from the event loop.
    await notify_socket.wait_for(lambda _: len(notify_socket.pings()) >= 5, "5 watchdog pings")

    # STATUS= follows the children.
    status, body = await api.post("/api/proxy/start")
    assert status == 200 and body["success"], body
    await notify_socket.wait_for(
        status_with("qwen-proxy running (pid", "provider-router running (pid"), "both running"
    )
    router_pid = body["providerRouter"]["pid"]
    os.kill(router_pid, signal.SIGKILL)
    await notify_socket.wait_for(
        status_with("provider-router backoff (SIGKILL)"), "router in backoff after SIGKILL"
    )
    await notify_socket.wait_for(
        lambda lines: any(
            ln.startswith("STATUS=")
            and "provider-router running (pid" in ln
            and f"(pid {router_pid})" not in ln
            for ln in lines
        ),
        "router running again with a new pid",
    )

    # A blocked event loop sends no pings: 1.5 s without one, then they resume.
    blocked_at = time.monotonic()
    status, _ = await api.post("/api/debug/block-loop?seconds=1.5")
    assert status == 200
    unblocked_at = time.monotonic()
    pings_before = len(notify_socket.pings())
    await notify_socket.wait_for(
        lambda _: len(notify_socket.pings()) >= pings_before + 3, "pings after the block"
    )
    during = [at for at in notify_socket.pings() if blocked_at + 0.2 < at < unblocked_at - 0.2]
    assert during == [], f"{len(during)} pings while the loop was blocked"
    pings = notify_socket.pings()
    assert max(b - a for a, b in zip(pings, pings[1:], strict=False)) >= 1.3

    # STOPPING=1 on SIGTERM, and no ping after it.
    assert await daemon.stop() == 0
    stopping = await notify_socket.wait_for(has("STOPPING=1"), "STOPPING=1", timeout=2)
    later = [lines for _, lines in notify_socket.messages[stopping + 1 :]]
    assert not any("WATCHDOG=1" in lines for lines in later), later
    assert not any("READY=1" in lines for lines in later)


async def test_without_notify_socket_nothing_is_sent(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env={"WATCHDOG_USEC": str(WATCHDOG_USEC)})
    status, _ = await Api(http, daemon.url).get("/api/health")
    assert status == 200
    entry = await daemon.wait_for_log("systemd_notified")
    assert entry["enabled"] is False
    # And the test hook is absent unless asked for.
    status, body = await Api(http, daemon.url).post("/api/debug/block-loop?seconds=1")
    assert status == 404, body
