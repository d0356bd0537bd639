"""The fast path's websocket: Engine.IO's aiohttp driver, writing shared event frames.

Once the websocket serves, its transport writes nothing: every frame goes out through the
connection's ``sender.FrameSender``, which writes events from the frame all clients share
and keeps what the kernel did not take as a view of it, never a copy. Before that (the
upgrade's probe) and after it (the close), aiohttp writes, while the sender holds nothing.

The connection runs Engine.IO's websocket loop (``AsyncSocket._websocket_handler``) in the
websocket's own request task, without its per-connection extra tasks: Engine.IO keeps a writer
task waiting on the queue and a reader task, each under ``wait_for`` (a task, a timer and a
future more), for every idle client — about 6 KiB per client that, allocated while clients are
connected, kept that much more of the interpreter's small-object arenas resident after they
left (see README, Live events). Here the reads wait under ``asyncio.timeout`` and queued
packets are written by the sender, in callbacks of the event loop.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from apiserver.realtime.sender import FrameSender
from apiserver.realtime.transport import (
    OP_CLOSE,
    OP_PONG,
    DirectQueue,
    ws_frame,
)

# Close code for a client dropped for falling behind: "try again later" (RFC 6455 §7.4,
# IANA registry); the client reconnects and catches up with ``sync``.
CLOSE_TRY_AGAIN_LATER = 1013
# Seconds a refused client gets to read its close frame before the connection is dropped.
CLOSE_GRACE_S = 5.0


class SenderFirstResponse(web.WebSocketResponse):
    """aiohttp's websocket response, whose close waits for the sender and stops it first.

    aiohttp also closes by itself, inside ``receive``, on a protocol error (e.g. a message
    over ``max_msg_size``), writing its close frame through the transport. While the sender
    is behind, that frame must wait until what the sender holds was written, and no event
    may follow it: ``before_close`` sees to both.
    """

    def __init__(self, before_close: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._before_close = before_close

    async def close(self, **options: Any) -> bool:  # code, message, drain: aiohttp's own
        await self._before_close()
        return await super().close(**options)


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
        self.sender: FrameSender | None = None  # writes every frame while the websocket serves
        self._closing: asyncio.Task[None] | None = None

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        # No permessage-deflate: identical frames for every client, no per-client compressor.
        # Even one deflated frame shared by all (each event compressed once, on its own) lost:
        # Node clients inflating it used 2.7x the CPU in a 1000-client burst (37 s vs 14 s),
        # which ran at half the events/s, though it sent 12x fewer bytes.
        # No automatic pong: the sender writes it, between two frames (see ``_pong``). No
        # automatic close reply either: it would be written past the sender, maybe inside a
        # frame; ``close`` answers once the sender stopped (aiohttp's own close on a protocol
        # error waits for the sender too: see ``SenderFirstResponse``).
        ws = SenderFirstResponse(
            self._sender_done,
            max_msg_size=self.server.max_http_buffer_size,
            compress=False,
            autoping=False,
            autoclose=False,
        )
        await ws.prepare(request)
        self._ws = ws
        self._request = request
        self._transport = transport = request.transport
        if transport is not None:
            # aiohttp's writes (the upgrade's probe, the close) wait until the transport is
            # empty: the sender starts, and the close follows it, with nothing in between.
            transport.set_write_buffer_limits(high=0, low=0)
        self.environ = environ
        queue = self.queue
        if queue is not None:
            queue.ws = self
        try:
            await self._serve()
        finally:
            self._stop_sender()
            if queue is not None and queue.ws is self:
                queue.ws = None
                queue.direct = None
                queue.set_buffered(0)
        return ws

    async def _serve(self) -> None:
        """Engine.IO's websocket loop: upgrade, then read packets until the client goes.

        The same steps as ``AsyncSocket._websocket_handler`` (which still runs for an object
        that is not an Engine.IO socket, or a transport without a socket): a client silent for
        a ping interval plus timeout, a closed connection or an oversize message ends it; what
        was queued is written, the websocket closed and the socket closed with the reason
        "transport close".
        """
        socket, server, transport = self.socket, self.server, self._transport
        sock = None
        if transport is not None and transport.get_extra_info("sslcontext") is None:
            sock = transport.get_extra_info("socket")  # plain TCP: frames go to it unchanged
        if self.queue is None or not hasattr(socket, "connected") or sock is None:
            await self.handler(self)
            return
        assert transport is not None
        limit = server.ping_interval + server.ping_timeout
        if socket.connected:  # polling so far: this is an upgrade
            if not await self._upgrade(limit):
                return
        else:
            socket.connected = True
            socket.upgraded = True
        await self._start_sender(transport, sock.fileno())
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
        await self._finish()
        await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        if cancelled:
            raise asyncio.CancelledError

    async def _start_sender(self, transport: asyncio.Transport, fd: int) -> None:
        """Hand the writing to a ``FrameSender`` once aiohttp's writes left."""
        assert self.queue is not None
        assert self._request is not None
        try:
            while transport.get_write_buffer_size() and not transport.is_closing():
                await self._request.writer.drain()  # resumed once empty (``__call__``)
        except ConnectionError:
            return  # reset meanwhile: the loop's first read ends the connection
        if not transport.is_closing():  # else the loop's first read ends the connection
            self.sender = FrameSender(self.queue, transport, fd, self._closed_by_queue)
            self.sender.start()  # what was queued before (the OPEN and CONNECT packets)

    async def _finish(self) -> None:
        """What was queued goes out first, as Engine.IO's writer does; then the close."""
        if not await self._sender_written():
            self.abort()
        await self.close()

    async def _sender_written(self) -> bool:
        """Wait (``CLOSE_GRACE_S`` at most) until the sender wrote all it holds; False if not.

        Not when the connection is going away already: the sender's duplicate descriptor
        would keep the socket open meanwhile.
        """
        sender, transport = self.sender, self._transport
        if sender is not None and transport is not None and not transport.is_closing():
            try:
                await asyncio.wait_for(sender.wait_idle(), CLOSE_GRACE_S)
            except TimeoutError:
                return False
        return True

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

    def _closed_by_queue(self) -> None:
        """The queue's stop sentinel: Engine.IO closed the socket; close the websocket."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.close())

    def _stop_sender(self) -> memoryview | None:
        """Stop the sender; return the unwritten part of the frame it was writing."""
        sender = self.sender
        if sender is None:
            return None
        sender.stop()
        rest, sender.rest = sender.rest, None
        return rest

    async def _sender_done(self) -> None:
        """Before aiohttp writes a close: let the sender write what it holds, then stop it."""
        await self._sender_written()  # if not in time and still mid-frame: dropped below
        if self._stop_sender() is not None:
            self.abort()  # a close frame now would land inside an event frame

    async def close(self) -> None:
        rest = self._stop_sender()
        transport = self._transport
        if transport is not None and transport.is_closing():
            return  # refused or hung up already
        if rest is not None:
            self.abort()  # a close frame now would land inside an event frame
        elif self._ws is not None:
            await self._ws.close()

    def refuse(self, reason: str) -> None:
        """Close with code 1013 and ``reason`` after the frame being written, then hang up.

        A client that still reads learns why it was dropped; one that does not is cut off
        after ``CLOSE_GRACE_S``. The rest of the frame being written is copied once.
        """
        rest = self._stop_sender()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if rest is not None:
            transport.write(rest)
        payload = struct.pack("!H", CLOSE_TRY_AGAIN_LATER) + reason.encode()[:123]
        transport.write(ws_frame(payload, OP_CLOSE))
        transport.close()  # flushes what is buffered first
        asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self.abort)

    def hang_up(self) -> None:
        """Send a websocket close frame (1001 going away) and close the connection."""
        rest = self._stop_sender()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if rest is not None:
            transport.abort()
            return
        transport.write(ws_frame(struct.pack("!H", 1001), OP_CLOSE))
        transport.close()  # flushes what is buffered first

    def abort(self) -> None:
        """Drop the connection now, unsent bytes included."""
        self._stop_sender()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.abort()

    async def send(self, message: str | bytes) -> None:
        """Write one encoded packet through aiohttp (the upgrade's probe; Engine.IO's loop)."""
        ws = self._ws
        transport = self._transport
        if ws is None or transport is None or transport.is_closing():
            return
        if isinstance(message, bytes):
            await ws.send_bytes(message)
        else:
            await ws.send_str(message)

    def _pong(self, data: bytes) -> None:
        """Answer a websocket ping, between two frames (RFC 6455 §5.5.3)."""
        frame = ws_frame(data, OP_PONG)
        sender = self.sender
        if sender is not None:
            sender.send_urgent(frame)  # after the frame being written, ahead of queued events
        elif self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame)  # before the sender starts, aiohttp's turn

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
        if msg.type == WSMsgType.CLOSE and self.sender is not None:
            self.sender.stop()  # the client closes: no more events, the close reply next
        if msg.type == WSMsgType.ERROR:  # e.g. a message over max_msg_size: aiohttp closes
            warnings = getattr(self.server, "input_warnings", None)
            if warnings is not None:
                warnings.warn(getattr(self.socket, "sid", "?"), "oversize")
        if not isinstance(msg.data, bytes | str):
            raise OSError("websocket closed")
        return msg.data
