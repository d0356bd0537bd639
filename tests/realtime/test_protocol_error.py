"""A client breaking the protocol while the sender is behind: its close comes last, whole.

aiohttp answers a protocol error (here a message over ``max_msg_size``) by writing a close
frame itself, through the transport. On the fast path the sender may be in the middle of an
event frame then, with more events queued: what the client reads must be those events,
whole and in order, and then the close frame (1009, message too big), never a close frame
inside an event frame or events after it.
"""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

from aiohttp import web

from apiserver.realtime.server import MAX_CLIENT_MESSAGE, SocketServer
from apiserver.realtime.transport import FramedPacket, Limits
from tests.realtime.stalled import StalledWebSocket
from tests.realtime.test_engineio_contract import read_frame, wait_until


def masked_text_frame(payload: bytes) -> bytes:
    """Return one masked client text frame of any size (RFC 6455 §5.2, §5.3)."""
    mask = os.urandom(4)
    size = len(payload)
    header = struct.pack("!BB", 0x81, 0x80 | size) if size < 126 else b""
    if 126 <= size < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    elif size >= 65536:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


async def test_an_oversize_message_mid_frame_drops_the_connection_without_a_torn_frame(
    aiohttp_server: Any,
) -> None:
    sio = SocketServer(
        fast=True, limits=Limits(), async_mode="aiohttp", ping_interval=25,
        max_http_buffer_size=MAX_CLIENT_MESSAGE,
    )  # fmt: skip
    app = web.Application()
    sio.attach(app, socketio_path="socket.io")
    srv = await aiohttp_server(app)
    client = await StalledWebSocket().open(srv.port)
    loop = asyncio.get_running_loop()
    try:
        socket_ = sio.eio.sockets[client.sid]
        await wait_until(lambda: socket_.upgraded and socket_.queue.sender is not None)
        events = [FramedPacket(f'2["big",{i},"{"x" * 1_000_000}"]') for i in range(12)]
        for pkt in events:
            socket_.queue.put_nowait(pkt)
        await wait_until(lambda: socket_.queue.sender.rest is not None)  # mid-frame
        oversize = masked_text_frame(b"4" + b"x" * (MAX_CLIENT_MESSAGE + 1000))
        await loop.sock_sendall(client.sock, oversize)

        frames: list[tuple[int, bytes]] = []
        buffer = bytearray()
        ended = False
        async with asyncio.timeout(30):
            while not ended:
                try:
                    frames.append(await read_frame(client.sock, buffer))
                except (AssertionError, ConnectionError):  # closed, or reset
                    ended = True
        texts = [payload for opcode, payload in frames if opcode == 0x1]
        events_read = [t for t in texts if t.startswith(b"42")]
        assert events_read == [pkt.encode().encode() for pkt in events], "torn or missing"
        closes = [i for i, (opcode, _) in enumerate(frames) if opcode == 0x8]
        assert closes == [len(frames) - 1], "no close frame, or one before other frames"
        assert struct.unpack("!H", frames[-1][1][:2])[0] == 1009  # message too big
        await wait_until(lambda: socket_.closed)
    finally:
        client.close()
        await sio.shutdown()
