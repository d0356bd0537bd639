"""Socket.IO test clients with one interface: python-socketio's client and Node's socket.io-client.

Every event payload and acknowledgement a client receives is recorded for the end-of-session
secret scan (tests.support.capture).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import socketio

from tests.support.capture import record

JS_DIR = Path(__file__).resolve().parents[1] / "js"
TIMEOUT = 5.0

Received = tuple[str, Any]


class ConnectRefused(Exception):
    """The server refused the connection; ``str()`` is the reason the client saw."""


class EventClient:
    """What the tests need from a client: connect, receive events, emit with an ack, close."""

    kind = ""

    def __init__(self, url: str, transport: str) -> None:
        self.url = url
        self.transport = transport
        self.events: asyncio.Queue[Received] = asyncio.Queue()
        self.seen: list[Received] = []
        self.disconnects: list[str] = []  # the reasons of every disconnect, in order

    def _received(self, name: str, data: Any) -> None:
        record(f"event {name}", json.dumps(data))
        self.seen.append((name, data))
        self.events.put_nowait((name, data))

    async def receive(self, timeout: float = TIMEOUT) -> Received:
        """Return the next event (name, payload) within ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await self.events.get()

    async def expect(self, name: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Return the next event's payload, asserting it is named ``name``."""
        got, data = await self.receive(timeout)
        assert got == name, f"expected {name}, got {got}: {json.dumps(data)[:300]}"
        assert isinstance(data, dict)
        return data

    def pending(self) -> list[Received]:
        """Return the events received but not consumed yet."""
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    async def connect(
        self, *, auth: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        raise NotImplementedError

    async def call(self, event: str, data: Any) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class PyClient(EventClient):
    """python-socketio's AsyncClient."""

    kind = "python"

    def __init__(self, url: str, transport: str, *, reconnection: bool = False) -> None:
        super().__init__(url, transport)
        self.sio = socketio.AsyncClient(
            reconnection=reconnection,
            reconnection_delay=0.1,
            request_timeout=TIMEOUT,
            handle_sigint=False,
        )
        self.sio.on("*", self._received)
        self.sio.on("connect_error", self._refused)
        self.sio.on("disconnect", self._gone)
        self.refusal: str | None = None

    def _gone(self, reason: Any = None) -> None:
        self.disconnects.append(str(reason))

    def _refused(self, data: Any = None) -> None:
        self.refusal = str(data.get("message") if isinstance(data, dict) else data)

    async def connect(
        self, *, auth: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        try:
            await self.sio.connect(
                self.url,
                transports=["polling", "websocket"]
                if self.transport == "upgrade"
                else [self.transport],
                auth=auth,
                headers=headers or {},
                wait_timeout=TIMEOUT,
            )
        except socketio.exceptions.ConnectionError as exc:
            raise ConnectRefused(self.refusal or str(exc)) from exc
        if self.transport != "upgrade":  # an upgrade may be over already, or still to come
            assert self.sio.transport() == self.transport

    async def call(self, event: str, data: Any) -> Any:
        ack = await self.sio.call(event, data, timeout=TIMEOUT)
        record(f"ack {event}", json.dumps(ack))
        return ack

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        await self.sio.eio.disconnect()  # also closes the HTTP session of a failed connect


class NodeClient(EventClient):
    """Node's socket.io-client 4.x, in a ``node tests/js/client.mjs`` process."""

    kind = "node"

    def __init__(self, url: str, transport: str, *, reconnection: bool = False) -> None:
        super().__init__(url, transport)
        self.reconnection = reconnection
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected: asyncio.Future[dict[str, Any]] | None = None
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self.disconnected = asyncio.Event()
        self.disconnect_reason: str | None = None
        self.upgraded = asyncio.Event()

    async def connect(
        self, *, auth: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        node = shutil.which("node")
        assert node, "node is not installed"
        # "upgrade": start on polling, then upgrade to websocket (the client's default).
        transports = ["polling", "websocket"] if self.transport == "upgrade" else [self.transport]
        options: dict[str, Any] = {
            "url": self.url,
            "transports": transports,
            "reconnection": self.reconnection,
        }
        if auth is not None:
            options["auth"] = auth
        if headers:
            options["extraHeaders"] = headers
        self._connected = asyncio.get_running_loop().create_future()
        self.proc = await asyncio.create_subprocess_exec(
            node,
            str(JS_DIR / "client.mjs"),
            json.dumps(options),
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        self._reader = asyncio.create_task(self._read())
        async with asyncio.timeout(TIMEOUT + 5):
            result = await self._connected
        if result["type"] == "connect_error":
            raise ConnectRefused(result["message"])
        if self.transport == "upgrade":  # the upgrade may be over before "connect" fires
            assert result["transport"] in transports, result
            if result["transport"] == "websocket":
                self.upgraded.set()
        else:
            assert result["transport"] == self.transport, result

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            kind = msg["type"]
            if kind in ("connect", "connect_error"):
                if self._connected is not None and not self._connected.done():
                    self._connected.set_result(msg)
            elif kind == "event":
                self._received(msg["event"], msg["data"])
            elif kind == "ack":
                fut = self._acks.pop(msg["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif kind == "disconnect":
                self.disconnect_reason = msg["reason"]
                self.disconnects.append(msg["reason"])
                self.disconnected.set()
            elif kind == "upgrade":
                self.upgraded.set()
        self.disconnected.set()
        if self._connected is not None and not self._connected.done():
            self._connected.set_result({"type": "connect_error", "message": "node exited"})

    async def _send(self, cmd: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()

    async def call(self, event: str, data: Any) -> Any:
        ack_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = fut
        await self._send({"cmd": "emit", "id": ack_id, "event": event, "data": data})
        async with asyncio.timeout(TIMEOUT + 1):
            msg = await fut
        assert "error" not in msg, msg
        record(f"ack {event}", json.dumps(msg["data"]))
        return msg["data"]

    async def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self._send({"cmd": "close"})
            try:
                async with asyncio.timeout(5):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(2):
                    await self._reader


def make_client(kind: str, url: str, transport: str, *, reconnection: bool = False) -> EventClient:
    """Return an unconnected client of ``kind`` (python | node) using ``transport``."""
    cls = PyClient if kind == "python" else NodeClient
    return cls(url, transport, reconnection=reconnection)
