"""``apiserver logs CHILD -f``: the recent lines, then every new line as the daemon pushes it.

Subscribes to ``proxy:log`` before reading the recent lines, so nothing falls between the two;
lines that arrive while the recent ones are read are printed after them, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any, TextIO

import socketio

from apiserver.cli import commands
from apiserver.cli.client import FAILED, NOT_RUNNING, OK, CommandError, DaemonClient


async def follow_logs(
    client: DaemonClient,
    url: str,
    token: str | None,
    child: str,
    lines: int,
    out: TextIO,
    err: TextIO,
) -> int:
    """Print the last ``lines`` lines of ``child`` and follow it until Ctrl-C; return the code."""
    pending: list[dict[str, Any]] | None = []  # None once the recent lines are printed
    refusal: list[str] = []
    sio = socketio.AsyncClient(reconnection=True, reconnection_delay_max=5, handle_sigint=False)

    async def on_log(data: Any = None) -> None:
        if not isinstance(data, dict) or data.get("child") != child:
            return
        if pending is not None:
            pending.append(data)
        else:
            out.write(commands.log_line(data))
            out.flush()

    async def on_connect_error(data: Any = None) -> None:
        # The server's refusal is a dict; a network failure is the client's own string.
        if isinstance(data, dict) and data.get("message"):
            refusal.append(str(data["message"]))

    connects = 0

    async def on_connect() -> None:
        nonlocal connects
        connects += 1
        if connects > 1:  # subscriptions belong to a connection: ask again
            task = asyncio.get_running_loop().create_task(_subscribe(sio))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            err.write("reconnected; lines printed while away are missing\n")

    async def on_disconnect(reason: Any = None) -> None:
        if not stopping:
            err.write(f"disconnected ({reason}); reconnecting\n")

    tasks: set[asyncio.Task[None]] = set()
    stopping = False
    sio.on("proxy:log", on_log)
    sio.on("connect_error", on_connect_error)
    sio.on("connect", on_connect)
    sio.on("disconnect", on_disconnect)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await sio.connect(
                url,
                transports=["websocket", "polling"],
                auth={"token": token} if token else None,
                headers={"Authorization": f"Bearer {token}"} if token else {},
                wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError as exc:
            if refusal:
                raise CommandError(f"the daemon refused the connection: {refusal[0]}") from None
            raise CommandError(
                f"the daemon is not running at {url} ({exc}); start it with `apiserver run`",
                NOT_RUNNING,
            ) from None
        await _subscribe(sio)
        recent = await asyncio.to_thread(commands.logs, client, out, child, lines)
        seen = {(e.get("ts"), e.get("line")) for e in recent}
        for entry in pending or []:
            if (entry.get("ts"), entry.get("line")) not in seen:
                out.write(commands.log_line(entry))
        out.flush()
        pending = None
        await stop.wait()
        return OK
    finally:
        stopping = True
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await sio.disconnect()
        with contextlib.suppress(Exception):
            await sio.eio.disconnect()


async def _subscribe(sio: socketio.AsyncClient) -> None:
    ack = await sio.call("subscribe", {"events": ["proxy:log"]}, timeout=5)
    if isinstance(ack, dict) and "error" in ack:
        raise CommandError(f"subscribe failed: {ack['error'].get('message')}", FAILED)
