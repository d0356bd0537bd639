"""Live events over Socket.IO: the hub that fans events out, and the namespace clients talk to.

The ``EventPublisher`` hands every event, in ``seq`` order and after the HTTP response of the
write that published it, to ``Hub.deliver``. The hub encodes the event once and puts the same
packet on every interested client's Engine.IO queue without awaiting anything, so an event
reaches all clients before the next one is looked at, and a client's own messages (the snapshot
on connect, ``sync`` answers) are ordered with the broadcasts around them. Idle websocket
clients get the packet written straight to their transport (see ``realtime_transport``).

Clients are greeted with ``proxy:status`` after every connect. A client only starts receiving
broadcasts once its greeting went out; events delivered while the greeting was being built are
replayed right after it, so no client misses or reorders an event around its connect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web
from socketio import packet as sio_packet

from apiserver.events import Event, EventPublisher
from apiserver.realtime_transport import (
    PACKET_DATA_FILTER,
    DirectQueue,
    FramedPacket,
    SocketServer,
)
from apiserver.security import AccessPolicy, bearer, same_origin
from apiserver.services.live_feeds import LIVE_EVENTS
from apiserver.services.status import StatusService
from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.realtime")

NAMESPACE = "/"
SEED_EVENTS = ("proxy:status", "credentials:updated", "providers:updated", "models:updated")
# What a client that never subscribed receives (the seed: every client gets every event).
DEFAULT_EVENTS = frozenset((*SEED_EVENTS, "settings:updated"))
# Names a client may subscribe to; ``proxy:log`` and the live feeds only go to subscribers.
KNOWN_EVENTS = frozenset((*DEFAULT_EVENTS, "proxy:log", *LIVE_EVENTS))
STATIC_DIR = Path(__file__).parent / "static"
TOKEN_REFUSAL = (
    "Missing or invalid API token: connect with auth: {token: '<API_TOKEN>'} "
    "or an 'Authorization: Bearer <API_TOKEN>' header"
)


@dataclass(slots=True)
class Client:
    """One connected Socket.IO client, as the hub sees it."""

    sid: str
    eio_sid: str
    subscriptions: frozenset[str] | None = None  # None: never subscribed → DEFAULT_EVENTS
    ready: bool = False  # greeted: receives broadcasts from now on

    def wants(self, name: str, subscribers_only: bool = False) -> bool:
        """Return True when this client receives events named ``name``."""
        if self.subscriptions is None:
            return not subscribers_only and name in DEFAULT_EVENTS
        return name in self.subscriptions

    def events(self) -> list[str]:
        """Return the client's current subscription list."""
        return sorted(DEFAULT_EVENTS if self.subscriptions is None else self.subscriptions)


def encode_event(name: str, payload: Mapping[str, Any]) -> FramedPacket:
    """Encode an EVENT packet of the default namespace once, for any number of clients."""
    pkt = sio_packet.Packet(sio_packet.EVENT, data=[name, payload], binary=False)
    text: str = pkt.encode()
    return FramedPacket(text)


