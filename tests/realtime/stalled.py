"""Clients that connect properly, then stop reading (websocket) or polling (long-polling)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct

import aiohttp

from tests.support.daemon import Daemon


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """Return one masked client frame of any size (RFC 6455 §5.2, §5.3); text by default."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """Read one unmasked server frame: (opcode, payload)."""
    loop = asyncio.get_running_loop()

    async def need(n: int) -> None:
        while len(buffer) < n:
            chunk = await loop.sock_recv(sock, 1 << 20)
            assert chunk, "connection closed"
            buffer.extend(chunk)

    await need(2)
    size, offset = buffer[1] & 0x7F, 2
    if size == 126:
        await need(4)
        size, offset = struct.unpack("!H", buffer[2:4])[0], 4
    elif size == 127:
        await need(10)
        size, offset = struct.unpack("!Q", buffer[2:10])[0], 10
    await need(offset + size)
    opcode, payload = buffer[0] & 0x0F, bytes(buffer[offset : offset + size])
    del buffer[: offset + size]
    return opcode, payload


class StalledWebSocket:
    """A Socket.IO websocket client that reads its handshake, connects to "/", then never reads."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sid = ""

    async def open(self, daemon: Daemon | int) -> StalledWebSocket:
        """Connect to the daemon (or to a server on this loopback port)."""
        port = daemon if isinstance(daemon, int) else daemon.port
        loop = asyncio.get_running_loop()
        sock = self.sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(
            sock,
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode(),
        )
        data = b""
        async with asyncio.timeout(5):
            while True:
                data += await loop.sock_recv(sock, 4096)
                end = data.find(b"\r\n\r\n")
                if end < 0:
                    continue
                assert b" 101 " in data[: data.find(b"\r\n")], data[:200]
                frame = data[end + 4 :]
                if len(frame) >= 2 and len(frame) >= 2 + frame[1]:
                    break
        opened = frame[2 : 2 + frame[1]].decode()
        assert opened.startswith("0{"), opened
        self.sid = json.loads(opened[1:])["sid"]
        await loop.sock_sendall(sock, masked_frame(b"40"))  # Socket.IO connect to "/"
        return self

    def close(self) -> None:
        self.sock.close()


async def stalled_poller(daemon: Daemon, http: aiohttp.ClientSession) -> str:
    """Open a polling session, connect to "/", and never poll again; return its Engine.IO sid."""
    base = f"{daemon.url}/socket.io/?EIO=4&transport=polling"
    async with http.get(base) as resp:
        sid = str(json.loads((await resp.text())[1:])["sid"])
    async with http.post(f"{base}&sid={sid}", data=b"40") as resp:
        assert resp.status == 200
    return sid
