"""Unit tests of the fan-out plumbing: frames, ordering of direct writes, slow clients, logs."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

import pytest
from engineio import packet as eio_packet

from apiserver.realtime_transport import (
    MAX_BUFFERED_BYTES,
    DirectQueue,
    DirectWebSocket,
    FramedPacket,
    PacketDataFilter,
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


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.written: list[bytes] = []
        self.buffered = buffered
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.aborted

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


class FakeSocket:
    """The bits of an Engine.IO socket that DirectQueue/DirectWebSocket look at."""

    sid = "fake"

    def __init__(self) -> None:
        self.upgraded = True
        self.upgrading = False
        self.closed = False
        self.queue = DirectQueue()

    async def _websocket_handler(self, ws: Any) -> None:  # the bound handler Engine.IO passes
        raise NotImplementedError


def direct_ws(transport: FakeTransport) -> tuple[FakeSocket, DirectWebSocket]:
    socket = FakeSocket()
    ws = DirectWebSocket(socket._websocket_handler, server=None)
    ws._transport = transport  # type: ignore[assignment]
    socket.queue.ws = ws
    return socket, ws


def texts(transport: FakeTransport) -> list[str]:
    return [parse_frame(f)[1].decode() for f in transport.written]


def msg(text: str) -> Any:
    return eio_packet.Packet(eio_packet.MESSAGE, data=text)


async def test_direct_writes_never_overtake_queued_packets() -> None:
    transport = FakeTransport()
    socket, ws = direct_ws(transport)
    queue = socket.queue

    queue.put_nowait(msg("a"))  # idle websocket: written at once
    assert texts(transport) == ["4a"] and queue.empty()

    socket.upgrading = True  # e.g. during an upgrade nothing is written directly
    queue.put_nowait(msg("b"))
    socket.upgrading = False
    queue.put_nowait(msg("c"))  # "b" is waiting: "c" must queue behind it
    assert texts(transport) == ["4a"] and queue.qsize() == 2

    # Engine.IO's writer takes both, then writes them one by one.
    taken = [queue.get_nowait(), queue.get_nowait()]
    assert queue.taken == 2
    queue.put_nowait(msg("d"))  # taken but unwritten packets: still queue behind them
    assert queue.qsize() == 1
    for pkt in taken:
        await ws.send(pkt.encode())
    assert queue.taken == 0
    await ws.send(queue.get_nowait().encode())
    queue.put_nowait(msg("e"))  # idle again: direct
    assert texts(transport) == ["4a", "4b", "4c", "4d", "4e"]
    assert queue.taken == 0 and queue.empty()

    queue.put_nowait(None)  # the writer's stop sentinel is always queued
    assert queue.get_nowait() is None and queue.taken == 0


async def test_polling_packets_are_not_counted_as_taken() -> None:
    socket, _ = direct_ws(FakeTransport())
    socket.upgraded = False  # still polling: the HTTP long-poll takes packets
    socket.queue.put_nowait(msg("x"))
    assert socket.queue.get_nowait().data == "x"
    assert socket.queue.taken == 0


async def test_a_client_that_does_not_read_is_disconnected() -> None:
    transport = FakeTransport(buffered=MAX_BUFFERED_BYTES + 1)
    socket, _ = direct_ws(transport)
    socket.queue.put_nowait(FramedPacket("2[]"))
    assert transport.aborted and transport.written == []
    socket.queue.put_nowait(FramedPacket("2[]"))  # closing: left to Engine.IO's cleanup
    assert transport.written == []


def test_packet_contents_are_not_logged() -> None:
    record = logging.LogRecord(
        "engineio", logging.INFO, __file__, 1, "%s: Received packet %s data %s",
        ("sid", "MESSAGE", '0{"token":"s3cr3t-in-log"}'), None,
    )  # fmt: skip
    assert PacketDataFilter().filter(record)
    assert "s3cr3t" not in record.getMessage()
    assert record.getMessage() == "sid: Received packet MESSAGE data <26 bytes>"


async def test_queue_still_works_as_a_queue() -> None:
    queue = DirectQueue()  # no websocket attached: a plain asyncio.Queue
    queue.put_nowait(msg("p"))
    got = await asyncio.wait_for(queue.get(), 1)
    assert got.data == "p" and queue.taken == 0
