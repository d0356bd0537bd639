"""Fixtures of the Socket.IO tests: connected clients of both kinds, cleaned up after each test."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import DaemonFactory
from tests.realtime.clients import JS_DIR, EventClient, make_client
from tests.support.daemon import Daemon

Connect = Callable[..., Awaitable[EventClient]]

KINDS = ("python", "node")
TRANSPORTS = ("websocket", "polling")
# Every client kind over every transport.
CLIENT_MATRIX = [pytest.param(k, t, id=f"{k}-{t}") for k in KINDS for t in TRANSPORTS]


# Short Engine.IO timers, so tests outlive several ping intervals quickly.
PING_INTERVAL_S = 1.0
PING_TIMEOUT_S = 5.0


def realtime_env() -> dict[str, str]:
    """Return the daemon settings of the realtime tests (``SOCKETIO_FAST_PATH`` passes through).

    scripts/test runs this folder a second time with ``SOCKETIO_FAST_PATH=off``.
    """
    return {
        "SOCKETIO_PING_INTERVAL": str(PING_INTERVAL_S),
        "SOCKETIO_PING_TIMEOUT": str(PING_TIMEOUT_S),
        "SOCKETIO_FAST_PATH": os.environ.get("SOCKETIO_FAST_PATH", "on"),
    }


@pytest.fixture
async def daemon_factory(
    daemon_factory: DaemonFactory,
) -> DaemonFactory:
    """The shared daemon factory, with the realtime tests' Socket.IO settings as defaults."""

    async def factory(env: dict[str, str] | None = None, db_path: Path | None = None) -> Daemon:
        return await daemon_factory({**realtime_env(), **(env or {})}, db_path)

    return factory


@pytest.fixture(scope="session")
def node_client_installed() -> None:
    """Make sure tests/js has its locked socket.io-client (scripts/test installs it)."""
    if (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: Node's socket.io-client tests cannot run")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=JS_DIR,
        check=True,
        timeout=120,
    )


@pytest.fixture
async def connect(node_client_installed: None) -> AsyncIterator[Connect]:
    """Connect a client: ``await connect(daemon, kind, transport, auth=..., headers=...)``."""
    opened: list[EventClient] = []

    async def factory(
        daemon: Daemon,
        kind: str = "python",
        transport: str = "websocket",
        *,
        greeting: bool = True,
        reconnection: bool = False,
        **options: object,
    ) -> EventClient:
        client = make_client(kind, daemon.url, transport, reconnection=reconnection)
        opened.append(client)
        await client.connect(**options)  # type: ignore[arg-type]
        if greeting:  # proxy:status arrives right after every connect
            await client.expect("proxy:status")
        return client

    yield factory
    for client in opened:
        await client.close()
