"""``apiserver watch``: print every live event of a running daemon, one line each.

Like the seed's Node test client: connects over Socket.IO (websocket, falling back to polling),
prints ``<time> <event> <compact JSON>`` for each event as it arrives, and exits 0 on Ctrl-C.
Connection messages go to stderr, events to stdout. After a reconnect it asks the daemon for
the events it missed (``sync``) and prints those too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from datetime import datetime
from typing import Any, TextIO

import socketio

from apiserver.cli.client import FAILED, NOT_RUNNING
from apiserver.config import Settings


class Watcher:
    """One Socket.IO connection that prints what it receives."""

    def __init__(self, out: TextIO, err: TextIO, events: list[str] | None) -> None:
        self.out = out
        self.err = err
        self.subscriptions = events
        self.seq: int | None = None
        self.instance: str | None = None
        self.resume_from: int | None = None  # the last seq seen before a disconnect
        self.connects = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # handle_sigint=False: Ctrl-C is ours (a clean exit 0), not the library's.
        self.sio = socketio.AsyncClient(
            reconnection=True, reconnection_delay_max=5, handle_sigint=False
        )
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("connect_error", self.on_connect_error)
        self.refusal: str | None = None
        self.stopping = False
        self.sio.on("*", self.on_event)

    def note(self, text: str) -> None:
        self.err.write(f"{_now()} {text}\n")
        self.err.flush()

    def print_event(self, name: str, data: Any, *, replayed: bool = False) -> None:
        if isinstance(data, dict):
            if isinstance(data.get("seq"), int) and name != "proxy:log":
                self.seq = data["seq"]
            if isinstance(data.get("instance"), str):
                self.instance = data["instance"]
        line = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        mark = " (missed)" if replayed else ""
        self.out.write(f"{_now()} {name}{mark} {line}\n")
        self.out.flush()

    async def on_event(self, name: str, data: Any = None) -> None:
        self.print_event(name, data)

    async def on_connect(self) -> None:
        self.connects += 1
        self.note(f"connected ({self.sio.transport()}, sid {self.sio.get_sid()})")
        # Handlers run in their own tasks: talk to the server from another one.
        task = asyncio.get_running_loop().create_task(self.after_connect(self.connects > 1))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def after_connect(self, reconnected: bool) -> None:
        try:
            if self.subscriptions is not None:
                ack = await self.sio.call("subscribe", {"events": self.subscriptions}, timeout=5)
                if isinstance(ack, dict) and "error" in ack:
                    self.note(f"subscribe failed: {ack['error'].get('message')}")
                else:
                    self.note(f"subscribed to {', '.join(ack.get('events', []))}")
            if reconnected and self.resume_from is not None:
                ack = await self.sio.call(
                    "sync", {"sinceSeq": self.resume_from, "instance": self.instance}, timeout=5
                )
                if isinstance(ack, dict) and ack.get("snapshot"):
                    self.note("daemon restarted or missed events expired: current state follows")
                    for name, data in (ack.get("state") or {}).items():
                        self.print_event(name, data, replayed=True)
                for item in (ack or {}).get("events", []):
                    self.print_event(item["event"], item["data"], replayed=True)
        except (socketio.exceptions.SocketIOError, TimeoutError) as exc:
            self.note(f"after connect: {exc}")

    async def on_connect_error(self, data: Any = None) -> None:
        """Keep the server's reason for refusing the connection."""
        # The server's refusal is a dict; a network failure is the client's own string.
        message = data.get("message") if isinstance(data, dict) else None
        self.refusal = str(message) if message else None

    async def on_disconnect(self, reason: Any = None) -> None:
        self.resume_from = self.seq
        self.note(f"disconnected ({reason})" + ("" if self.stopping else "; reconnecting"))


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S.%f")[:-3]


async def watch(
    settings: Settings,
    url: str | None,
    transport: str | None,
    events: str | None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Connect to the daemon and print events until interrupted; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    url = url or f"http://127.0.0.1:{settings.api_port}"
    subscriptions = [e.strip() for e in events.split(",") if e.strip()] if events else None
    watcher = Watcher(out, err, subscriptions)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    auth = {"token": settings.api_token} if settings.api_token else None
    try:
        try:
            await watcher.sio.connect(
                url,
                transports=[transport] if transport else ["websocket", "polling"],
                auth=auth,
                headers=headers,
                wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError as exc:
            if watcher.refusal:
                watcher.note(f"cannot connect to {url}: {watcher.refusal}")
                return FAILED
            watcher.note(
                f"the daemon is not running at {url} ({exc}); start it with `apiserver run`"
            )
            return NOT_RUNNING
        await stop.wait()
        return 0
    finally:
        watcher.stopping = True
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await watcher.sio.disconnect()
        with contextlib.suppress(Exception):
            await watcher.sio.eio.disconnect()  # closes the HTTP session after a failed connect
