"""Unit tests of the fan-out plumbing: frames, ordering, backlog caps, poll sizes, log scrubbing."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from typing import Any

import pytest
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from apiserver.realtime.hub import encode_event
from apiserver.realtime.server import LibraryLogScrubber
from apiserver.realtime.transport import (
    MAX_POLL_PACKETS,
    Backlog,
    BoundedQueue,
    DirectQueue,
    FramedPacket,
    Limits,
    ws_frame,
)
from apiserver.realtime.websocket import WRITE_CHUNK, DirectWebSocket


def parse_frame(frame: bytes) -> tuple[int, bytes]:
    """Return (first byte, payload) of one unmasked server frame."""
    size, offset = frame[1], 2
    assert not size & 0x80  # servers never mask
    if size == 126:
        size, offset = struct.unpack("!H", frame[2:4])[0], 4
    elif size == 127:
        size, offset = struct.unpack("!Q", frame[2:10])[0], 10
    payload = frame[offset:]
    assert len(payload) == size
    return frame[0], payload


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_ws_frame_lengths(size: int) -> None:
    first, payload = parse_frame(ws_frame(b"x" * size))
    assert first == 0x81  # FIN + text
    assert payload == b"x" * size


def test_framed_packet_is_encoded_once_for_both_transports() -> None:
    pkt = FramedPacket('2["models:updated",{"seq":1}]')
    assert pkt.encode() == '42["models:updated",{"seq":1}]'
    assert parse_frame(pkt.frame) == (0x81, b'42["models:updated",{"seq":1}]')


@pytest.mark.parametrize(
    "payload",
    [
        {"seq": 1, "items": [{"id": "m", "enabled": True, "ctx": 32768, "price": 0.5}]},
        {"name": "Qwen — 千问 ✓", "emoji": "🚀"},  # UTF-8 on the wire, not \\u escapes
        {"token": "\udcff"},  # a lone surrogate: orjson refuses it, python-socketio encodes it
        {1: "an int key", "big": 2**70},  # more orjson refuses
    ],
)
def test_events_decode_as_python_socketio_encodes_them(payload: dict[Any, Any]) -> None:
    pkt = encode_event("models:updated", payload)
    reference = sio_packet.Packet(sio_packet.EVENT, data=["models:updated", payload])
    text = pkt.encode()
    assert text.startswith("42[")
    assert json.loads(text[2:]) == json.loads(reference.encode()[1:])
    first, frame_payload = parse_frame(pkt.frame)
    assert first == 0x81 and frame_payload == text.encode("utf-8", "surrogatepass")


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.written: list[bytes] = []
        self.buffered = buffered
        self.aborted = False

    def write(self, data: bytes | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.aborted

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


class FakeSocket:
    """The bits of an Engine.IO socket that DirectQueue/DirectWebSocket look at."""

    sid = "fake"

    def __init__(self, backlog: Backlog | None = None) -> None:
        self.upgraded = True
        self.upgrading = False
        self.closed = False
        self.queue = DirectQueue(backlog)

    async def _websocket_handler(self, ws: Any) -> None:  # the bound handler Engine.IO passes
        raise NotImplementedError


class FakeResponse:
    """aiohttp's WebSocketResponse as the writer task's path uses it."""

    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport

    async def send_str(self, text: str) -> None:
        self.transport.write(ws_frame(text.encode()))

    async def close(self) -> None:
        self.transport.write(ws_frame(b"", 0x8))


def direct_ws(transport: FakeTransport, backlog: Backlog | None = None) -> tuple[FakeSocket, Any]:
    socket = FakeSocket(backlog)
    ws = DirectWebSocket(socket._websocket_handler, server=None)
    ws._transport = transport  # type: ignore[assignment]
    ws._ws = FakeResponse(transport)  # type: ignore[assignment]
    socket.queue.ws = ws
    return socket, ws


def texts(transport: FakeTransport) -> list[str]:
    return [parse_frame(f)[1].decode() for f in transport.written]


def event(text: str) -> FramedPacket:
    return FramedPacket(text)


async def test_direct_writes_never_overtake_queued_packets() -> None:
    transport = FakeTransport()
    socket, ws = direct_ws(transport)
    queue = socket.queue

    queue.put_nowait(event("a"))  # idle websocket: written at once
    assert texts(transport) == ["4a"] and queue.empty()

    socket.upgrading = True  # e.g. during an upgrade nothing is written directly
    queue.put_nowait(event("b"))
    socket.upgrading = False
    queue.put_nowait(event("c"))  # "b" is waiting: "c" must queue behind it
    assert texts(transport) == ["4a"] and queue.qsize() == 2

    # Engine.IO's writer takes both, then writes them one by one.
    taken = [await queue.get(), queue.get_nowait()]
    assert queue.taken == 2
    queue.put_nowait(event("d"))  # taken but unwritten packets: still queue behind them
    assert queue.qsize() == 1
    for pkt in taken:
        await ws.send(pkt.encode())
    assert queue.taken == 0
    await ws.send((await queue.get()).encode())
    queue.put_nowait(event("e"))  # idle again: direct
    assert texts(transport) == ["4a", "4b", "4c", "4d", "4e"]
    assert queue.taken == 0 and queue.empty()

    queue.put_nowait(None)  # the writer's stop sentinel is always queued
    assert queue.get_nowait() is None and queue.taken == 0


async def test_events_are_written_at_once_only_while_nothing_waits() -> None:
    # ``DirectQueue.direct`` names the transport the hub may write an event to without the
    # queue: only while nothing is queued, taken, half-written or buffered.
    transport = FakeTransport()
    socket, ws = direct_ws(transport)
    queue = socket.queue
    ws.open_direct()
    assert queue.direct is None  # not serving yet (still connecting or upgrading)
    ws._serving = True
    ws.open_direct()
    assert queue.direct is transport

    queue.put_nowait(eio_packet.Packet(eio_packet.PING))  # queued: events go behind it
    assert queue.direct is None
    ws.open_direct()
    assert queue.direct is None  # the ping still waits
    pkt = queue.get_nowait()
    ws.open_direct()
    assert queue.direct is None  # taken, not written yet
    await ws.send(pkt.encode())
    ws.open_direct()
    assert queue.direct is transport

    transport.buffered = 10  # an event the kernel did not take whole
    queue.wrote_partly(10)
    assert queue.direct is None and queue.pending == 10
    ws.open_direct()
    assert queue.direct is None  # the transport still holds bytes
    transport.buffered = 0
    ws.open_direct()
    assert queue.direct is transport and queue.pending == 0

    await ws.close()  # the end of the connection
    assert queue.direct is None
    ws.open_direct()
    assert queue.direct is None


async def test_a_frame_left_half_written_stops_direct_writes() -> None:
    class FillingTransport(FakeTransport):
        def write(self, data: bytes | memoryview) -> None:
            super().write(data)
            self.buffered = 1  # the kernel took this chunk, and has no room for more

    transport = FillingTransport()
    socket, ws = direct_ws(transport)
    ws._serving = True
    ws.open_direct()
    assert socket.queue.direct is transport
    socket.queue.put_nowait(event("x" * 2 * WRITE_CHUNK))
    assert len(transport.written) == 1  # one chunk; the rest waits as a view, in order
    assert socket.queue.direct is None
    assert ws._writer is not None
    await ws._writer  # it writes nothing more: the transport is still full
    assert len(transport.written) == 1 and socket.queue.direct is None


async def test_a_dropped_client_gets_no_direct_writes() -> None:
    dropped: list[str] = []
    backlog = Backlog(Limits(client_bytes=100), lambda q, why: dropped.append(why))
    socket, ws = direct_ws(FakeTransport(), backlog)
    queue = socket.queue
    ws._serving = True
    ws.open_direct()
    assert queue.direct is not None
    queue.wrote_partly(1000)  # over its cap: dropped
    assert dropped and queue.dropped is not None and queue.direct is None
    ws.open_direct()
    assert queue.direct is None


async def test_pings_always_go_through_the_writer() -> None:
    # Engine.IO's writer must see every control packet, or its timers close the connection.
    transport = FakeTransport()
    socket, _ = direct_ws(transport)
    socket.queue.put_nowait(eio_packet.Packet(eio_packet.PING))
    assert transport.written == [] and socket.queue.qsize() == 1


async def test_a_full_transport_gets_no_direct_writes() -> None:
    transport = FakeTransport(buffered=1)  # the kernel's buffer is full: the client is behind
    socket, _ = direct_ws(transport)
    socket.queue.put_nowait(event("x"))
    assert transport.written == [] and socket.queue.qsize() == 1


async def test_polling_packets_are_not_counted_as_taken() -> None:
    socket, _ = direct_ws(FakeTransport())
    socket.upgraded = False  # still polling: the HTTP long-poll takes packets
    socket.queue.put_nowait(event("x"))
    assert (await socket.queue.get()).data == "x"
    assert socket.queue.taken == 0


async def test_a_poll_takes_at_most_sixteen_packets() -> None:
    queue = BoundedQueue()
    for i in range(40):
        queue.put_nowait(event(str(i)))
    sizes = []
    while not queue.empty():
        batch = [await queue.get()]
        while True:
            try:
                batch.append(queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        sizes.append(len(batch))
    assert sizes == [MAX_POLL_PACKETS, MAX_POLL_PACKETS, 40 - 2 * MAX_POLL_PACKETS]


async def test_a_client_over_its_cap_is_dropped_and_its_queue_emptied() -> None:
    dropped: list[tuple[BoundedQueue, str]] = []
    backlog = Backlog(
        Limits(client_bytes=10_000, total_bytes=10**9), lambda q, why: dropped.append((q, why))
    )
    slow, fine = BoundedQueue(backlog), BoundedQueue(backlog)
    pkt = event("x" * 3000)
    for _ in range(3):
        slow.put_nowait(pkt)
        fine.put_nowait(pkt)
    assert backlog.total == pkt.size  # one shared packet counts once
    await fine.get()
    slow.put_nowait(pkt)  # the fourth: over 10 000 bytes
    assert [q for q, _ in dropped] == [slow]
    assert "too slow" in dropped[0][1]
    assert slow.pending == 0 and slow.get_nowait() is None  # emptied, writer/poll woken
    slow.put_nowait(pkt)  # nothing more for a dropped client
    assert slow.empty()
    fine.forget()
    assert backlog.total == 0


async def test_the_biggest_backlog_goes_when_all_clients_hold_too_much() -> None:
    dropped: list[BoundedQueue] = []
    backlog = Backlog(
        Limits(client_bytes=10**9, total_bytes=10_000), lambda q, _: dropped.append(q)
    )
    big, small = BoundedQueue(backlog), BoundedQueue(backlog)
    for i in range(3):
        big.put_nowait(event(f"{i}" * 3000))
    small.put_nowait(event("y" * 2000))  # over the total: the biggest backlog is dropped
    assert dropped == [big]
    assert backlog.total == small.pending


async def test_a_library_packet_queued_for_many_clients_counts_once_in_the_total() -> None:
    # python-socketio's emit to a room queues one Engine.IO packet object for every recipient
    dropped: list[BoundedQueue] = []
    backlog = Backlog(
        Limits(client_bytes=10**9, total_bytes=10_000), lambda q, _: dropped.append(q)
    )
    queues = [BoundedQueue(backlog) for _ in range(10)]
    shared = eio_packet.Packet(eio_packet.MESSAGE, data="2" + "z" * 3000)
    for _ in range(2):
        for queue in queues:
            queue.put_nowait(shared)
    assert dropped == []
    assert backlog.total == len(shared.data) + 1
    assert all(queue.pending == 2 * backlog.total for queue in queues)
    for queue in queues:
        queue.get_nowait()
    assert backlog.total == len(shared.data) + 1  # still held once by every queue
    for queue in queues:
        queue.get_nowait()
    assert backlog.total == 0 and backlog.holders == {}


async def test_a_websocket_transport_buffer_counts_in_the_backlog() -> None:
    dropped: list[BoundedQueue] = []
    backlog = Backlog(
        Limits(client_bytes=100_000, total_bytes=10**9), lambda q, _: dropped.append(q)
    )
    transport = FakeTransport()
    socket, ws = direct_ws(transport, backlog)
    socket.queue.put_nowait(event("a"))
    transport.buffered = 200_000  # the client stopped reading
    ws.write_now(event("b").frame)
    assert dropped == [socket.queue]


def test_library_log_records_carry_no_packet_data() -> None:
    record = logging.LogRecord(
        "engineio",
        logging.INFO,
        __file__,
        1,
        "%s: Received packet %s data %s",
        ("sid", "MESSAGE", '0{"token":"s3cr3t-in-log"}'),
        None,
    )
    assert LibraryLogScrubber().filter(record)
    assert "s3cr3t" not in record.getMessage()
    assert record.getMessage() == "<str 3>: Received packet MESSAGE data <str 26>"


def test_library_exceptions_are_reduced_to_their_type() -> None:
    try:
        raise ValueError("bad token s3cr3t-in-exception")
    except ValueError as exc:
        record = logging.LogRecord(
            "socketio", logging.ERROR, __file__, 1, "handler error", (), (ValueError, exc, None)
        )
    assert LibraryLogScrubber().filter(record)
    assert record.exc_info is None and record.getMessage() == "handler error (ValueError)"


async def test_queue_still_works_as_a_queue() -> None:
    queue = DirectQueue()  # no websocket attached: a plain asyncio.Queue
    queue.put_nowait(event("p"))
    got = await asyncio.wait_for(queue.get(), 1)
    assert got.data == "p" and queue.taken == 0
