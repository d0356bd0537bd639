"""Engine.IO plumbing: bounded per-client queues and shared event frames (both modes).

Every Engine.IO socket gets a ``BoundedQueue``:

- it counts the bytes waiting for its client; a client over ``Limits.client_bytes`` (or the
  biggest backlog once the whole server is over ``Limits.total_bytes``) is disconnected with
  the reason "too slow", and its queue is emptied at once, instead of the daemon growing;
- an encoded event is one object put on every interested client's queue: the bytes are held
  once, however many clients wait for them (``Backlog`` counts shared packets once);
- a long-poll takes at most ``MAX_POLL_PACKETS`` packets, the most a python-engineio client
  accepts in one payload.

The fast path adds ``DirectQueue``: once its websocket serves, every packet for it is written
by the websocket's ``sender.FrameSender``, straight to the socket; events from a websocket
frame built once for every client (server frames are unmasked and compression is not
negotiated, so the frame is the same for everyone). While the sender is idle, nothing queued
and nothing half-written, the queue names it (``DirectQueue.direct``) and the hub writes an
event through it without calling into the queue: per client and event, the fewer objects
touched, the less of an event's time goes to the interpreter. Otherwise packets queue, in
order and shared, and the sender writes them as the client reads; the server's pings skip
the queue (``FrameSender.send_urgent``), so a client catching up still answers them in time.

The fast path uses private parts of python-engineio (checked at start by
``apiserver.realtime.compat``, which falls back to the supported path when one is missing).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engineio import packet as eio_packet

if TYPE_CHECKING:  # only types here; importing them would be circular
    from apiserver.realtime.sender import FrameSender
    from apiserver.realtime.websocket import DirectWebSocket

# python-engineio's client refuses payloads of more packets than this ("Too many packets").
MAX_POLL_PACKETS = 16
# A backlog this big, once sent, is worth giving the freed memory back (see realtime.heap).
DRAINED_BURST = 4 * 1024 * 1024
TOO_SLOW = "too slow: more than {cap} bytes of events waited for this client"

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PONG = 0xA


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on bytes waiting to be sent: per client, and for the whole server."""

    client_bytes: int = 32 * 1024 * 1024
    total_bytes: int = 64 * 1024 * 1024


def ws_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
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


class FramedPacket(eio_packet.Packet):  # type: ignore[misc]
    """An Engine.IO MESSAGE packet encoded once, with its websocket frame, for many clients."""

    def __init__(self, text: str, utf8: bytes | None = None) -> None:
        """Wrap the Socket.IO packet ``text`` (``utf8``: the same, already encoded)."""
        super().__init__(eio_packet.MESSAGE, data=text)
        encoded = super().encode()
        message = encoded.encode() if utf8 is None else b"4" + utf8  # "4": Engine.IO MESSAGE
        self.frame: bytes = ws_frame(message, OP_TEXT)
        self.encode_cache = encoded  # what encode() returns from now on (polling)
        self.size = len(self.frame)
        self.holders = 0  # queues holding this packet: its bytes count once in the backlog


def is_ping(pkt: Any) -> bool:
    """Return True for the server's Engine.IO PING packet."""
    return pkt.__class__ is eio_packet.Packet and pkt.packet_type == eio_packet.PING


def frame_of(pkt: Any) -> bytes:
    """Return the websocket frame of a queued packet (shared for events, built otherwise)."""
    frame = getattr(pkt, "frame", None)
    if frame is not None:
        return frame  # type: ignore[no-any-return]
    encoded = pkt.encode()  # an Engine.IO packet: a ping, a noop, a close, a library message
    if isinstance(encoded, str):
        return ws_frame(encoded.encode(), OP_TEXT)
    return ws_frame(encoded, OP_BINARY)


def packet_size(pkt: Any) -> int:
    """Return the bytes a queued packet stands for."""
    if isinstance(pkt, FramedPacket):
        return pkt.size
    data = getattr(pkt, "data", None)
    return len(data) + 1 if isinstance(data, str | bytes) else 8


