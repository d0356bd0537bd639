"""Engine.IO's websocket loop for the fast path's ``DirectWebSocket``: one task per client.

python-engineio runs ``AsyncSocket._websocket_handler`` for a websocket: a writer task waiting
on the socket's queue and a reader task, each under ``wait_for`` (one task, a timer and a
future more), for every connected client, idle or not: about 6 KiB per client, allocated while
clients are connected. CPython's small-object allocator gives a 1 MiB arena back only once
every block in it is free, so what the daemon makes meanwhile and keeps (new models, the event
history) held that much more memory resident after the clients left (README, Live events).
The same steps run here in the websocket's own request task: reads wait under
``asyncio.timeout``, and ``DirectWebSocket`` writes queued packets as they come.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

if TYPE_CHECKING:  # only a type here; importing it would be circular
    from apiserver.realtime.websocket import DirectWebSocket


async def serve(ws: DirectWebSocket) -> None:
    """Upgrade if the client was polling, then read packets until the client goes.

    The steps of ``AsyncSocket._websocket_handler``: a client silent for a ping interval plus
    timeout, a closed connection or an oversize message ends it; then the websocket is closed
    and the socket closed with the reason "transport close".
    """
    socket, server = ws.socket, ws.server
    limit = server.ping_interval + server.ping_timeout
    if socket.connected:  # polling so far: this is an upgrade
        if not await upgrade(ws, limit):
            return
    else:
        socket.connected = True
        socket.upgraded = True
    ws.start_writing()  # what was queued before (the OPEN and CONNECT packets) goes out
    cancelled = False
    while True:
        try:
            async with asyncio.timeout(limit):
                data = await ws.wait()
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
    await ws.stop_writing()
    await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
    if cancelled:
        raise asyncio.CancelledError


async def upgrade(ws: DirectWebSocket, limit: float) -> bool:
    """Engine.IO's upgrade from polling: the probe PING/PONG, then UPGRADE (True: done)."""
    socket = ws.socket
    socket.upgrading = True  # the pending long-poll takes no more packets
    try:
        async with asyncio.timeout(limit):
            probe = eio_packet.Packet(encoded_packet=await ws.wait())
            if probe.packet_type != eio_packet.PING or probe.data != "probe":
                ws.server.logger.info("%s: websocket upgrade without probe", socket.sid)
                return False
            await ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
            await socket.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the poll
            upgrade = eio_packet.Packet(encoded_packet=await ws.wait())
    except Exception:
        return False
    finally:
        socket.upgrading = False
    if upgrade.packet_type != eio_packet.UPGRADE:
        socket.upgraded = False
        ws.server.logger.info("%s: websocket upgrade without UPGRADE", socket.sid)
        return False
    socket.upgraded = True
    return True
