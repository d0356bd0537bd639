"""Contract of the fast path with the real python-engineio: AsyncSocket over a real websocket.

The fast path relies on private parts of python-engineio (see apiserver/realtime/compat.py).
These tests run the real ``engineio.async_socket.AsyncSocket`` behind an aiohttp server on a
loopback port and a real websocket client, and fail when what the fast path assumes changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import struct
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket

from apiserver.realtime.compat import fast_path_problems
from apiserver.realtime.server import MAX_CLIENT_MESSAGE, SocketServer
from apiserver.realtime.transport import DirectQueue, FramedPacket, Limits
from apiserver.realtime.websocket import DirectWebSocket
from tests.realtime.stalled import StalledWebSocket, masked_frame, read_frame

PING_INTERVAL = 0.2
PING_TIMEOUT = 0.4


@pytest.fixture
async def server(aiohttp_server: Any) -> AsyncIterator[tuple[SocketServer, str]]:
    sio = SocketServer(
        fast=True,
        limits=Limits(),
        async_mode="aiohttp",
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
    )
    app = web.Application()
    sio.attach(app, socketio_path="socket.io")
    srv = await aiohttp_server(app)
    yield sio, f"http://127.0.0.1:{srv.port}"
    await sio.shutdown()


@contextlib.asynccontextmanager
async def eio_websocket(url: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """Open a raw Engine.IO websocket to the server at ``url``."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket") as ws,
    ):
        yield ws


