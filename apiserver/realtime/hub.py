"""The hub: which clients are connected, what they want, and the delivery of events to them.

The ``EventPublisher`` hands every event, in ``seq`` order, to ``Hub.deliver``. Two ways out:

- **fast** (the default when the installed python-engineio is the tested one): the event is
  encoded once and the same packet is put on every interested client's queue synchronously;
  idle websocket clients get its shared frame written straight to their socket (``sender``);
- **supported**: one ``AsyncServer.emit`` per event to the room of its topic (every client is in
  the rooms of the events it wants), awaited in order by the publisher's one task.

Clients are greeted with ``proxy:status`` after every connect. A client only starts receiving
broadcasts once its greeting went out; events delivered while the greeting was being built are
replayed right after it, under the same lock as deliveries, so no client misses or reorders an
event around its connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from socketio import packet as sio_packet

from apiserver.realtime.publisher import Event, EventPublisher
from apiserver.realtime.server import SocketServer
from apiserver.realtime.transport import DirectQueue, FramedPacket
from apiserver.services.live_feeds import LIVE_EVENTS
from qwenstack_core.logsetup import get_logger

if TYPE_CHECKING:  # only a type here; importing it would be circular
    from apiserver.services.status import StatusService

log = get_logger("apiserver.realtime")

NAMESPACE = "/"
SEED_EVENTS = ("proxy:status", "credentials:updated", "providers:updated", "models:updated")
# What a client that never subscribed receives (the seed: every client gets every event).
DEFAULT_EVENTS = frozenset((*SEED_EVENTS, "settings:updated"))
# Names a client may subscribe to; ``proxy:log`` and the live feeds only go to subscribers.
KNOWN_EVENTS = frozenset((*DEFAULT_EVENTS, "proxy:log", *LIVE_EVENTS))


def topic_room(name: str) -> str:
    """Return the room of the clients that receive events named ``name`` (supported mode)."""
    return f"topic:{name}"


@dataclass(slots=True)
class Client:
    """One connected Socket.IO client, as the hub sees it."""

    sid: str
    eio_sid: str
    subscriptions: frozenset[str] | None = None  # None: never subscribed → DEFAULT_EVENTS
    ready: bool = False  # greeted: receives broadcasts from now on
    queue: DirectQueue | None = None  # its Engine.IO socket's queue (fast path; kept for life)

    def wants(self, name: str, subscribers_only: bool = False) -> bool:
        """Return True when this client receives events named ``name``."""
        if self.subscriptions is None:
            return not subscribers_only and name in DEFAULT_EVENTS
        return name in self.subscriptions

    def events(self) -> list[str]:
        """Return the client's current subscription list."""
        return sorted(DEFAULT_EVENTS if self.subscriptions is None else self.subscriptions)


def encode_event(name: str, payload: Mapping[str, Any]) -> FramedPacket:
    """Encode an EVENT packet of the default namespace once, for any number of clients.

    orjson writes the same compact JSON as python-socketio's encoder about ten times faster
    (non-ASCII text as UTF-8 rather than escapes; clients decode both alike), and the
    encoding is on every event's way to its first client (python-socketio's: 0.5 ms at 440
    models). What orjson refuses (a lone surrogate, a non-string key, an integer
    beyond 64 bits) is encoded by python-socketio, as before.
    """
    try:
        body = b"2" + orjson.dumps([name, payload])
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        pkt = sio_packet.Packet(sio_packet.EVENT, data=[name, payload], binary=False)
        text: str = pkt.encode()
        return FramedPacket(text)
    return FramedPacket(body.decode(), body)


