"""Engine.IO plumbing for a cheap, ordered fan-out to many websocket clients.

python-socketio hands every packet to a per-client queue that a per-client writer task drains
into aiohttp, which compresses each message again for each client (permessage-deflate keeps a
compressor per connection). For one event and 500 clients that is 500 task wake-ups and 500
compressions. Here:

- an event is encoded once into a ``FramedPacket`` that also carries its finished websocket
  frame (server frames are unmasked, and we do not negotiate compression, so the frame is the
  same for every client);
- each socket's queue is a ``DirectQueue``: a packet put on an idle, upgraded websocket goes
  straight to the transport (one ``transport.write`` of the shared frame); anything else (polling,
  an upgrade in progress, packets already waiting) is queued as before, so a client's packets
  always leave in the order they were put.

A packet the writer task has taken from the queue but not yet written is counted in ``taken``;
direct writes wait until that is zero, so they never overtake it.

This leans on python-engineio 4.x internals (the driver table ``_async``, the socket behind the
websocket handler, ``create_queue``), hence the ``<5`` pin in pyproject.toml; the unit tests in
tests/realtime/test_transport.py and the end-to-end tests fail loudly if they change.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

import engineio
import socketio
from aiohttp import web
from engineio import packet as eio_packet

from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.realtime")

# A client that cannot keep up (this much unsent data in its socket buffer) is disconnected
# instead of letting its buffer grow without bound.
MAX_BUFFERED_BYTES = 8 * 1024 * 1024

_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8


class PacketDataFilter(logging.Filter):
    """Keep packet contents out of Engine.IO's log: a CONNECT packet carries the API token."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if (
            isinstance(msg, str)
            and ("data %s" in msg or "received %s instead" in msg)
            and isinstance(record.args, tuple)
            and record.args
        ):
            data = record.args[-1]
            size = len(data if isinstance(data, bytes) else str(data).encode())
            record.args = (*record.args[:-1], f"<{size} bytes>")
        return True


PACKET_DATA_FILTER = PacketDataFilter()


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
        self.frame: bytes = _frame_of(self.encode())  # encode() also caches the polling form


class DirectQueue(asyncio.Queue[Any]):
    """An Engine.IO socket queue that writes to an idle websocket instead of queueing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ws: DirectWebSocket | None = None
        self.taken = 0  # packets the writer took out and has not written yet

    def put_nowait(self, item: Any) -> None:
        ws = self.ws
        if item is not None and ws is not None and self.taken == 0 and self.empty() and ws.ready:
            ws.write_packet(item)
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
    """Engine.IO's aiohttp websocket wrapper, without compression and with direct writes."""

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server
        # ``handler`` is the bound ``_websocket_handler`` of the Engine.IO socket.
        self.socket: Any = getattr(handler, "__self__", None)
        self.environ: dict[str, Any] | None = None
        self._ws: web.WebSocketResponse | None = None
        self._transport: asyncio.Transport | None = None
        self._aborted = False

    @property
    def upgraded(self) -> bool:
        socket = self.socket
        return socket is not None and socket.upgraded and not socket.upgrading

    @property
    def ready(self) -> bool:
        """Return True when a packet may be written now, bypassing the writer task."""
        socket = self.socket
        transport = self._transport
        return (
            socket is not None
            and socket.upgraded
            and not socket.upgrading
            and not socket.closed
            and transport is not None
            and not transport.is_closing()
        )

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        # No permessage-deflate: identical frames for every client, no per-client compressor.
        ws = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await ws.prepare(request)
        self._ws = ws
        self._transport = request.transport
        self.environ = environ
        queue = getattr(self.socket, "queue", None)
        if isinstance(queue, DirectQueue):
            queue.ws = self
        try:
            await self.handler(self)
        finally:
            if isinstance(queue, DirectQueue) and queue.ws is self:
                queue.ws = None
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

    async def send(self, message: str | bytes) -> None:
        """Write one encoded packet (Engine.IO's writer task and upgrade probe call this)."""
        self._write(_frame_of(message))
        queue = getattr(self.socket, "queue", None)
        if isinstance(queue, DirectQueue):
            queue.written()

    def write_packet(self, pkt: Any) -> None:
        """Write an Engine.IO packet now (the caller checked ``ready``)."""
        frame = pkt.frame if isinstance(pkt, FramedPacket) else _frame_of(pkt.encode())
        self._write(frame)

    def _write(self, frame: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the connection is going away; Engine.IO notices and cleans up
        if transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
            if not self._aborted:
                self._aborted = True
                log.warning(
                    "socketio_client_too_slow",
                    sid=getattr(self.socket, "sid", None),
                    buffered=transport.get_write_buffer_size(),
                )
                transport.abort()
            return
        transport.write(frame)

    async def wait(self) -> str | bytes:
        """Return the next message from the client (OSError when the connection closed)."""
        assert self._ws is not None
        msg = await self._ws.receive()
        if not isinstance(msg.data, bytes | str):
            raise OSError("websocket closed")
        return msg.data


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """Engine.IO server whose sockets use ``DirectQueue`` and ``DirectWebSocket``."""

    _async: dict[str, Any]  # the async driver table, set by the base class

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A copy: the driver table is a module-level dict shared by every server.
        self._async = {**self._async, "websocket": DirectWebSocket}

    def create_queue(self, *args: Any, **kwargs: Any) -> DirectQueue:
        return DirectQueue(*args, **kwargs)


class SocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's AsyncServer on top of ``EngineServer``."""

    def _engineio_server_class(self) -> type[EngineServer]:
        return EngineServer

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        socket = self.eio.sockets.get(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)
        if socket is not None and not socket.upgraded:
            # A long-poll GET of a client that went away would otherwise wait out the ping
            # timeout (45 s), and hold up the daemon's shutdown.
            asyncio.get_running_loop().call_soon(_release_poll, socket, 10)


def _release_poll(socket: Any, tries: int) -> None:
    """Wake a pending long-poll of a closed socket (after its CLOSE packet, if any)."""
    if socket.closed:
        socket.queue.put_nowait(None)
    elif tries > 0:
        asyncio.get_running_loop().call_soon(_release_poll, socket, tries - 1)
