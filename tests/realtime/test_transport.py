"""Unit tests of the fan-out plumbing: frames, ordering, backlog caps, poll sizes, log scrubbing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from apiserver.realtime.hub import encode_event
from apiserver.realtime.sender import FrameSender
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


def event(text: str) -> FramedPacket:
    return FramedPacket(text)


class Peer:
    """The client end of a real socket pair, whose server end has a real asyncio transport."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def read_available(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := self.sock.recv(1 << 20):
                self.buffer.extend(chunk)

    def frames(self) -> list[tuple[int, bytes]]:
        """Return the whole frames read so far (and keep a partial one for later)."""
        out = []
        while len(self.buffer) >= 2:
            size, offset = self.buffer[1], 2
            if size == 126:
                size, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif size == 127:
                size, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
            if len(self.buffer) < offset + size:
                break
            out.append((self.buffer[0], bytes(self.buffer[offset : offset + size])))
            del self.buffer[: offset + size]
        return out

    async def texts_until(self, done: Callable[[], bool]) -> list[str]:
        """Read (as a client that reads again) until ``done()``; return the texts read."""
        texts: list[str] = []
        async with asyncio.timeout(10):
            while True:
                self.read_available()
                texts += [payload.decode() for _, payload in self.frames()]
                if done():
                    return texts
                await asyncio.sleep(0.001)


@contextlib.asynccontextmanager
async def sender_pair(
    backlog: Backlog | None = None, on_close: Callable[[], None] = lambda: None
) -> AsyncIterator[tuple[FrameSender, DirectQueue, Peer]]:
    """A ``FrameSender`` on a real asyncio transport over a socket pair with small buffers."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    queue = DirectQueue(backlog)
    fd = transport.get_extra_info("socket").fileno()
    sender = FrameSender(queue, transport, fd, on_close)  # type: ignore[arg-type]
    try:
        yield sender, queue, Peer(theirs)
    finally:
        sender.stop()
        transport.abort()
        theirs.close()


BIG = "x" * 2_000_000  # more than the socket pair's buffers take at once


async def test_an_idle_sender_writes_at_once_and_queues_behind_a_half_written_frame() -> None:
    async with sender_pair() as (sender, queue, peer):
        sender.start()
        assert queue.direct is sender  # idle: nothing queued, nothing half-written

        queue.put_nowait(event("a"))  # written at once
        big = event(BIG)
        queue.put_nowait(big)  # the kernel takes part of it
        assert queue.direct is None and sender.watch is not None
        watched = sender.watch
        assert sender.rest is not None and sender.rest.obj is big.frame  # a view, no copy
        assert sender.transport.get_write_buffer_size() == 0
        assert queue.pending == len(sender.rest)  # it counts for the client's cap
        queue.put_nowait(event("c"))
        queue.put_nowait(eio_packet.Packet(eio_packet.CLOSE))  # a close stays in order
        queue.put_nowait(eio_packet.Packet(eio_packet.PING))  # a ping goes ahead of them
        assert queue.qsize() == 2 and sender.urgent

        texts = await peer.texts_until(lambda: queue.direct is sender and not peer.buffer)
        assert texts == ["4a", "4" + BIG, "2", "4c", "1"]
        assert sender.watch is None and sender.rest is None and queue.pending == 0
        # no longer watched (a closed descriptor left in epoll would keep firing)
        assert not asyncio.get_running_loop().remove_writer(watched)


async def test_a_packet_queued_while_idle_is_written_by_the_sender() -> None:
    # A stop sentinel or a packet that must queue (e.g. after a drop) never waits unwritten
    closed: list[bool] = []
    async with sender_pair(on_close=lambda: closed.append(True)) as (sender, queue, peer):
        sender.start()
        queue.put_nowait(eio_packet.Packet(eio_packet.PING))  # idle: framed and written now
        assert await peer.texts_until(lambda: not peer.buffer) == ["2"]
        queue.put_nowait(None)  # Engine.IO closed the socket
        assert closed == [True] and sender.stopped and queue.direct is None
        queue.put_nowait(event("late"))
        peer.read_available()
        assert peer.frames() == [] and queue.qsize() == 1  # nothing more is written


async def test_a_forgotten_queue_still_gets_its_close_written_and_never_goes_direct() -> None:
    # Engine.IO disconnects (the queue is forgotten), then queues CLOSE and joins the queue.
    async with sender_pair() as (sender, queue, peer):
        sender.start()
        queue.forget()
        queue.put_nowait(eio_packet.Packet(eio_packet.CLOSE))
        await asyncio.wait_for(queue.join(), 1)
        peer.read_available()  # a socket pair: written is readable at once
        assert peer.frames() == [(0x81, b"1")]
        assert queue.direct is None  # written, but no longer idle for the hub


async def test_a_client_over_its_cap_with_a_half_written_frame_is_dropped() -> None:
    dropped: list[str] = []
    backlog = Backlog(Limits(client_bytes=100_000), lambda q, why: dropped.append(why))
    async with sender_pair(backlog) as (sender, queue, peer):
        backlog.on_too_slow = lambda q, why: (dropped.append(why), sender.stop())
        sender.start()
        queue.put_nowait(event(BIG))  # the unwritten rest is over 100 000 bytes
        assert dropped and queue.dropped is not None
        assert sender.stopped and sender.watch is None and queue.direct is None
        peer.read_available()
        sender.pump()  # as a late writability callback would: it writes nothing more
        assert queue.direct is None


async def test_nothing_is_written_once_the_transport_closes() -> None:
    # It closes its socket a loop turn later, and the descriptor's number may then be reused.
    async with sender_pair() as (sender, queue, peer):
        sender.start()
        sender.transport.close()
        queue.put_nowait(event("after"))
        assert sender.stopped and queue.direct is None
        peer.read_available()  # a socket pair: anything written would be readable now
        assert peer.frames() == []


async def test_a_ping_for_a_closing_transport_is_not_watched_for() -> None:
    # Not idle (forgotten) and not watching: a ping would start a watch on a duplicate of the
    # descriptor, which the closing transport may already have given up to another file.
    async with sender_pair() as (sender, queue, peer):
        sender.start()
        queue.forget()
        sender.transport.close()
        sender.send_urgent(b"ping")
        assert sender.stopped and sender.watch is None
        peer.read_available()
        assert peer.frames() == []


async def test_a_connection_reset_stops_the_sender() -> None:
    async with sender_pair() as (sender, queue, peer):
        sender.start()
        peer.sock.close()
        queue.put_nowait(event("a"))  # the kernel may still take this one
        queue.put_nowait(event(BIG))
        assert sender.stopped and queue.direct is None
        assert sender.transport.is_closing()  # aborted: the reader ends the connection


async def test_a_queue_without_a_serving_websocket_only_queues() -> None:
    queue = DirectQueue()  # connecting, upgrading or polling: no sender yet
    queue.put_nowait(event("x"))
    queue.put_nowait(eio_packet.Packet(eio_packet.PING))
    assert queue.qsize() == 2 and queue.direct is None
    assert (await queue.get()).data == "x"


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
    assert got.data == "p" and queue.empty()
