"""The event publisher's order, its response gate and its synchronous fast path."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from apiserver.realtime import publisher
from apiserver.realtime.publisher import RESPONSE_GATE, Event, EventPublisher, ResponseGate


class RecordingSink:
    """A sink that records what it got and how (inside ``publish`` or from the task)."""

    def __init__(self, *, can_now: bool = True) -> None:
        self.can_now = can_now
        self.got: list[tuple[int, str]] = []

    async def deliver(self, event: Event) -> None:
        self.got.append((event.seq, "task"))

    def now(self, event: Event) -> bool:
        if not self.can_now:
            return False
        self.got.append((event.seq, "now"))
        return True


@contextlib.asynccontextmanager
async def running(*sinks: RecordingSink) -> AsyncIterator[EventPublisher]:
    """A started publisher delivering to ``sinks`` (each with its synchronous form)."""
    events = EventPublisher()
    for sink in sinks:
        events.add_sink(sink.deliver, now=sink.now)
    await events.start()
    try:
        yield events
    finally:
        await events.stop()


async def settled(events: EventPublisher) -> None:
    """Wait until the delivery task has handed everything queued to the sinks."""
    async with asyncio.timeout(5):
        await events._idle.wait()


async def test_an_event_reaches_synchronous_sinks_inside_publish() -> None:
    first, second = RecordingSink(), RecordingSink()
    async with running(first, second) as events:
        events.publish("proxy:status", {"n": 1})
        # Before any await: delivered from the publishing call itself.
        assert first.got == [(1, "now")] and second.got == [(1, "now")]


async def test_a_sink_without_a_synchronous_form_gets_it_from_the_task_in_order() -> None:
    events = EventPublisher()
    fast, slow = RecordingSink(), RecordingSink()
    events.add_sink(fast.deliver, now=fast.now)
    events.add_sink(slow.deliver)  # no synchronous form
    await events.start()
    try:
        for n in range(3):
            events.publish("proxy:status", {"n": n})
        await settled(events)
        # The fast sink took the first one at once; the rest queued behind it, in order, and
        # nothing was delivered twice.
        assert [seq for seq, _ in fast.got] == [1, 2, 3]
        assert fast.got[0] == (1, "now")
        assert slow.got == [(1, "task"), (2, "task"), (3, "task")]
    finally:
        await events.stop()


async def test_a_sink_that_cannot_take_it_now_gets_it_from_the_task() -> None:
    sink = RecordingSink(can_now=False)
    async with running(sink) as events:
        events.publish("proxy:status", {})
        assert sink.got == []
        sink.can_now = True
        events.publish("proxy:status", {})  # queued behind the first, not ahead of it
        await settled(events)
        assert sink.got == [(1, "task"), (2, "task")]


async def test_an_event_of_a_request_waits_for_its_response_and_later_ones_wait_too() -> None:
    sink = RecordingSink()
    async with running(sink) as events:
        with ResponseGate() as gate:
            events.publish("providers:updated", {})
            # Published outside the request, but after its event: must not overtake it.
            await asyncio.create_task(publish_outside(events))
            await asyncio.sleep(0.01)
            assert sink.got == []  # the response has not been handed over yet
            gate.release()
        await settled(events)
        assert sink.got == [(1, "task"), (2, "task")]


async def publish_outside(events: EventPublisher) -> None:
    RESPONSE_GATE.set(None)  # this task's own context: no response to wait for
    events.publish("proxy:status", {})


async def test_before_start_events_wait_for_the_task() -> None:
    events = EventPublisher()
    sink = RecordingSink()
    events.add_sink(sink.deliver, now=sink.now)
    events.publish("proxy:status", {})
    assert sink.got == []
    await events.start()
    try:
        await settled(events)
        assert sink.got == [(1, "task")]
    finally:
        await events.stop()


async def test_events_held_for_a_response_go_out_when_it_is_handed_off() -> None:
    sink = RecordingSink()
    async with running(sink) as events:
        await asyncio.sleep(0)  # one loop turn: the new delivery task reaches its wait for work
        with ResponseGate() as gate:
            events.publish("models:updated", {})
            events.publish("models:updated", {})
            await asyncio.sleep(0.01)
            assert sink.got == []  # held: the response is not in the transport yet
            gate.release()
        await settled(events)
        # Delivered from the hand-off itself (no wake-up of the delivery task), in order, once.
        assert sink.got == [(1, "now"), (2, "now")]


async def test_without_an_audience_events_of_a_request_go_out_at_once_and_in_order() -> None:
    sink, silent = RecordingSink(), RecordingSink()
    audience = {"clients": 0}
    events = EventPublisher()
    events.add_sink(sink.deliver, now=sink.now, audience=lambda: audience["clients"] > 0)
    events.add_sink(silent.deliver, now=silent.now, audience=lambda: False)
    await events.start()
    try:
        with ResponseGate():
            events.publish("models:updated", {})  # nobody to hold it for: delivered now
            assert sink.got == [(1, "now")] and silent.got == [(1, "now")]
            audience["clients"] = 1  # a client connects before the response is handed off
            events.publish("models:updated", {})
            events.publish("models:updated", {})
            audience["clients"] = 0
            events.publish("models:updated", {})  # queued behind the held ones, not before
            await asyncio.sleep(0.01)
            assert sink.got == [(1, "now")]
        await settled(events)
        assert [seq for seq, _ in sink.got] == [1, 2, 3, 4]
        assert [seq for seq, _ in silent.got] == [1, 2, 3, 4]
    finally:
        await events.stop()


async def test_an_event_held_by_a_response_that_never_comes_goes_out_by_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(publisher, "GATE_TIMEOUT_S", 0.05)
    sink = RecordingSink()
    async with running(sink) as events:
        with ResponseGate() as first:
            events.publish("models:updated", {})  # arms the one timer
            first.release()
        assert sink.got == [(1, "now")]
        await asyncio.sleep(0.03)
        stuck = ResponseGate()
        with stuck:
            events.publish("models:updated", {})  # the timer armed for the first covers it
            await settled(events)
            assert not stuck.released  # went out although its response never did
        assert sink.got == [(1, "now"), (2, "task")]
