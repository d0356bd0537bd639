"""Engine.IO plumbing: bounded per-client queues, and direct websocket writes (the fast path).

Every Engine.IO socket gets a ``BoundedQueue`` (both modes):

- it counts the bytes waiting for its client; a client over ``Limits.client_bytes`` (or the
  biggest backlog once the whole server is over ``Limits.total_bytes``) is disconnected with
  the reason "too slow", and its queue is emptied at once, instead of the daemon growing;
- an encoded event is one object put on every interested client's queue: the bytes are held
  once, however many clients wait for them (``Backlog`` counts shared packets once);
- a long-poll takes at most ``MAX_POLL_PACKETS`` packets, the most a python-engineio client
  accepts in one payload.

The fast path adds ``DirectQueue`` and ``DirectWebSocket``: an event put on an idle, upgraded
websocket is written straight to the transport as a websocket frame built once for every
client (server frames are unmasked and compression is not negotiated, so the frame is the same
for everyone). Only events take that shortcut: pings, pongs, upgrades and closes always go
through Engine.IO's writer task, so its own timers see them as the protocol expects. A packet
the writer took but has not written yet (``taken``), or a transport still holding unsent bytes
(the client is behind: the kernel's socket buffer is full), makes events queue behind it, in
order and shared; Engine.IO's writer task then sends them through aiohttp, whose flow control
keeps each transport at about 64 KiB plus one event.

The fast path uses private parts of python-engineio (checked at start by
``apiserver.realtime.compat``, which falls back to the supported path when one is missing).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from engineio import packet as eio_packet

# python-engineio's client refuses payloads of more packets than this ("Too many packets").
MAX_POLL_PACKETS = 16
TOO_SLOW = "too slow: more than {cap} bytes of events waited for this client"

_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on bytes waiting to be sent: per client, and for the whole server."""

    client_bytes: int = 32 * 1024 * 1024
    total_bytes: int = 64 * 1024 * 1024


def ws_frame(payload: bytes, opcode: int = _OP_TEXT) -> bytes:
    """Return one unmasked, final websocket frame (RFC 6455 §5.2) carrying ``payload``."""
    first = 0x80 | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def _frame_of(message: str | bytes) -> bytes:
    if isinstance(message, bytes):
        return ws_frame(message, _OP_BINARY)
    return ws_frame(message.encode(), _OP_TEXT)


class FramedPacket(eio_packet.Packet):  # type: ignore[misc]
    """An Engine.IO MESSAGE packet encoded once, with its websocket frame, for many clients."""

    def __init__(self, text: str) -> None:
        super().__init__(eio_packet.MESSAGE, data=text)
        self.frame: bytes = _frame_of(self.encode())  # encode() caches the polling form too
        self.size = len(self.frame)
        self.holders = 0  # queues holding this packet: its bytes count once in the backlog


def packet_size(pkt: Any) -> int:
    """Return the bytes a queued packet stands for."""
    if isinstance(pkt, FramedPacket):
        return pkt.size
    data = getattr(pkt, "data", None)
    return len(data) + 1 if isinstance(data, str | bytes) else 8


class Backlog:
    """The server-wide count of bytes waiting to be sent, and who to drop when it is too much."""

    def __init__(self, limits: Limits, on_too_slow: Callable[[BoundedQueue, str], None]) -> None:
        self.limits = limits
        self.on_too_slow = on_too_slow
        self.total = 0  # bytes of the packets in any queue, each shared packet once
        self.queues: set[BoundedQueue] = set()

    def over(self, queue: BoundedQueue) -> str | None:
        """Return why ``queue``'s client must go, or None while everything is within limits."""
        if queue.pending > self.limits.client_bytes:
            return TOO_SLOW.format(cap=self.limits.client_bytes)
        if self.total > self.limits.total_bytes:
            worst = max(self.queues, key=lambda q: q.pending, default=queue)
            if worst is queue:
                return TOO_SLOW.format(cap=self.limits.total_bytes) + " (all clients' limit)"
            worst.overflow(TOO_SLOW.format(cap=self.limits.total_bytes) + " (all clients' limit)")
        return None


