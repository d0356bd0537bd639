"""Engine.IO's service task, as the daemon runs it: it holds no departed client's socket."""

from __future__ import annotations

import asyncio
import gc
import weakref

import engineio

from apiserver.realtime.server import EngineServer
from apiserver.realtime.transport import Limits


class FakeSocket:
    """What the service task looks at in a socket: its sid, state and ping check."""

    def __init__(self, sid: str, checked: asyncio.Queue[str]) -> None:
        self.sid = sid
        self.closed = False
        self.closing = False
        self._checked = checked

    async def check_ping_timeout(self) -> bool:
        self._checked.put_nowait(self.sid)
        return True


def engine(ping_timeout: float) -> EngineServer:
    return EngineServer(fast=True, limits=Limits(), async_mode="aiohttp", ping_timeout=ping_timeout)


async def test_a_socket_gone_from_the_table_is_not_held_by_the_service_task() -> None:
    assert callable(getattr(engineio.AsyncServer, "_service_task", None))  # what we replace
    eio = engine(ping_timeout=2)
    checked: asyncio.Queue[str] = asyncio.Queue()
    first, second = FakeSocket("a", checked), FakeSocket("b", checked)
    eio.sockets.update(a=first, b=second)
    task = asyncio.create_task(eio._service_task())
    assert await asyncio.wait_for(checked.get(), 5) == "a"  # a pass over a and b has begun

    gone = weakref.ref(first)
    del eio.sockets["a"], first  # what Engine.IO does when a websocket client left
    gc.collect()
    # The stock task walks a copy of the table for a whole ping timeout: it would hold it.
    assert gone() is None

    assert await asyncio.wait_for(checked.get(), 5) == "b"  # the pass goes on
    eio.service_task_event.set()  # what shutdown() does
    await asyncio.wait_for(task, 5)


async def test_closed_sockets_are_dropped_and_open_ones_checked() -> None:
    eio = engine(ping_timeout=0.2)
    checked: asyncio.Queue[str] = asyncio.Queue()
    closed, open_ = FakeSocket("closed", checked), FakeSocket("open", checked)
    closed.closed = True
    eio.sockets.update(closed=closed, open=open_)
    task = asyncio.create_task(eio._service_task())
    assert await asyncio.wait_for(checked.get(), 5) == "open"
    assert await asyncio.wait_for(checked.get(), 5) == "open"  # next pass: checked again
    assert "closed" not in eio.sockets and "open" in eio.sockets
    task.cancel()
    await asyncio.wait_for(task, 5)  # ends quietly, as the stock task does
