"""The fast path's websocket: Engine.IO's aiohttp driver, writing shared event frames.

An event frame is built once (``transport.FramedPacket``) and written to every client's
transport from that one ``bytes`` object, ``WRITE_CHUNK`` bytes at a time and only while the
transport holds nothing: asyncio's selector transport copies whatever the kernel does not take
into a buffer of its own, so writing into a backlog would give every slow client a private
copy of each event. This way a client that falls behind holds at most one chunk of copied
bytes; the rest of what it waits for are references to the shared frames, in its queue.

Frames of other packets (pings, Socket.IO's own packets, pongs, closes) are written between
two event frames, never inside one: by the same writer, framed here (aiohttp frames the
upgrade's probe and the close handshake).

The connection runs Engine.IO's websocket loop in its own request task (``engine_loop``).
Served by the daemon's HTTP protocol (``apiserver.http_server``), queued packets are written
from the protocol's ``resume_writing``, each time the transport emptied: a client behind in a
burst costs a reference to its place in a frame, no task. Behind a plain aiohttp server a
writer task runs while packets wait.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from aiohttp import WSMsgType, web

from apiserver.realtime.engine_loop import serve
from apiserver.realtime.transport import (
    OP_CLOSE,
    OP_PONG,
    DirectQueue,
    FramedPacket,
    FrameRest,
    RawFrame,
    frame_of,
    ws_frame,
)
from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.realtime")

# Close code for a client dropped for falling behind: "try again later" (RFC 6455 §7.4,
# IANA registry); the client reconnects and catches up with ``sync``.
CLOSE_TRY_AGAIN_LATER = 1013
# Seconds a refused client gets to read its close frame before the connection is dropped.
CLOSE_GRACE_S = 5.0
# Bytes handed to the transport in one write. A client that stopped reading holds at most this
# much as a private copy (the transport's buffer); smaller means more system calls per event.
WRITE_CHUNK = 64 * 1024
# The attribute of the daemon's HTTP protocol called after its transport's buffer emptied.
RESUME_HOOK = "on_resume_writing"


class DirectWebSocket:
    """Engine.IO's aiohttp websocket driver, without compression and with direct writes."""

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server
        # ``handler`` is the bound ``_websocket_handler`` of the Engine.IO socket.
        self.socket: Any = getattr(handler, "__self__", None)
        self.environ: dict[str, Any] | None = None
        self._ws: web.WebSocketResponse | None = None
        self._request: web.Request | None = None
        self._transport: asyncio.Transport | None = None
        self._rest: memoryview | None = None  # the unwritten part of the frame being written
        self._serving = False  # our loop runs and the socket is upgraded: queued packets go out
        self._writer: asyncio.Task[None] | None = None  # writes queued packets, while any
        self._resumed: Any = None  # the protocol that calls ``_pump`` when the buffer emptied
        self._writing: memoryview | None = None  # what ``_pump`` has yet to write of a packet
        self._pumping = False

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
            and self._rest is None
            and transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        # No permessage-deflate: identical frames for every client, no per-client compressor.
        # No automatic pong: it could land inside a frame written in chunks (see ``wait``).
        ws = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False, autoping=False
        )
        await ws.prepare(request)
        self._ws = ws
        self._request = request
        self._transport = transport = request.transport
        if transport is not None:
            # Pause (and let ``_send_frame`` wait) as soon as the transport holds anything, and
            # resume only once it is empty: it never holds more than one chunk of an event.
            transport.set_write_buffer_limits(high=0, low=0)
        self.environ = environ
        queue = self.queue
        if queue is None or not hasattr(self.socket, "connected"):
            await self.handler(self)  # not an Engine.IO socket: its own handler
            return ws
        queue.ws = self
        protocol = request.protocol
        if hasattr(protocol, RESUME_HOOK):
            self._resumed = protocol
            setattr(protocol, RESUME_HOOK, self._pump)
        try:
            await serve(self)
        finally:
            if self._resumed is not None:
                setattr(self._resumed, RESUME_HOOK, None)
            if queue.ws is self:
                queue.ws = None
                queue.set_buffered(0)
        return ws

    def start_writing(self) -> None:
        """The socket is upgraded: write what was queued, and from now on what comes."""
        self._serving = True
        self.kick()

    async def stop_writing(self) -> None:
        """The client went: let a running writer finish (briefly), then close the websocket."""
        self._serving = False
        writer = self._writer
        if writer is not None:  # what was queued goes out first, as Engine.IO's writer does
            await asyncio.wait({writer}, timeout=CLOSE_GRACE_S)
            if not writer.done():
                self.abort()
                writer.cancel()
        await self.close()

    def kick(self) -> None:
        """Have the packets waiting in the queue written (called when one was queued)."""
        if not self._serving:
            return
        if self._resumed is not None:
            self._pump()
        elif self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())

    def _pump(self) -> None:
        """Write queued packets while the transport takes them whole; resumed when it empties.

        Called when a packet was queued and by the protocol's ``resume_writing``.
        """
        if self._pumping:
            return
        self._pumping = True
        try:
            self._write_while_empty()
        except Exception:
            log.exception("socketio_write_failed")
            self.abort()
        finally:
            self._pumping = False

    def _write_while_empty(self) -> None:
        queue, transport = self.queue, self._transport
        while queue is not None and transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size():
                return  # the protocol calls ``_pump`` again once the transport is empty
            if self._writing is not None:
                self._writing = self.write_now(self._writing)
                if self._writing is None:
                    self._sent(transport)
                continue
            if not self._serving:
                return
            queue.new_batch()
            try:
                pkt = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            queue.task_done()
            if pkt is None:  # the stop sentinel: as Engine.IO's writer, close
                self._serving = False
                self.hang_up()
                return
            self._writing = memoryview(frame_of(pkt))

    async def _write_queued(self) -> None:
        """Write queued packets in order until the queue is empty (None: close)."""
        queue = self.queue
        try:
            while queue is not None:
                queue.new_batch()
                try:
                    pkt = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                queue.task_done()
                if pkt is None:  # the stop sentinel (a client dropped as too slow)
                    self._serving = False
                    await self.close()
                    return
                try:
                    if isinstance(pkt, FrameRest):
                        await self._send_frame(pkt.rest)
                    elif isinstance(pkt, FramedPacket):
                        await self._send_frame(pkt.frame)
                    else:
                        await self.send(pkt.encode())
                except Exception:
                    self._serving = False
                    await self.close()
                    return
        finally:
            self._writer = None

    async def close(self) -> None:
        transport = self._transport
        if transport is not None and transport.is_closing():
            return  # refused or hung up already
        if self._rest is not None:
            self.abort()  # a close frame now would land inside an event frame
        elif self._ws is not None:
            await self._ws.close()

    def refuse(self, reason: str) -> None:
        """Close with code 1013 and ``reason`` after the frame being written, then hang up.

        A client that still reads learns why it was dropped; one that does not is cut off
        after ``CLOSE_GRACE_S``. The rest of the frame being written is copied once.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._rest is not None:
            transport.write(self._rest)
            self._rest = None
        payload = struct.pack("!H", CLOSE_TRY_AGAIN_LATER) + reason.encode()[:123]
        transport.write(ws_frame(payload, OP_CLOSE))
        transport.close()  # flushes what is buffered first
        asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self.abort)

    def hang_up(self) -> None:
        """Send a websocket close frame (1001 going away) and close the connection."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._rest is not None:
            transport.abort()
            return
        transport.write(ws_frame(struct.pack("!H", 1001), OP_CLOSE))
        transport.close()  # flushes what is buffered first

    def abort(self) -> None:
        """Drop the connection now, unsent bytes included."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.abort()

    async def send(self, message: str | bytes) -> None:
        """Write one encoded packet (the writer task and the upgrade probe call this).

        Events carry their shared frame (``transport.SharedText``): it is written in chunks,
        each once the transport drained. Other packets are framed by aiohttp.
        """
        frame = getattr(message, "frame", None)
        if frame is not None:
            await self._send_frame(frame)
            return
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
            self._sent(transport)

    async def _send_frame(self, frame: bytes | memoryview) -> None:
        """Write a shared frame, a chunk each time the transport is empty.

        Waiting here is one coroutine deep (plus aiohttp's drain): every client behind in a
        burst has this chain alive at once.
        """
        transport = self._transport
        request = self._request
        if transport is None or transport.is_closing():
            return
        view = memoryview(frame)
        try:
            while view:
                if transport.is_closing():
                    return
                if transport.get_write_buffer_size():
                    if request is None:
                        return
                    # aiohttp's flow control (see ``__call__``): resumed once it is empty
                    await request.writer.drain()
                    if transport.get_write_buffer_size():
                        await asyncio.sleep(0)  # not paused (no flow control): do not spin
                    continue
                rest = self.write_now(view)
                view = rest if rest is not None else view[:0]
        finally:
            self._sent(transport)

    def _sent(self, transport: asyncio.Transport) -> None:
        queue = self.queue
        if queue is not None:
            queue.written()
            queue.set_buffered(transport.get_write_buffer_size())

    def write_now(self, frame: bytes | memoryview) -> memoryview | None:
        """Write what the kernel takes of ``frame`` now; return the rest (None: all written).

        The transport must be empty. Chunks go out while it stays empty; the first chunk the
        kernel does not take entirely stays in the transport's buffer (a copy of at most
        ``WRITE_CHUNK`` bytes), and the rest is returned as a view of the shared frame.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            self._rest = None
            return None  # the connection is going away; Engine.IO notices and cleans up
        view = memoryview(frame)
        while view:
            transport.write(view[:WRITE_CHUNK])
            view = view[WRITE_CHUNK:]
            if transport.get_write_buffer_size():
                break
        self._rest = view if view else None
        queue = self.queue
        if queue is not None:
            size = transport.get_write_buffer_size()
            if size or queue.buffered:
                queue.set_buffered(size)
        return view if view else None

    def _pong(self, data: bytes) -> None:
        """Answer a websocket ping, between two event frames (RFC 6455 §5.5.3)."""
        frame = ws_frame(data, OP_PONG)
        queue = self.queue
        if self._rest is not None and queue is not None:
            queue.put_nowait(RawFrame(frame))  # behind the rest of the frame being written
        elif self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame)

    async def wait(self) -> str | bytes:
        """Return the next message from the client (OSError when the connection closed)."""
        assert self._ws is not None
        while True:
            msg = await self._ws.receive()
            if msg.type == WSMsgType.PING:
                self._pong(msg.data)
                continue
            if msg.type == WSMsgType.PONG:
                continue
            break
        if msg.type == WSMsgType.ERROR:  # e.g. a message over max_msg_size: aiohttp closes
            warnings = getattr(self.server, "input_warnings", None)
            if warnings is not None:
                warnings.warn(getattr(self.socket, "sid", "?"), "oversize")
        if not isinstance(msg.data, bytes | str):
            raise OSError("websocket closed")
        return msg.data
