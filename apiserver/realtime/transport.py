"""Engine.IO plumbing: bounded per-client queues and shared event frames (both modes).

Every Engine.IO socket gets a ``BoundedQueue``:

- it counts the bytes waiting for its client; a client over ``Limits.client_bytes`` (or the
  biggest backlog once the whole server is over ``Limits.total_bytes``) is disconnected with
  the reason "too slow", and its queue is emptied at once, instead of the daemon growing;
- an encoded event is one object put on every interested client's queue: the bytes are held
  once, however many clients wait for them (``Backlog`` counts shared packets once);
- a long-poll takes at most ``MAX_POLL_PACKETS`` packets, the most a python-engineio client
  accepts in one payload.

The fast path adds ``DirectQueue``: an event put on an idle, upgraded websocket is written at
once by ``websocket.DirectWebSocket``, from a websocket frame built once for every client
(server frames are unmasked and compression is not negotiated, so the frame is the same for
everyone). Only events take that shortcut: pings, pongs, upgrades and closes always go through
Engine.IO's writer task, so its own timers see them as the protocol expects. A packet the
writer took but has not written yet (``taken``), or a transport still holding unsent bytes,
makes events queue behind it, in order and shared. What the kernel did not take of a frame
written at once waits in the queue as a ``FrameRest``: a view of the shared frame, not a copy.
While a websocket is idle, its queue names the transport (``DirectQueue.direct``) and the hub
writes an event of one chunk to it without calling into the queue: per client and event, the
fewer objects touched, the less of an event's time goes to the interpreter.

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

if TYPE_CHECKING:  # only a type here; importing it would be circular
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


class SharedText(str):
    """An encoded packet that carries its websocket frame (or the unsent rest of one).

    Engine.IO's writer task hands ``packet.encode()`` to the websocket: this string tells the
    websocket which shared bytes to write, so no client encodes or frames its own copy.
    """

    frame: bytes | memoryview


class FramedPacket(eio_packet.Packet):  # type: ignore[misc]
    """An Engine.IO MESSAGE packet encoded once, with its websocket frame, for many clients."""

    def __init__(self, text: str, utf8: bytes | None = None) -> None:
        """Wrap the Socket.IO packet ``text`` (``utf8``: the same, already encoded)."""
        super().__init__(eio_packet.MESSAGE, data=text)
        encoded = SharedText(super().encode())
        message = encoded.encode() if utf8 is None else b"4" + utf8  # "4": Engine.IO MESSAGE
        self.frame: bytes = ws_frame(message, OP_TEXT)
        encoded.frame = self.frame
        self.encode_cache = encoded  # what encode() returns from now on, for both transports
        self.size = len(self.frame)
        self.holders = 0  # queues holding this packet: its bytes count once in the backlog


class RawFrame(eio_packet.Packet):  # type: ignore[misc]
    """Bytes for the websocket only (no polling form): a pong, or the rest of a frame."""

    def __init__(self, frame: bytes | memoryview) -> None:
        super().__init__(eio_packet.NOOP)
        self._encoded = SharedText()  # empty: ``encode_cache`` would not be used
        self._encoded.frame = frame

    def encode(self, b64: bool = False) -> SharedText:
        return self._encoded


class FrameRest:
    """The part of a shared frame a websocket did not take yet, queued for its writer.

    One waits for every client behind, so it is two slots (no Engine.IO packet with its
    attribute dictionary and encoded text): the websocket writes ``rest`` directly.
    """

    __slots__ = ("shared", "rest")
    packet_type = eio_packet.NOOP  # as a queued packet; only the websocket ever takes it

    def __init__(self, shared: FramedPacket, rest: memoryview) -> None:
        self.shared = shared  # its bytes count in the backlog as the shared packet's
        self.rest = rest

    def encode(self, b64: bool = False) -> SharedText:
        text = SharedText()
        text.frame = self.rest
        return text


def packet_size(pkt: Any) -> int:
    """Return the bytes a queued packet stands for."""
    if isinstance(pkt, FramedPacket):
        return pkt.size
    if isinstance(pkt, FrameRest):
        return len(pkt.rest)
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
        shared = item.shared if isinstance(item, FrameRest) else item
        if isinstance(shared, FramedPacket):
            shared.holders += 1
            if shared.holders == 1:
                self.backlog.total += shared.size
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
        shared = item.shared if isinstance(item, FrameRest) else item
        if isinstance(shared, FramedPacket):
            shared.holders -= 1
            if shared.holders == 0:
                self.backlog.total -= shared.size
                self.backlog.drained()
        else:
            holders = self.backlog.holders.pop(id(item), 1) - 1
            if holders:
                self.backlog.holders[id(item)] = holders
            else:
                self.backlog.total -= size
                self.backlog.drained()

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
        self.forget()
        if self.backlog is not None:
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
        # The transport an event may be written to at once, None when it must take
        # ``put_nowait``. Set by the websocket once its writer has nothing left to write and
        # the transport is empty (``DirectWebSocket.open_direct``); cleared by anything queued,
        # a write that left bytes in the transport, a drop, or the end of the connection.
        self.direct: asyncio.Transport | None = None

    def put_nowait(self, item: Any) -> None:
        ws = self.ws
        if (
            ws is not None
            and item.__class__ is FramedPacket  # events only: control packets take Engine.IO's
            and self.taken == 0
            and self.empty()
            and self.dropped is None
            and ws.idle()
        ):
            rest = ws.write_now(item.frame)
            if rest is not None:  # the queue is empty: the rest goes out first, in order
                self.direct = None
                super().put_nowait(FrameRest(item, rest))
                ws.kick()
            return
        self.direct = None  # queued: whatever comes next goes behind it
        super().put_nowait(item)
        if ws is not None:
            ws.kick()

    def wrote_partly(self, buffered: int) -> None:
        """An event written at once left ``buffered`` bytes in the transport: queue from now on."""
        self.direct = None
        self.set_buffered(buffered)

    def forget(self) -> None:
        self.direct = None
        super().forget()

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