class Hub:
    """Own the connected clients and deliver events to them, in order."""

    def __init__(self, sio: SocketServer, events: EventPublisher, status: StatusService) -> None:
        self._sio = sio
        self._events = events
        self._status = status
        self.fast = sio.engine.fast
        self._clients: dict[str, Client] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Held by each delivery and by the last step of a greeting (supported mode awaits).
        self._lock = asyncio.Lock()
        self.delivered = 0  # seq of the last broadcast event handed to the clients
        self.emitted: dict[str, int] = {}

    # -- clients ---------------------------------------------------------------------------

    def add(self, sid: str) -> Client:
        """Register a client that passed the connect checks; greet it once connected."""
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        client = self._clients[sid] = Client(sid, eio_sid)
        queue = getattr(self._sio.eio.sockets.get(eio_sid), "queue", None)
        if isinstance(queue, DirectQueue):
            client.queue = queue
        task = asyncio.get_running_loop().create_task(self._greet(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return client

    def remove(self, sid: str) -> None:
        self._clients.pop(sid, None)

    def get(self, sid: str) -> Client | None:
        return self._clients.get(sid)

    def has_clients(self) -> bool:
        """Return True while any client is connected (greeted or not)."""
        return bool(self._clients)

    def listened(self, name: str) -> bool:
        """Return True when a greeted client receives events named ``name`` (topic events)."""
        return any(c.ready and c.wants(name, True) for c in tuple(self._clients.values()))

    def transport(self, client: Client) -> str:
        """Return the client's current transport: websocket or polling."""
        return str(self._sio.transport(client.sid, NAMESPACE))

    # -- sending ---------------------------------------------------------------------------

    async def _send_one(self, client: Client, name: str, payload: Mapping[str, Any]) -> None:
        """Send one event to one client, behind everything sent to it before."""
        if self.fast:
            self._put(client, encode_event(name, payload))
        else:
            await self._sio.emit(name, payload, to=client.sid, namespace=NAMESPACE)

    def _put(self, client: Client, pkt: FramedPacket) -> None:
        socket = self._sio.eio.sockets.get(client.eio_sid)
        if socket is None or socket.closed or socket.closing:
            return
        socket.queue.put_nowait(pkt)  # never blocks; BoundedQueue enforces the caps

    async def deliver(self, event: Event) -> None:
        """Send a published event to every interested, greeted client (the publisher's sink)."""
        async with self._lock:
            if self.fast:
                self._broadcast_now(event)
            else:
                await self._sio.emit(
                    event.name, event.payload, to=topic_room(event.name), namespace=NAMESPACE
                )
            self._count(event)

    def deliver_now(self, event: Event) -> bool:
        """Send ``event`` at once (fast path, no greeting in its last step); False if not now."""
        if not self.fast or self._lock.locked():
            return False
        self._broadcast_now(event)
        self._count(event)
        return True

    def _count(self, event: Event) -> None:
        if not event.subscribers_only:
            self.delivered = event.seq
        self.emitted[event.name] = self.emitted.get(event.name, 0) + 1

    def _broadcast_now(self, event: Event) -> None:
        """Encode ``event`` once and hand it to every client, synchronously and in order.

        An idle websocket's sender (``DirectQueue.direct``) gets the event's frame written
        here; every other client gets it through its queue.
        """
        name = event.name
        # ``Client.wants``, inlined with ``_put``: this loop runs once per client per event.
        by_default = not event.subscribers_only and name in DEFAULT_EVENTS
        sockets = self._sio.eio.sockets
        pkt: FramedPacket | None = None  # encoded on first use: no clients, no encoding
        frame = b""
        for client in tuple(self._clients.values()):
            subscriptions = client.subscriptions
            if not client.ready or not (
                by_default if subscriptions is None else name in subscriptions
            ):
                continue
            if pkt is None:
                pkt = encode_event(name, event.payload)
                frame = pkt.frame
            try:
                queue = client.queue
                if queue is not None and (sender := queue.direct) is not None:
                    sender.write(frame)
                    continue
                socket = sockets.get(client.eio_sid)
                if socket is None or socket.closed or socket.closing:
                    continue
                socket.queue.put_nowait(pkt)  # never blocks; BoundedQueue enforces the caps
            except Exception:
                log.exception("socketio_send_failed", sid=client.sid, event_name=name)

    def _delivered_since(self, seq: int) -> list[Event] | None:
        """Return the delivered events after ``seq``, or None when some are no longer kept."""
        if seq >= self.delivered:
            return []
        missed = self._events.since(seq)
        if missed is None:
            return None
        return [e for e in missed if e.seq <= self.delivered]

    async def _greet(self, client: Client) -> None:
        """Send ``proxy:status`` to a new client, then let broadcasts reach it."""
        try:
            # python-socketio queues its CONNECT packet right after the connect handler
            # returns; our first message must follow it.
            for _ in range(100):
                if self._sio.manager.is_connected(client.sid, NAMESPACE):
                    break
                await asyncio.sleep(0)
            for _attempt in range(5):
                started_at = self._events.seq
                payload = await self._status.status()
                async with self._lock:
                    if self._clients.get(client.sid) is not client:
                        return  # disconnected meanwhile
                    base = min(started_at, self.delivered)
                    replay = self._delivered_since(base)
                    if replay is None:
                        continue  # the buffer overflowed during the reads: read again
                    payload.update(seq=base, instance=self._events.instance)
                    await self._send_one(client, "proxy:status", payload)
                    for event in replay:
                        if client.wants(event.name):
                            await self._send_one(client, event.name, event.payload)
                    client.ready = True
                    await self._join_rooms(client, client.events())
                    return
            log.warning("socketio_greeting_failed", sid=client.sid)
        except Exception:
            log.exception("socketio_greeting_failed", sid=client.sid)

    async def _join_rooms(self, client: Client, names: list[str]) -> None:
        if self.fast or not client.ready:
            return
        for name in names:
            await self._sio.enter_room(client.sid, topic_room(name), namespace=NAMESPACE)

    async def _leave_rooms(self, client: Client, names: list[str]) -> None:
        if self.fast or not client.ready:
            return
        for name in names:
            await self._sio.leave_room(client.sid, topic_room(name), namespace=NAMESPACE)

    # -- sync and subscriptions --------------------------------------------------------------

    async def sync(
        self, client: Client, since_seq: int | None, instance: str | None
    ) -> dict[str, Any]:
        """Answer ``sync``: the missed events, or a snapshot of every topic plus what follows."""
        if instance == self._events.instance and since_seq is not None:
            missed = self._delivered_since(since_seq) if since_seq <= self.delivered else None
            if missed is not None:
                return self._sync_answer(client, missed, None)
        for _attempt in range(5):
            started_at = self._events.seq
            state = await self._status.snapshot()
            base = min(started_at, self.delivered)
            replay = self._delivered_since(base)
            if replay is not None:
                for payload in state.values():
                    payload.update(seq=base, instance=self._events.instance)
                return self._sync_answer(client, replay, state)
        raise RuntimeError("event buffer overflowed while building a snapshot")

    def _sync_answer(
        self, client: Client, events: list[Event], state: dict[str, Any] | None
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "snapshot": state is not None,
            "instance": self._events.instance,
            "seq": self.delivered,  # where the client stands once it applied the answer
            "events": [
                {"event": e.name, "data": e.payload} for e in events if client.wants(e.name)
            ],
        }
        if state is not None:
            answer["state"] = {name: data for name, data in state.items() if client.wants(name)}
        return answer

    async def subscribe(self, client: Client, names: list[str], *, add: bool) -> list[str]:
        """Change a client's subscriptions; return its current list.

        The first ``subscribe`` replaces the implicit "every default event" with the names
        given; ``unsubscribe`` removes names from whatever the client receives now.
        """
        before = set(client.events())
        if add:
            base = set() if client.subscriptions is None else set(client.subscriptions)
            current = base | set(names)
        else:
            current = before - set(names)
        client.subscriptions = frozenset(current)
        await self._leave_rooms(client, sorted(before - current))
        await self._join_rooms(client, sorted(current - before))
        return client.events()

    # -- monitoring and shutdown -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Return connected clients by transport, events emitted per name, and the last seq."""
        by_transport = {"websocket": 0, "polling": 0}
        for client in tuple(self._clients.values()):
            by_transport[self.transport(client)] += 1
        return {
            "clients": {"total": len(self._clients), "byTransport": by_transport},
            "events": dict(sorted(self.emitted.items())),
            "emittedTotal": sum(self.emitted.values()),
            "lastSeq": self._events.seq,
            "deliveredSeq": self.delivered,
            "instance": self._events.instance,
            "mode": "fast" if self.fast else "supported",
            "queuedBytes": self._sio.engine.backlog.total,
            "heap": {
                "trims": self._sio.engine.trimmer.trims,
                "garbageCollections": self._sio.engine.trimmer.collections,
            },
        }

    @property
    def sio(self) -> SocketServer:
        return self._sio

    async def close(self) -> None:
        """Drop every connection (clients reconnect on their own) and stop background tasks.

        No Engine.IO CLOSE or Socket.IO DISCONNECT is sent: clients take those for "the server
        kicked me out" and do not reconnect, while a daemon restart should look like a dropped
        connection, which they recover from by themselves.
        """
        self._sio.engine.trimmer.close()
        for task in tuple(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1)
        sockets = list(self._sio.eio.sockets.values())
        reason = self._sio.eio.reason.SERVER_DISCONNECT
        try:
            async with asyncio.timeout(2):
                await asyncio.gather(
                    *(s.close(wait=False, abort=True, reason=reason) for s in sockets)
                )
            for socket in sockets:  # websockets: a close frame "going away", then hang up
                queue = socket.queue
                if isinstance(queue, DirectQueue) and queue.ws is not None:
                    queue.ws.hang_up()
            await self._sio.shutdown()
        except Exception:
            log.exception("socketio_shutdown_failed")