class BoundedQueue(asyncio.Queue[Any]):
    """An Engine.IO socket queue with a byte cap and at most 16 packets per long-poll."""

    def __init__(self, backlog: Backlog | None = None) -> None:
        super().__init__()
        self.backlog = backlog
        self.pending = 0  # bytes waiting for this client (queued + its transport's buffer)
        self.buffered = 0  # the transport's unsent bytes, last time we looked
        self.dropped: str | None = None  # why the client was disconnected, once it was
        self._batch = 0
        if backlog is not None:
            backlog.queues.add(self)

    def put_nowait(self, item: Any) -> None:
        if item is None:  # the writer's stop sentinel always goes through
            super().put_nowait(None)
            return
        if self.dropped is not None:
            return  # the client is being disconnected: nothing more for it
        self._hold(item)
        super().put_nowait(item)
        if self.backlog is not None and (why := self.backlog.over(self)) is not None:
            self.overflow(why)

    async def get(self) -> Any:
        self._batch = 0  # a new long-poll (or writer round) starts
        return await super().get()

    def get_nowait(self) -> Any:
        if self._batch >= MAX_POLL_PACKETS:
            raise asyncio.QueueEmpty  # the rest goes in the next poll response
        item = super().get_nowait()
        self._batch += 1
        if item is not None:
            self._release(item)
        return item

    def _hold(self, item: Any) -> None:
        size = packet_size(item)
        self.pending += size
        if self.backlog is None:
            return
        if isinstance(item, FramedPacket):
            item.holders += 1
            if item.holders == 1:
                self.backlog.total += size
        else:
            self.backlog.total += size

    def _release(self, item: Any) -> None:
        size = packet_size(item)
        self.pending -= size
        if self.backlog is None:
            return
        if isinstance(item, FramedPacket):
            item.holders -= 1
            if item.holders == 0:
                self.backlog.total -= size
        else:
            self.backlog.total -= size

    def set_buffered(self, size: int) -> None:
        """Account for the bytes the client's transport holds (websocket fast path).

        They count for the client's cap, not in the server-wide total: flow control keeps each
        transport at about 64 KiB plus one event.
        """
        delta = size - self.buffered
        self.buffered = size
        self.pending += delta
        if delta > 0 and self.backlog is not None and (why := self.backlog.over(self)) is not None:
            self.overflow(why)

    def overflow(self, why: str) -> None:
        """Drop everything waiting for this client and have it disconnected (once)."""
        if self.dropped is not None:
            return
        self.dropped = why
        while not self.empty():
            item = super().get_nowait()
            if item is not None:
                self._release(item)
        self.set_buffered(0)
        if self.backlog is not None:
            self.backlog.queues.discard(self)
            self.backlog.on_too_slow(self, why)
        super().put_nowait(None)  # wakes a pending long-poll or the writer: it ends

    def forget(self) -> None:
        """Stop counting this queue (its socket is gone)."""
        while not self.empty():
            item = super().get_nowait()
            if item is not None:
                self._release(item)
        self.set_buffered(0)
        if self.backlog is not None:
            self.backlog.queues.discard(self)


class DirectQueue(BoundedQueue):
    """A socket queue that writes events to an idle, upgraded websocket instead of queueing."""

    def __init__(self, backlog: Backlog | None = None) -> None:
        super().__init__(backlog)
        self.ws: DirectWebSocket | None = None
        self.taken = 0  # packets the writer took out and has not written yet

    def put_nowait(self, item: Any) -> None:
        ws = self.ws
        if (
            isinstance(item, FramedPacket)  # events only: control packets take Engine.IO's path
            and ws is not None
            and self.taken == 0
            and self.empty()
            and self.dropped is None
            and ws.ready
        ):
            ws.write_frame(item.frame)
            return
        super().put_nowait(item)

    def get_nowait(self) -> Any:
        item = super().get_nowait()
        ws = self.ws
        if item is not None and ws is not None and ws.upgraded:
            self.taken += 1
        return item

    def written(self) -> None:
        """Count one taken packet as written (called by the websocket)."""
        if self.taken > 0:
            self.taken -= 1


class DirectWebSocket:
    """Engine.IO's aiohttp websocket driver, without compression and with direct writes."""

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server
        # ``handler`` is the bound ``_websocket_handler`` of the Engine.IO socket.
        self.socket: Any = getattr(handler, "__self__", None)
        self.environ: dict[str, Any] | None = None
        self._ws: web.WebSocketResponse | None = None
        self._transport: asyncio.Transport | None = None

    @property
    def queue(self) -> DirectQueue | None:
        queue = getattr(self.socket, "queue", None)
        return queue if isinstance(queue, DirectQueue) else None

    @property
    def upgraded(self) -> bool:
        socket = self.socket
        return socket is not None and socket.upgraded and not socket.upgrading

    @property
    def ready(self) -> bool:
        """Return True when an event may be written now, bypassing the writer task."""
        transport = self._transport
        return (
            self.upgraded
            and not self.socket.closed
            and transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        # No permessage-deflate: identical frames for every client, no per-client compressor.
        ws = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await ws.prepare(request)
        self._ws = ws
        self._transport = request.transport
        self.environ = environ
        queue = self.queue
        if queue is not None:
            queue.ws = self
        try:
            await self.handler(self)
        finally:
            if queue is not None and queue.ws is self:
                queue.ws = None
                queue.set_buffered(0)
        return ws

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    def hang_up(self) -> None:
        """Send a websocket close frame (1001 going away) and close the connection."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(ws_frame(struct.pack("!H", 1001), _OP_CLOSE))
            transport.close()  # flushes what is buffered first

    def abort(self) -> None:
        """Drop the connection now, unsent bytes included."""
        if self._transport is not None:
            self._transport.abort()

    async def send(self, message: str | bytes) -> None:
        """Write one encoded packet (Engine.IO's writer task and upgrade probe call this).

        This is the path of a client that fell behind: aiohttp frames the message and waits,
        without polling, until the transport drained below its limit.
        """
        ws = self._ws
        transport = self._transport
        if ws is None or transport is None or transport.is_closing():
            return
        try:
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_str(message)
        finally:
            queue = self.queue
            if queue is not None:
                queue.written()
                queue.set_buffered(transport.get_write_buffer_size())

    def write_frame(self, frame: bytes) -> None:
        """Write a finished frame now, and account for what the transport still holds."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the connection is going away; Engine.IO notices and cleans up
        transport.write(frame)
        queue = self.queue
        if queue is not None:
            size = transport.get_write_buffer_size()
            if size or queue.buffered:
                queue.set_buffered(size)

    async def wait(self) -> str | bytes:
        """Return the next message from the client (OSError when the connection closed)."""
        assert self._ws is not None
        msg = await self._ws.receive()
        if msg.type == WSMsgType.ERROR:  # e.g. a message over max_msg_size: aiohttp closes
            warnings = getattr(self.server, "input_warnings", None)
            if warnings is not None:
                warnings.warn(getattr(self.socket, "sid", "?"), "oversize")
        if not isinstance(msg.data, bytes | str):
            raise OSError("websocket closed")
        return msg.data