async def next_text(ws: aiohttp.ClientWebSocketResponse, *, pong: bool = True) -> str:
    """Return the next Engine.IO packet that is not a ping (pings are answered)."""
    while True:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        if msg.data == "2" and pong:
            await ws.send_str("3")
            continue
        return str(msg.data)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` against a deadline."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            if predicate():
                return
            await asyncio.sleep(0.01)


async def join_namespace(ws: aiohttp.ClientWebSocketResponse) -> str:
    """Read Engine.IO's open packet, join the default namespace; return the Engine.IO sid."""
    eio_sid: str = json.loads((await next_text(ws))[1:])["sid"]
    await ws.send_str("40")
    await next_text(ws)  # the namespace's CONNECT answer
    return eio_sid


def test_the_installed_libraries_have_every_part_the_fast_path_uses() -> None:
    sio = SocketServer(fast=True, limits=Limits(), async_mode="aiohttp")
    assert fast_path_problems(sio) == []


async def test_direct_writes_and_pings_over_a_real_websocket(
    server: tuple[SocketServer, str],
) -> None:
    sio, url = server
    async with eio_websocket(url) as ws:
        opened = await next_text(ws)
        assert opened.startswith("0{")
        eio_sid = json.loads(opened[1:])["sid"]
        await ws.send_str("40")
        assert (await next_text(ws)).startswith("40{")

        socket = sio.eio.sockets[eio_sid]
        assert type(socket) is AsyncSocket
        queue = socket.queue
        assert isinstance(queue, DirectQueue)
        assert isinstance(queue.ws, DirectWebSocket) and queue.ws.socket is socket
        assert socket.upgraded and not socket.upgrading and not socket.closed

        queue.put_nowait(FramedPacket('2["direct",1]'))
        assert queue.empty()  # written straight to the transport
        assert await next_text(ws) == '42["direct",1]'

        # Several ping intervals, well past interval + timeout: Engine.IO's writer must keep
        # seeing the pings, or it closes the connection (websocket clients dropped after 45 s).
        pings = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 4 * (PING_INTERVAL + PING_TIMEOUT)
        while loop.time() < deadline:
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            if msg.data == "2":
                pings += 1
                await ws.send_str("3")
        assert pings >= 4
        assert eio_sid in sio.eio.sockets and not socket.closed

        queue.put_nowait(FramedPacket('2["still",2]'))
        assert await next_text(ws) == '42["still",2]'


async def test_an_idle_websocket_names_its_sender_for_direct_writes(
    server: tuple[SocketServer, str],
) -> None:
    sio, url = server
    async with eio_websocket(url) as ws:
        eio_sid = await join_namespace(ws)
        queue = sio.eio.sockets[eio_sid].queue
        assert isinstance(queue, DirectQueue) and isinstance(queue.ws, DirectWebSocket)
        await wait_until(lambda: queue.direct is not None)  # OPEN and CONNECT written
        sender = queue.ws.sender
        assert sender is not None and queue.direct is sender
        assert sender.fd == queue.ws._transport.get_extra_info("socket").fileno()

        await sio.eio.sockets[eio_sid].send(eio_packet.Packet(eio_packet.MESSAGE, '2["x",1]'))
        assert queue.empty() and queue.direct is sender  # written at once: still idle
        assert await next_text(ws) == '42["x",1]'

    await wait_until(lambda: eio_sid not in sio.eio.sockets)
    assert queue.direct is None and sender.stopped  # the connection ended
    assert sender.watch is None


async def test_a_client_close_is_answered_at_once_and_a_server_disconnect_sent(
    server: tuple[SocketServer, str],
) -> None:
    # The close reply is ours (aiohttp's automatic one would bypass the sender), and
    # Engine.IO's disconnect writes its CLOSE packet and waits for the queue to be written.
    sio, url = server
    async with eio_websocket(url) as ws:
        eio_sid = await join_namespace(ws)
        async with asyncio.timeout(2):  # not aiohttp's 10 s wait for a reply
            await ws.close()
        assert ws.close_code == 1000
    await wait_until(lambda: eio_sid not in sio.eio.sockets)

    async with eio_websocket(url) as ws:
        eio_sid = await join_namespace(ws)
        async with asyncio.timeout(2):  # close(wait=True) joins the queue: task_done counts
            await sio.eio.disconnect(eio_sid)
        assert await next_text(ws) == "1"  # Engine.IO's CLOSE
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg


async def test_an_unanswered_ping_still_closes_the_connection(
    server: tuple[SocketServer, str],
) -> None:
    sio, url = server
    async with eio_websocket(url) as ws:
        eio_sid = await join_namespace(ws)
        async with asyncio.timeout(5):  # no pongs: Engine.IO's timers close it
            while eio_sid in sio.eio.sockets:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
        await wait_until(lambda: eio_sid not in sio.eio.sockets)


async def test_an_upgrade_from_polling_ends_on_the_direct_websocket(
    server: tuple[SocketServer, str],
) -> None:
    sio, url = server
    received: asyncio.Queue[Any] = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    client.on("upgraded", received.put_nowait)
    try:
        await client.connect(url, transports=["polling", "websocket"], wait_timeout=5)
        await wait_until(lambda: client.transport() == "websocket")
        (socket,) = sio.eio.sockets.values()
        await wait_until(lambda: socket.upgraded and not socket.upgrading)
        assert isinstance(socket.queue, DirectQueue) and socket.queue.ws is not None
        socket.queue.put_nowait(FramedPacket('2["upgraded",{"ok":true}]'))
        assert await asyncio.wait_for(received.get(), 5) == {"ok": True}
    finally:
        await client.disconnect()


async def test_a_client_behind_holds_references_to_shared_frames_not_copies(
    aiohttp_server: Any,
) -> None:
    # Two clients that stop reading while 1 MB events pile up: what the kernel does not take
    # waits as a view of the one shared frame, their transports hold nothing (no copies), and
    # a websocket ping in the middle of a frame is answered after it (not inside it), ahead
    # of the events still queued.
    sio = SocketServer(fast=True, limits=Limits(), async_mode="aiohttp", ping_interval=25)
    app = web.Application()
    sio.attach(app, socketio_path="socket.io")
    srv = await aiohttp_server(app)
    loop = asyncio.get_running_loop()
    clients = [await StalledWebSocket().open(srv.port) for _ in range(2)]
    try:
        sockets = [sio.eio.sockets[c.sid] for c in clients]
        await wait_until(lambda: all(s.upgraded for s in sockets))
        events = [FramedPacket(f'2["big",{i},"{"x" * 1_000_000}"]') for i in range(8)]
        for pkt in events:
            for socket_ in sockets:
                socket_.queue.put_nowait(pkt)
        # Written at once, as far as the kernel takes them: each sender is mid-frame now.
        await wait_until(lambda: all(s.queue.sender.rest is not None for s in sockets))
        frames = {id(pkt.frame) for pkt in events}
        for socket_ in sockets:
            queue = socket_.queue
            assert isinstance(queue.ws, DirectWebSocket)
            assert queue.ws._transport is not None
            assert queue.ws._transport.get_write_buffer_size() == 0
            sender = queue.ws.sender
            assert sender is not None and sender.rest is not None  # a frame half-written
            assert id(sender.rest.obj) in frames  # ... and its rest a view of the shared one
            assert sender.watch is not None  # waiting for the client to read
            assert queue.qsize() >= 1 and queue.direct is None  # behind: events wait in order
        assert sio.engine.backlog.total <= sum(pkt.size for pkt in events)  # shared: once

        sock = clients[0].sock
        await loop.sock_sendall(sock, masked_frame(b"mid-frame", 0x9))  # a websocket ping
        buffer = bytearray()
        got: list[str] = []
        pong_after = -1
        while len(got) < len(events) or pong_after < 0:
            opcode, payload = await asyncio.wait_for(read_frame(sock, buffer), 10)
            if opcode == 0xA:
                assert payload == b"mid-frame"
                pong_after = len(got)
            elif opcode == 0x1 and payload.startswith(b"42"):
                got.append(payload.decode())
            elif payload == b"2":
                await loop.sock_sendall(sock, masked_frame(b"3", 0x1))
        assert got[: len(events)] == [pkt.encode() for pkt in events]  # whole, in order
        # Answered right after the frame being written, ahead of the events still queued
        # (those in the kernel's buffers already come first).
        assert pong_after < len(events) - 1
    finally:
        for client in clients:
            client.close()
        await sio.shutdown()


async def test_an_oversize_message_mid_frame_is_closed_after_the_events_never_inside_one(
    aiohttp_server: Any,
) -> None:
    # aiohttp answers a protocol error (a message over max_msg_size) with a close frame of its
    # own, through the transport, while the sender may be mid-frame with more queued: the
    # client reads those events whole and in order, then the close (1009), never a close
    # frame inside an event frame or events after it.
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
        oversize = masked_frame(b"4" + b"x" * (MAX_CLIENT_MESSAGE + 1000))
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


async def test_a_client_dropped_for_falling_behind_is_told_why(aiohttp_server: Any) -> None:
    # It stops reading until over its cap, then reads on: every frame it gets is whole, and
    # the last is a close frame "try again later" with the reason (not just a dropped socket).
    limits = Limits(client_bytes=3_000_000, total_bytes=10**9)
    sio = SocketServer(fast=True, limits=limits, async_mode="aiohttp", ping_interval=25)
    app = web.Application()
    sio.attach(app, socketio_path="socket.io")
    srv = await aiohttp_server(app)
    client = await StalledWebSocket().open(srv.port)
    try:
        socket_ = sio.eio.sockets[client.sid]
        await wait_until(lambda: socket_.upgraded)
        for i in range(12):
            if socket_.closed:
                break
            socket_.queue.put_nowait(FramedPacket(f'2["big",{i},"{"x" * 1_000_000}"]'))
            await asyncio.sleep(0.05)
        await wait_until(lambda: socket_.closed)
        buffer = bytearray()
        frames: list[tuple[int, bytes]] = []
        while not frames or frames[-1][0] != 0x8:
            frames.append(await asyncio.wait_for(read_frame(client.sock, buffer), 10))
        code, reason = struct.unpack("!H", frames[-1][1][:2])[0], frames[-1][1][2:].decode()
        assert code == 1013 and reason.startswith("too slow"), (code, reason)
        assert all(payload.startswith(b"4") for op, payload in frames[:-1] if op == 0x1)
    finally:
        client.close()
        await sio.shutdown()


async def test_an_idle_client_costs_no_task_but_its_request_and_a_ping_timer(
    server: tuple[SocketServer, str],
) -> None:
    # Engine.IO runs a writer task, a reader task (each under wait_for: one task more) and a
    # ping task per client; the fast path reads in the request's task, writes in event-loop
    # callbacks, and pings from a timer: memory per client, see README.
    sio, url = server
    sio.eio.ping_interval = 25  # the ping waits 25 s: only the cancel can end it soon

    def socket_tasks() -> list[str]:
        names = []
        for task in asyncio.all_tasks():
            name = getattr(task.get_coro(), "__qualname__", "")
            if name.startswith(("AsyncSocket.", "DirectWebSocket.")) or name == "wait_for":
                names.append(name)
        return names

    async with eio_websocket(url) as ws:
        eio_sid = await join_namespace(ws)
        socket_ = sio.eio.sockets[eio_sid]
        await wait_until(lambda: socket_tasks() == [])  # the CONNECT answer went out
        ping = sio.eio._pings[eio_sid]
        assert isinstance(ping, asyncio.TimerHandle) and not ping.cancelled()
        held = weakref.ref(socket_)
        del socket_
    await wait_until(lambda: eio_sid not in sio.eio.sockets)
    assert ping.cancelled() and eio_sid not in sio.eio._pings
    gc.collect()
    assert held() is None  # neither the timer nor a task holds the departed client