class Backlog:
    """The server-wide count of bytes waiting to be sent, and who to drop when it is too much."""

    def __init__(
        self,
        limits: Limits,
        on_too_slow: Callable[[BoundedQueue, str], None],
        on_drained: Callable[[], None] | None = None,
    ) -> None:
        self.limits = limits
        self.on_too_slow = on_too_slow
        self.on_drained = on_drained  # told when a backlog of DRAINED_BURST or more is gone
        self.total = 0  # bytes of the packets in any queue, each shared packet once
        # Holders of each other packet queued, by identity: python-socketio's emit to a room
        # puts one Engine.IO packet object on every recipient's queue, so it counts once too.
        self.holders: dict[int, int] = {}
        self.high_water = 0  # the most ``total`` reached since it was last empty
        self.queues: set[BoundedQueue] = set()

    def drained(self) -> None:
        """Note that bytes left the backlog; report the end of a big one."""
        if self.total == 0 and self.high_water >= DRAINED_BURST:
            self.high_water = 0
            if self.on_drained is not None:
                self.on_drained()

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
        self.forgotten = False  # its socket is gone: no longer counted, never direct again
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

    def new_batch(self) -> None:
        """Start a new batch without waiting (the fast path's websocket writer)."""
        self._batch = 0

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
                self.backlog.total += item.size
        else:
            holders = self.backlog.holders.get(id(item), 0)
            self.backlog.holders[id(item)] = holders + 1  # alive while held: the id is unique
            if holders == 0:
                self.backlog.total += size
        self.backlog.high_water = max(self.backlog.high_water, self.backlog.total)

    def _release(self, item: Any) -> None:
        size = packet_size(item)
        self.pending -= size
        if self.backlog is None:
            return
        if isinstance(item, FramedPacket):
            item.holders -= 1
            if item.holders == 0:
                self.backlog.total -= item.size
                self.backlog.drained()
        else:
            holders = self.backlog.holders.pop(id(item), 1) - 1
            if holders:
                self.backlog.holders[id(item)] = holders
            else:
                self.backlog.total -= size
                self.backlog.drained()

    def set_buffered(self, size: int) -> None:
        """Account for the unwritten part of the frame being written (websocket fast path).

        It counts for the client's cap, not in the server-wide total: it is a view of a
        shared frame, and one frame at most per client.
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
        self.forget()
        if self.backlog is not None:
            self.backlog.on_too_slow(self, why)
        super().put_nowait(None)  # wakes a pending long-poll or the writer: it ends

    def forget(self) -> None:
        """Stop counting this queue (its socket is gone)."""
        self.forgotten = True
        while not self.empty():
            item = super().get_nowait()
            if item is not None:
                self._release(item)
        self.set_buffered(0)
        if self.backlog is not None:
            self.backlog.queues.discard(self)


class DirectQueue(BoundedQueue):
    """A socket queue whose packets a ``FrameSender`` writes, at once while it is idle."""

    def __init__(self, backlog: Backlog | None = None) -> None:
        super().__init__(backlog)
        self.ws: DirectWebSocket | None = None
        # The sender that writes a packet at once, None when packets must queue. Set by the
        # sender when it wrote everything and the client is not dropped; cleared by anything
        # queued, a write the kernel did not take whole, a drop and the end of the connection.
        self.direct: FrameSender | None = None
        self.sender: FrameSender | None = None  # the websocket's, once it serves

    def put_nowait(self, item: Any) -> None:
        sender = self.direct
        if sender is not None and item is not None:
            sender.write(frame_of(item))
            return
        sender = self.sender
        if sender is not None and is_ping(item):
            sender.send_urgent(frame_of(item))  # the server's ping: ahead of the events
            return
        self.direct = None  # queued: whatever comes next goes behind it
        super().put_nowait(item)
        if sender is not None and sender.watch is None and not sender.stopped:
            sender.pump()  # nothing else would write it (e.g. Engine.IO's CLOSE after forget)

    def forget(self) -> None:
        self.direct = None
        super().forget()
