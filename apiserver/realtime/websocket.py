"""The fast path's websocket: Engine.IO's aiohttp driver, writing shared event frames.

An event frame is built once (``transport.FramedPacket``) and written to every client's
transport from that one ``bytes`` object, ``WRITE_CHUNK`` bytes at a time and only while the
transport holds nothing: asyncio's selector transport copies whatever the kernel does not take
into a buffer of its own, so writing into a backlog would give every slow client a private
copy of each event. This way a client that falls behind holds at most one chunk of copied
bytes; the rest of what it waits for are references to the shared frames, in its queue.

Frames of other packets (pings, pongs, the upgrade's probe, closes) take aiohttp's path, from
the writer task, between two event frames: never inside one.

The connection runs Engine.IO's websocket loop (``AsyncSocket._websocket_handler``) in the
websocket's own request task, without its per-connection extra tasks: Engine.IO keeps a writer
task waiting on the queue and a reader task, each under ``wait_for`` (a task, a timer and a
future more), for every idle client — about 6 KiB per client that, allocated while clients are
connected, kept that much more of the interpreter's small-object arenas resident after they
left (see README, Live events). Here the reads wait under ``asyncio.timeout`` and a writer task
exists only while queued packets are being written.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from aiohttp import WSMsgType, web
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from apiserver.realtime.transport import (
    OP_CLOSE,
    OP_PONG,
    DirectQueue,
    RawFrame,
    ws_frame,
)

# Close code for a client dropped for falling behind: "try again later" (RFC 6455 §7.4,
# IANA registry); the client reconnects and catches up with ``sync``.
CLOSE_TRY_AGAIN_LATER = 1013
# Seconds a refused client gets to read its close frame before the connection is dropped.
CLOSE_GRACE_S = 5.0
# Bytes handed to the transport in one write. A client that stopped reading holds at most this
# much as a private copy (the transport's buffer); smaller means more system calls per event.
WRITE_CHUNK = 64 * 1024


class DirectWebSocket:
    """Engine.IO's aiohttp websocket driver, without compression and with direct writes."""

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server
        # ``handler`` is the bound ``_websocket_handler`` of the Engine.IO socket.
        self.socket: Any = getattr(handler, "__self__", None)
        queue = getattr(self.socket, "queue", None)  # a socket keeps its queue for life
        self.queue = queue if isinstance(queue, DirectQueue) else None
        self.environ: dict[str, Any] | None = None
        self._ws: web.WebSocketResponse | None = None
        self._request: web.Request | None = None
        self._transport: asyncio.Transport | None = None
        self._rest: memoryview | None = None  # the unwritten part of the frame being written
        self._serving = False  # our loop runs and the socket is upgraded: queued packets go out
        self._writer: asyncio.Task[None] | None = None  # writes queued packets, while any

    @property
    def upgraded(self) -> bool:
        socket = self.socket
        return socket is not None and socket.upgraded and not socket.upgrading

    def idle(self) -> bool:
        """Return True when an event may be written now, bypassing the writer task.

        The socket is upgraded and open, nothing is half-written and the transport holds
        nothing. Called once per client per event: plain attributes, no properties.
        """
        transport = self._transport
        socket = self.socket
        return (
            self._rest is None
            and transport is not None
            and socket.upgraded
            and not socket.upgrading
            and not socket.closed
            and not transport.is_closing()
            and not transport.get_write_buffer_size()
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
        if queue is not None:
            queue.ws = self
        try:
            await self._serve()
        finally:
            if queue is not None and queue.ws is self:
                queue.ws = None
                queue.direct = None
                queue.set_buffered(0)
        return ws

    async def _serve(self) -> None:
        """Engine.IO's websocket loop: upgrade, then read packets until the client goes.

        The same steps as ``AsyncSocket._websocket_handler`` (which still runs for an object
        that is not an Engine.IO socket): a client silent for a ping interval plus timeout, a
        closed connection or an oversize message ends it; what was queued is written, the
        websocket closed and the socket closed with the reason "transport close".
        """
        socket, server = self.socket, self.server
        if self.queue is None or not hasattr(socket, "connected"):
            await self.handler(self)
            return
        limit = server.ping_interval + server.ping_timeout
        if socket.connected:  # polling so far: this is an upgrade
            if not await self._upgrade(limit):
                return
        else:
            socket.connected = True
            socket.upgraded = True
        self._serving = True
        self.kick()  # what was queued before (the OPEN and CONNECT packets)
        cancelled = False
        while True:
            try:
                async with asyncio.timeout(limit):
                    data = await self.wait()
            except asyncio.CancelledError:
                cancelled = True
                break
            except Exception:  # closed, silent too long, or broken
                break
            if len(data) > server.max_http_buffer_size:
                break
            try:
                await socket.receive(eio_packet.Packet(encoded_packet=data))
            except eio_exceptions.UnknownPacketError:
                pass
            except eio_exceptions.SocketIsClosedError:
                break
            except Exception:
                server.logger.exception("Unknown receive error")
        self._stop_serving()
        writer = self._writer
        if writer is not None:  # what was queued goes out first, as Engine.IO's writer does
            await asyncio.wait({writer}, timeout=CLOSE_GRACE_S)
            if not writer.done():
                self.abort()
                writer.cancel()
        await self.close()
        await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        if cancelled:
            raise asyncio.CancelledError

    async def _upgrade(self, limit: float) -> bool:
        """Engine.IO's upgrade from polling: the probe PING/PONG, then UPGRADE (True: done)."""
        socket = self.socket
        socket.upgrading = True  # the pending long-poll takes no more packets
        try:
            async with asyncio.timeout(limit):
                probe = eio_packet.Packet(encoded_packet=await self.wait())
                if probe.packet_type != eio_packet.PING or probe.data != "probe":
                    self.server.logger.info("%s: websocket upgrade without probe", socket.sid)
                    return False
                await self.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
                await socket.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the poll
                upgrade = eio_packet.Packet(encoded_packet=await self.wait())
        except Exception:
            return False
        finally:
            socket.upgrading = False
        if upgrade.packet_type != eio_packet.UPGRADE:
            socket.upgraded = False
            self.server.logger.info("%s: websocket upgrade without UPGRADE", socket.sid)
            return False
        socket.upgraded = True
        return True

    def kick(self) -> None:
        """Have the packets waiting in the queue written (a writer task runs while any wait)."""
        if self._serving and self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())

    async def _write_queued(self) -> None:
        """Write queued packets in order until the queue is empty (None: close)."""
        queue = self.queue
        try:
            while queue is not None:
                queue.new_batch()
                try:
                    pkt = queue.get_nowait()
                except asyncio.QueueEmpty:
                    self.open_direct()
                    return
                queue.task_done()
                if pkt is None:  # the stop sentinel (a client dropped as too slow)
                    await self.close()
                    return
                try:
                    # An event's encoded text carries its shared frame: ``send`` writes that.
                    await self.send(pkt.encode())
                except Exception:
                    await self.close()
                    return
        finally:
            self._writer = None

    def open_direct(self) -> None:
        """Let the hub write events straight to the transport while nothing waits to be sent."""
        queue = self.queue
        if queue is None or not self._serving or queue.taken or queue.dropped is not None:
            return
        if queue.empty() and self.idle():
            queue.set_buffered(0)  # the transport holds nothing
            queue.direct = self._transport

    def _stop_serving(self) -> None:
        """Queued packets are no longer written, and events no longer written at once."""
        self._serving = False
        if self.queue is not None:
            self.queue.direct = None

    async def close(self) -> None:
        self._stop_serving()
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
        self._stop_serving()
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
        self._stop_serving()
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
        rest: memoryview | None = None
        if len(frame) <= WRITE_CHUNK:  # most events: one write, no views
            transport.write(frame)
        else:
            view = memoryview(frame)
            while view:
                transport.write(view[:WRITE_CHUNK])
                view = view[WRITE_CHUNK:]
                if transport.get_write_buffer_size():
                    break
            rest = view if view else None
        self._rest = rest
        queue = self.queue
        if queue is not None:
            size = transport.get_write_buffer_size()
            if size:
                queue.direct = None
            if size or queue.buffered:
                queue.set_buffered(size)
        return rest

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
