"""Clients that connect properly, then stop reading (websocket) or polling (long-polling)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket

import aiohttp

from tests.support.daemon import Daemon


def _masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + mask + masked


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
        await loop.sock_sendall(sock, _masked_text_frame(b"40"))  # Socket.IO connect to "/"
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
