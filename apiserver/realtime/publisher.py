"""The ordered event publisher: one sequence, one queue, one task that hands events to sinks.

Services call ``publish`` right after their write committed, so sequence numbers follow commit
order. An event published while an HTTP request is being handled is held until that request's
response has been handed to the transport (the seed: "the event goes out after the HTTP
response"); events are released strictly in sequence order. Whether the client reads its
response does not matter, so a client that never reads delays nobody's events. Sinks (the
Socket.IO hub) are awaited one event at a time; a failing sink is
logged and never affects the publisher or the REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.realtime")

# Longest wait for a write's response to be handed to the transport before its events go.
GATE_TIMEOUT_S = 5.0


class ResponseGate:
    """Holds the events published while a request is handled until its response is handed off.

    ``with ResponseGate() as gate:`` makes it the gate of the code inside (``RESPONSE_GATE``);
    ``release()`` (at the latest when the block ends) lets the held events go. A plain object,
    not a future: releasing it delivers the held events from the releasing call itself, where
    a future would schedule its callbacks for a later turn of the event loop.
    """

    __slots__ = ("released", "_on_release", "_waiter", "_token")

    def __init__(self) -> None:
        self.released = False
        self._on_release: Callable[[], None] | None = None  # the publisher holding events
        self._waiter: asyncio.Future[None] | None = None  # only when the delivery task waits
        self._token: contextvars.Token[ResponseGate | None] | None = None

    def hold(self, on_release: Callable[[], None]) -> None:
        """Call ``on_release`` once this gate is released (one publisher per gate)."""
        self._on_release = on_release

    def release(self) -> None:
        """The response is in the transport: let the events held behind it go (idempotent)."""
        if self.released:
            return
        self.released = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release()

    def wait(self) -> asyncio.Future[None]:
        """Return a future resolved when the gate is released."""
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
            if self.released:
                self._waiter.set_result(None)
        return self._waiter

    def __enter__(self) -> ResponseGate:
        self._token = RESPONSE_GATE.set(self)
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            RESPONSE_GATE.reset(self._token)
            self._token = None
        self.release()


def _always() -> bool:
    return True


# The response gate of the request being handled, if any (set by the request middleware).
RESPONSE_GATE: contextvars.ContextVar[ResponseGate | None] = contextvars.ContextVar(
    "response_gate", default=None
)


def iso_now() -> str:
    """Return the current time as an ISO-8601 string (events' ``timestamp``), in UTC to the ms.

    Formatted from ``time.time()`` directly: one per write, and cheaper than building an aware
    datetime and rewriting its offset.
    """
    global _formatted_second  # noqa: PLW0603 - a one-entry cache of the formatted second
    now = time.time()
    second, prefix = _formatted_second
    if int(now) != second:  # strftime once a second, not once per event
        second = int(now)
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _formatted_second = (second, prefix)
    return f"{prefix}{int(now * 1000) % 1000:03d}Z"


_formatted_second: tuple[int, str] = (-1, "")  # replaced whole: safe to read from any thread


@dataclass(frozen=True, slots=True)
class Event:
    """One published event; ``payload`` already carries ``seq`` and ``instance``."""

    name: str
    payload: dict[str, Any]
    seq: int
    # Only clients subscribed to a topic get it (``proxy:log``); None = every client.
    subscribers_only: bool = False


Sink = Callable[[Event], Awaitable[None]]
# Delivers one event at once and returns True, or does nothing and returns False (it cannot now).
SyncSink = Callable[[Event], bool]
# Returns True when someone who could also see the HTTP response would get an event now (a
# connected client); the response gate only matters to them.
Audience = Callable[[], bool]


class EventPublisher:
    """Own the event sequence and deliver events, in order, to the registered sinks."""

    def __init__(self, *, history: int = 500, instance: str | None = None) -> None:
        self.instance = instance or uuid.uuid4().hex[:12]
        self.seq = 0
        self.recent: deque[Event] = deque(maxlen=history)
        self.counts: dict[str, int] = {}
        # Events not yet handed to every sink: (event, its response gate, sinks already done,
        # loop time after which it goes out even if the gate is still closed).
        self._pending: deque[tuple[Event, ResponseGate | None, int, float]] = deque()
        # Wakes the delivery task by the deadline of the first event held behind a gate that
        # is never released (a stuck handler). One timer for many events: armed when none is,
        # never cancelled; the task, once woken, waits for each held event until its deadline.
        self._timer: asyncio.TimerHandle | None = None
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sinks: list[tuple[Sink, SyncSink | None]] = []
        self._audiences: list[Audience] = []
        self._task: asyncio.Task[None] | None = None
        # True while the delivery task holds the queue's head (waiting on its gate or its
        # sinks): nothing else may deliver then, or events would go out twice or out of order.
        self._draining = False

    def add_sink(
        self, sink: Sink, *, now: SyncSink | None = None, audience: Audience | None = None
    ) -> None:
        """Register a coroutine that receives every event, and its synchronous form, if any.

        With every sink's ``now`` able to take it, an event with no response to wait for and
        nothing queued before it is delivered inside ``publish``: a child's crash reaches the
        clients' sockets from the callback that learnt it, without waiting for the next turn
        of the event loop. ``audience`` tells whether the sink has anyone the response gate
        is for right now (without it: always); while no sink has, a write's events are
        delivered inside ``publish`` too, instead of being held for a response nobody
        compares them with.
        """
        self._sinks.append((sink, now))
        self._audiences.append(audience or _always)

    def publish(
        self, name: str, payload: dict[str, Any], *, subscribers_only: bool = False
    ) -> Event:
        """Number the event and queue it (synchronous: call it right after the commit)."""
        if subscribers_only:
            # Topic events for subscribers only (live logs) do not consume a sequence number:
            # clients that never subscribed must see no gaps.
            event = Event(name, {**payload, "seq": self.seq, "instance": self.instance},
                          self.seq, subscribers_only=True)  # fmt: skip
        else:
            self.seq += 1
            event = Event(name, {**payload, "seq": self.seq, "instance": self.instance}, self.seq)
            self.recent.append(event)
        self.counts[name] = self.counts.get(name, 0) + 1
        gate = RESPONSE_GATE.get()
        held = gate is not None and not gate.released and self._heard()
        done = 0
        if not self._pending and self._task is not None and not held:
            done = self._deliver_now(event)
            if done == len(self._sinks):
                return event
        if gate is None or gate.released:
            self._pending.append((event, None, done, 0.0))
            self._wakeup.set()
        else:
            # Delivered when the response is handed off (the gate calls back), not by waking
            # the delivery task now: it would only find the gate closed and wait on it.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + GATE_TIMEOUT_S
            self._pending.append((event, gate, done, deadline))
            gate.hold(self._gate_opened)
            if self._timer is None:
                self._timer = loop.call_at(deadline, self._timer_fired)
        self._idle.clear()
        return event

    def _heard(self) -> bool:
        """Return True when some sink has an audience for the events now."""
        for audience in self._audiences:  # noqa: SIM110 - a loop, not any(): no generator per event
            if audience():
                return True
        return False

    def _timer_fired(self) -> None:
        self._timer = None
        if self._pending:
            self._wakeup.set()

    def _gate_opened(self) -> None:
        """A response was handed off: deliver what it held back now, else wake the task."""
        if self._draining or self._task is None or not self._deliver_open():
            self._wakeup.set()

    def _deliver_open(self) -> bool:
        """Deliver the queued events whose gates are open, in order, to the synchronous sinks.

        Only while the delivery task is not at work on the queue (``_draining``); return False
        when the task must take over (a sink cannot take an event now), True otherwise. Events
        behind a closed gate stay queued: its release, or the timer, delivers them.
        """
        while self._pending:
            event, gate, done, deadline = self._pending[0]
            if gate is not None and not gate.released:
                return True
            done = self._deliver_now(event, done)
            if done < len(self._sinks):
                self._pending[0] = (event, gate, done, deadline)
                return False
            self._pending.popleft()
        self._idle.set()
        return True

    def _deliver_now(self, event: Event, first: int = 0) -> int:
        """Hand ``event`` to the synchronous sinks from ``first`` on; return how many have it."""
        for index in range(first, len(self._sinks)):
            now = self._sinks[index][1]
            if now is None:
                return index
            try:
                if not now(event):
                    return index
            except Exception:
                log.exception("event_delivery_failed", event_name=event.name, seq=event.seq)
        return len(self._sinks)

    def since(self, seq: int) -> list[Event] | None:
        """Return the broadcast events after ``seq``, or None when some are no longer kept."""
        if seq >= self.seq:
            return []
        if not self.recent or self.recent[0].seq > seq + 1:
            return None
        return [e for e in self.recent if e.seq > seq]

    async def start(self) -> None:
        """Start the delivery task."""
        self._task = asyncio.create_task(self._deliver_forever(), name="event-publisher")

    async def stop(self) -> None:
        """Deliver what is queued (briefly), then stop the delivery task."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                await self._idle.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _deliver_forever(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            event, gate, done, deadline = self._pending[0]
            self._draining = True
            try:
                if gate is not None and not gate.released:
                    # Released once the response is handed to the transport (not read by the
                    # client); bounded anyway, so a stuck handler cannot block the stream.
                    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
                    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                        await asyncio.wait_for(asyncio.shield(gate.wait()), timeout=remaining)
                for sink, _now in self._sinks[done:]:
                    try:
                        await sink(event)
                    except Exception:
                        log.exception("event_delivery_failed", event_name=event.name, seq=event.seq)
                # Removed only now: while it is being delivered, later events queue behind.
                self._pending.popleft()
            finally:
                self._draining = False
