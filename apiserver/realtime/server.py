"""The Socket.IO server: python-socketio's AsyncServer with bounded queues and guarded input.

What a client sends is checked before python-socketio dispatches it: packets that do not parse,
binary packets, events with reserved or unknown names, and junk arguments are ignored (an event
that asked for an acknowledgement gets an error answer) with at most one warning per client and
kind, instead of a traceback per message or a handler called with nonsense.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Any

import engineio
import socketio
from aiohttp import WSMsgType, web
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from apiserver.realtime.heap import HeapTrimmer
from apiserver.realtime.transport import Backlog, BoundedQueue, DirectQueue, Limits
from apiserver.realtime.websocket import DirectWebSocket
from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.realtime")

# Names the protocol or the client libraries use for themselves: never an event from a client.
RESERVED_EVENTS = frozenset(
    ("connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener")
)
# What clients may send (everything else is ignored).
CLIENT_EVENTS = frozenset(("sync", "subscribe", "unsubscribe"))
# Clients only send small commands; anything bigger is refused by Engine.IO.
MAX_CLIENT_MESSAGE = 64 * 1024
# Packets one polling POST may carry. python-engineio refuses (and logs an error for) more than
# 16, dropping them all, while clients batch whatever they emitted since their last POST; the
# Engine.IO protocol and Node's server set no such limit. The bytes stay capped by
# MAX_CLIENT_MESSAGE.
MAX_POST_PACKETS = 1024


class InputWarnings:
    """Log at most one warning per client and kind of bad input (plus a global rate limit)."""

    def __init__(self, per_second: float = 20.0) -> None:
        self._seen: dict[str, set[str]] = {}  # client -> kinds warned about
        self._per_second = per_second
        self._window = 0.0
        self._count = 0
        self.suppressed = 0

    def warn(self, client: str, kind: str, **fields: Any) -> None:
        kinds = self._seen.setdefault(client, set())
        if kind in kinds:
            return
        kinds.add(kind)
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window, self._count = now, 0
        self._count += 1
        if self._count > self._per_second:
            self.suppressed += 1
            return
        log.warning("socketio_input_refused", sid=client, kind=kind, **fields)

    def forget(self, client: str) -> None:
        self._seen.pop(client, None)


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """Engine.IO server whose sockets queue into ``BoundedQueue`` (``DirectQueue`` if fast)."""

    _async: dict[str, Any]  # the async driver table, set by the base class

    def __init__(self, *, fast: bool, limits: Limits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        eio_payload.Payload.max_decode_packets = max(
            eio_payload.Payload.max_decode_packets, MAX_POST_PACKETS
        )
        self.fast = fast
        # Memory freed by a drained burst or by departed clients goes back to the system.
        self.trimmer = HeapTrimmer(connected=lambda: len(self.sockets))
        self.backlog = Backlog(limits, self._too_slow, on_drained=self.trimmer.request)
        self.input_warnings = InputWarnings()
        # Engine.IO sid -> its next ping: a timer (fast path) or Engine.IO's task
        self._pings: dict[str, asyncio.TimerHandle | asyncio.Task[Any]] = {}
        # A copy: the driver table is a module-level dict shared by every server.
        websocket = DirectWebSocket if fast else CheckedWebSocket
        self._async = {**self._async, "websocket": websocket}

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        socket = getattr(target, "__self__", None)
        is_ping = getattr(target, "__func__", None) is AsyncSocket._send_ping
        if is_ping and isinstance(socket, AsyncSocket) and self.fast and not args and not kwargs:
            # A timer instead of a task that sleeps: ~1 KiB less per connected client.
            loop = asyncio.get_running_loop()
            self._pings[socket.sid] = loop.call_later(self.ping_interval, self._ping_due, socket)
            return None
        task = super().start_background_task(target, *args, **kwargs)
        if is_ping and isinstance(socket, AsyncSocket) and isinstance(task, asyncio.Task):
            self._pings[socket.sid] = task
            task.add_done_callback(functools.partial(self._ping_done, socket.sid))
        return task

    def _ping_due(self, socket: AsyncSocket) -> None:
        """Send the PING ``AsyncSocket._send_ping`` sends once its ping interval slept."""
        self._pings.pop(socket.sid, None)
        if socket.closing or socket.closed:
            return
        socket.last_ping = time.time()  # the ping timeout counts from now
        socket.queue.put_nowait(eio_packet.Packet(eio_packet.PING))  # never blocks (unbounded)

    def _ping_done(self, sid: str, task: asyncio.Task[Any]) -> None:
        if self._pings.get(sid) is task:
            del self._pings[sid]

    def forget_socket(self, sid: str) -> None:
        """Cancel the ping a closed socket waits to send.

        Engine.IO's ping task (or our timer) waits a whole ping interval before it sees the
        socket closed, holding the socket (its queue, its request) that long after the client
        left.
        """
        task = self._pings.pop(sid, None)
        if task is not None:
            task.cancel()

    async def _service_task(self) -> None:
        """Engine.IO's service task (closed sockets, ping timeouts), holding no socket meanwhile.

        The stock task walks a copy of the whole socket table over one ping timeout (20 s by
        default), so every client that left kept its socket, request and buffers alive for up
        to that long after it was gone. This one walks a copy of the sids and looks each socket
        up in its turn.
        """
        self.service_task_event = self.create_event()
        while True:
            sids = list(self.sockets) or [None]
            step = self.ping_timeout / len(sids)
            for sid in sids:
                try:
                    await self._service_step(sid)
                    async with asyncio.timeout(step):
                        await self.service_task_event.wait()
                    return  # set by shutdown()
                except TimeoutError:
                    continue
                except asyncio.CancelledError:
                    return  # as the stock task: shutdown() awaits it
                except Exception:
                    log.exception("engineio_service_task_failed")

    async def _service_step(self, sid: str | None) -> None:
        socket = self.sockets.get(sid) if sid is not None else None
        if socket is None:
            return
        if socket.closed:
            self.sockets.pop(sid, None)
        elif not socket.closing:
            await socket.check_ping_timeout()

    def create_queue(self, *args: Any, **kwargs: Any) -> BoundedQueue:
        return DirectQueue(self.backlog) if self.fast else BoundedQueue(self.backlog)

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > self.max_http_buffer_size:
            self.input_warnings.warn(
                request.query.get("sid", request.remote or "?"), "oversize", bytes=length
            )
        return await super().handle_request(request)  # type: ignore[no-any-return]

    def _too_slow(self, queue: BoundedQueue, why: str) -> None:
        """Disconnect the client of ``queue``: it fell too far behind (``Backlog`` decided)."""
        for sid, socket in list(self.sockets.items()):
            if socket.queue is queue:
                log.warning("socketio_client_too_slow", eio_sid=sid, why=why)
                ws = getattr(queue, "ws", None)
                if isinstance(ws, DirectWebSocket):
                    ws.refuse(why)  # a close frame with the reason, after what is on its way
                task = asyncio.get_running_loop().create_task(
                    socket.close(wait=False, abort=True, reason=why)
                )
                _keep(task)
                return


class CheckedWebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """python-engineio's aiohttp websocket (supported path), warning about oversize messages.

    aiohttp closes a connection whose message is over ``max_msg_size`` and reports an ERROR
    message, which python-engineio takes for a plain close; the fast path's ``DirectWebSocket``
    logs the refusal, and so does this one. Should python-engineio keep its aiohttp response
    elsewhere than ``_sock``, only the warning is lost.
    """

    async def wait(self) -> Any:
        response = getattr(self, "_sock", None)
        if not isinstance(response, web.WebSocketResponse):
            return await super().wait()
        msg = await response.receive()
        if msg.type == WSMsgType.ERROR:
            warnings = getattr(self.server, "input_warnings", None)
            if warnings is not None:
                sid = getattr(getattr(self.handler, "__self__", None), "sid", "?")
                warnings.warn(sid, "oversize")
        if not isinstance(msg.data, bytes | str):
            raise OSError("websocket closed")
        return msg.data


_TASKS: set[asyncio.Task[Any]] = set()


def _keep(task: asyncio.Task[Any]) -> None:
    # Short-lived close tasks; a reference keeps them from being collected mid-way.
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


class SocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's AsyncServer on ``EngineServer``, refusing bad client input."""

    def __init__(self, *, fast: bool, limits: Limits, **kwargs: Any) -> None:
        self._fast = fast
        self._limits = limits
        super().__init__(**kwargs)

    def _engineio_server_class(self) -> Any:
        fast, limits = self._fast, self._limits

        def build(**options: Any) -> EngineServer:
            return EngineServer(fast=fast, limits=limits, **options)

        return build

    @property
    def engine(self) -> EngineServer:
        eio: EngineServer = self.eio
        return eio

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        warnings = self.engine.input_warnings
        if not isinstance(data, str):
            warnings.warn(eio_sid, "binary_message")
            return
        try:
            pkt = sio_packet.Packet(encoded_packet=data)
        except Exception:
            warnings.warn(eio_sid, "malformed_packet", bytes=len(data))
            return
        if pkt.packet_type in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK):
            warnings.warn(eio_sid, "binary_message")
            return
        if pkt.packet_type == sio_packet.EVENT and not self._event_acceptable(eio_sid, pkt):
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except Exception as exc:
            warnings.warn(eio_sid, "unhandled_packet", error=type(exc).__name__)

    def _event_acceptable(self, eio_sid: str, pkt: Any) -> bool:
        """Return True for an event a client may send; answer or warn about the others."""
        warnings = self.engine.input_warnings
        data = pkt.data
        name = data[0] if isinstance(data, list) and data else None
        if not isinstance(name, str):
            kind, message = "malformed_event", "An event is a list: [name, ...arguments]"
        elif name in RESERVED_EVENTS:
            kind, message = "reserved_event", f"{name!r} is reserved and cannot be sent"
        elif name not in CLIENT_EVENTS:
            kind = "unknown_event"
            message = f"Unknown event; clients may send: {', '.join(sorted(CLIENT_EVENTS))}"
        elif len(data) > 2:
            kind, message = "junk_arguments", "Send one argument (an object)"
        else:
            return True
        warnings.warn(eio_sid, kind)
        if pkt.id is not None:
            answer = {"error": {"code": kind, "message": message}}
            ack = sio_packet.Packet(
                sio_packet.ACK, namespace=pkt.namespace, id=pkt.id, data=[answer]
            )
            task = asyncio.get_running_loop().create_task(self._send_packet(eio_sid, ack))
            _keep(task)
        return False

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        socket = self.eio.sockets.get(eio_sid)
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self.engine.input_warnings.forget(eio_sid)
            self.engine.forget_socket(eio_sid)
            self.engine.trimmer.request(departed=1)
            if socket is not None:
                queue = socket.queue
                if isinstance(queue, BoundedQueue):
                    queue.forget()
                if not socket.upgraded:
                    # A long-poll GET of a client that went away would otherwise wait out the
                    # ping timeout, and hold up the daemon's shutdown.
                    asyncio.get_running_loop().call_soon(_release_poll, socket, 10)