class Hub:
    """Own the connected clients and deliver events to them, in order."""

    def __init__(
        self, sio: socketio.AsyncServer, events: EventPublisher, status: StatusService
    ) -> None:
        self._sio = sio
        self._events = events
        self._status = status
        self._clients: dict[str, Client] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0  # seq of the last broadcast event handed to the clients
        self.emitted: dict[str, int] = {}

    # -- clients ---------------------------------------------------------------------------

    def add(self, sid: str) -> Client:
        """Register a client that passed the connect checks; greet it once connected."""
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        client = self._clients[sid] = Client(sid, eio_sid)
        task = asyncio.get_running_loop().create_task(self._greet(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return client

    def remove(self, sid: str) -> None:
        self._clients.pop(sid, None)

    def get(self, sid: str) -> Client | None:
        return self._clients.get(sid)

    def transport(self, client: Client) -> str:
        """Return the client's current transport: websocket or polling."""
        socket = self._sio.eio.sockets.get(client.eio_sid)
        return "websocket" if socket is not None and socket.upgraded else "polling"

    # -- sending ---------------------------------------------------------------------------

    def _send(self, client: Client, pkt: FramedPacket) -> None:
        socket = self._sio.eio.sockets.get(client.eio_sid)
        if socket is None or socket.closed or socket.closing:
            return
        socket.queue.put_nowait(pkt)  # never blocks: the queue is unbounded

    async def deliver(self, event: Event) -> None:
        """Send a published event to every interested, greeted client (the publisher's sink)."""
        self.broadcast(event)

    def broadcast(self, event: Event) -> None:
        """Encode ``event`` once and hand it to every client, synchronously and in order."""
        name, only = event.name, event.subscribers_only
        pkt: FramedPacket | None = None  # encoded on first use: no clients, no encoding
        for client in tuple(self._clients.values()):
            if client.ready and client.wants(name, only):
                if pkt is None:
                    pkt = encode_event(name, event.payload)
                try:
                    self._send(client, pkt)
                except Exception:
                    log.exception("socketio_send_failed", sid=client.sid, event_name=name)
        if not only:
            self.delivered = event.seq
        self.emitted[name] = self.emitted.get(name, 0) + 1

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
                if self._clients.get(client.sid) is not client:
                    return  # disconnected meanwhile
                # From here on, no await: the greeting, the replay and ``ready`` are atomic
                # with respect to deliveries.
                base = min(started_at, self.delivered)
                replay = self._delivered_since(base)
                if replay is None:
                    continue  # the buffer overflowed during the reads: read again
                payload.update(seq=base, instance=self._events.instance)
                self._send(client, encode_event("proxy:status", payload))
                for event in replay:
                    if client.wants(event.name):
                        self._send(client, encode_event(event.name, event.payload))
                client.ready = True
                return
            log.warning("socketio_greeting_failed", sid=client.sid)
        except Exception:
            log.exception("socketio_greeting_failed", sid=client.sid)

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

    def subscribe(self, client: Client, names: list[str], *, add: bool) -> list[str]:
        """Change a client's subscriptions; return its current list.

        The first ``subscribe`` replaces the implicit "every default event" with the names
        given; ``unsubscribe`` removes names from whatever the client receives now.
        """
        if add:
            base = set() if client.subscriptions is None else set(client.subscriptions)
            current = base | set(names)
        else:
            current = set(client.events()) - set(names)
        client.subscriptions = frozenset(current)
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
        }

    @property
    def sio(self) -> socketio.AsyncServer:
        return self._sio

    async def close(self) -> None:
        """Drop every connection (clients reconnect on their own) and stop background tasks.

        No Engine.IO CLOSE or Socket.IO DISCONNECT is sent: clients take those for "the server
        kicked me out" and do not reconnect, while a daemon restart should look like a dropped
        connection, which they recover from by themselves.
        """
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


class EventsNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """The Socket.IO handlers of the default namespace (no per-client state here: see ``Hub``)."""

    def __init__(self, hub: Hub, policy: AccessPolicy) -> None:
        super().__init__(NAMESPACE)
        self._hub = hub
        self._policy = policy

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            token = bearer(environ.get("HTTP_AUTHORIZATION"))
        if not self._policy.token_valid(token):
            log.info("socketio_connect_refused", sid=sid, why="missing or invalid API token")
            raise socketio.exceptions.ConnectionRefusedError(
                TOKEN_REFUSAL, {"code": "unauthorized"}
            )
        client = self._hub.add(sid)
        log.info("socketio_client_connected", sid=sid, transport=self._hub.transport(client))

    async def on_disconnect(self, sid: str, reason: str | None = None) -> None:
        self._hub.remove(sid)
        log.info("socketio_client_disconnected", sid=sid, why=reason)

    async def on_sync(self, sid: str, data: Any = None) -> dict[str, Any]:
        client = self._hub.get(sid)
        if client is None:
            return _error("not_connected", "Connect before syncing")
        if not isinstance(data, dict):
            data = {}
        since = data.get("sinceSeq")
        instance = data.get("instance")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
            return _error("invalid_sync", "sinceSeq must be an integer")
        if instance is not None and not isinstance(instance, str):
            return _error("invalid_sync", "instance must be a string")
        try:
            return await self._hub.sync(client, since, instance)
        except Exception:
            log.exception("socketio_sync_failed", sid=sid)
            return _error("internal_error", "Sync failed; reconnect to get a fresh snapshot")

    async def on_subscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        return self._change_subscriptions(sid, data, add=True)

    async def on_unsubscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        return self._change_subscriptions(sid, data, add=False)

    def _change_subscriptions(self, sid: str, data: Any, *, add: bool) -> dict[str, Any]:
        client = self._hub.get(sid)
        if client is None:
            return _error("not_connected", "Connect before subscribing")
        names = data.get("events") if isinstance(data, dict) else data
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return {
                **_error("invalid_events", 'Send {"events": ["<event name>", ...]}'),
                "events": client.events(),
            }
        unknown = sorted(set(names) - KNOWN_EVENTS)
        if unknown:
            return {
                **_error(
                    "unknown_event",
                    f"Unknown events: {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(KNOWN_EVENTS))}",
                ),
                "events": client.events(),
            }
        return {"events": self._hub.subscribe(client, names, add=add)}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def cors_policy(policy: AccessPolicy) -> Any:
    """Return Engine.IO's origin check: the daemon's CORS policy, plus its own origin."""

    def allowed(origin: str | None, environ: Mapping[str, Any]) -> bool:
        if not origin:
            return False
        return same_origin(origin, environ.get("HTTP_HOST")) or policy.origin_allowed(origin)

    return allowed


def create_hub(events: EventPublisher, status: StatusService, policy: AccessPolicy) -> Hub:
    """Create the Socket.IO server and its hub, and subscribe the hub to ``events``."""
    engineio_logger = logging.getLogger("engineio")
    if PACKET_DATA_FILTER not in engineio_logger.filters:
        engineio_logger.addFilter(PACKET_DATA_FILTER)
    sio = SocketServer(
        async_mode="aiohttp",
        transports=["websocket", "polling"],
        cors_allowed_origins=cors_policy(policy),
        logger=logging.getLogger("socketio"),
        engineio_logger=engineio_logger,
        # Polling responses above 1 KiB are gzip/deflate-compressed when the client accepts it.
        http_compression=True,
        compression_threshold=1024,
    )
    hub = Hub(sio, events, status)
    sio.register_namespace(EventsNamespace(hub, policy))
    events.add_sink(hub.deliver)
    return hub


async def serve_test_page(_request: web.Request) -> web.FileResponse:
    """Serve the browser test page (connects from the daemon's own origin)."""
    return web.FileResponse(STATIC_DIR / "test-websocket.html")


def setup(app: web.Application, hub: Hub) -> None:
    """Mount Socket.IO at /socket.io/, the test page and the browser bundle."""
    hub.sio.attach(app, socketio_path="socket.io")
    app.router.add_get("/test-websocket.html", serve_test_page)
    app.router.add_static("/static", STATIC_DIR)

    async def shutdown(_app: web.Application) -> None:
        await hub.close()

    app.on_shutdown.append(shutdown)