def _release_poll(socket: Any, tries: int) -> None:
    """Wake a pending long-poll of a closed socket (after its CLOSE packet, if any)."""
    if socket.closed:
        with contextlib.suppress(Exception):
            socket.queue.put_nowait(None)
    elif tries > 0:
        asyncio.get_running_loop().call_soon(_release_poll, socket, tries - 1)


class LibraryLogScrubber(logging.Filter):
    """Keep client data out of python-engineio's and python-socketio's own log records.

    Their messages interpolate packet contents (a CONNECT packet carries the API token), so
    every interpolated argument that is not a number is replaced by its type and size, and
    exception details are reduced to the exception's type: this holds whatever the wording.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(_placeholder(a) for a in args)
        elif isinstance(args, dict) and args:
            record.args = {k: _placeholder(v) for k, v in args.items()}
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.msg} ({type(record.exc_info[1]).__name__})"
            record.exc_info = None
            record.exc_text = None
        return True


def _placeholder(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str) and value in PACKET_NAMES:
        return value
    if isinstance(value, str | bytes):
        return f"<{type(value).__name__} {len(value)}>"
    return f"<{type(value).__name__}>"


# Engine.IO packet type names (OPEN, MESSAGE, PING...) are constants, safe to show.
PACKET_NAMES = frozenset(eio_packet.packet_names)
LIBRARY_LOG_SCRUBBER = LibraryLogScrubber()


def library_logger(name: str) -> logging.Logger:
    """Return the named library logger with the scrubber attached (once)."""
    logger = logging.getLogger(name)
    if LIBRARY_LOG_SCRUBBER not in logger.filters:
        logger.addFilter(LIBRARY_LOG_SCRUBBER)
    return logger
