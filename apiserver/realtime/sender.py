"""The fast path's writer of one websocket: frames go from the shared bytes to the socket.

A connection's transport writes nothing once the websocket serves (see ``DirectWebSocket``);
from then on its frames are written here, with ``os.write`` on the transport's socket:

- an event reaching an idle websocket is written at once, by the hub, from the frame every
  client shares (``DirectQueue.direct`` names this sender while it is idle);
- what the kernel does not take stays a view of that shared frame (``rest``), never a copy:
  a client that stopped reading holds references to frames, not bytes of its own;
- while a rest or queued packets wait, a duplicate of the socket is watched for
  writability, and each time it is writable the rest and then the queued packets are
  written, up to the kernel's room or 16 packets, whichever ends first (other clients'
  turns come between);
- pings and pongs (``urgent``) go out right after the frame being written, ahead of the
  events queued: a client catching up with a backlog answers Engine.IO's ping in time and
  is not taken for dead; how far behind it may fall is the backlog caps' business.

Per client and event this is a method call and a system call: no task, future, flow
control or epoll change per frame, which is where a burst to 1000 clients spent its time
when every frame went through asyncio's transport and aiohttp's drain.

Every write first asks the transport whether it is closing: a transport closes its socket a
loop turn after it says so, and a descriptor number closed there may be reused at once by
another connection or file, which must never get a byte meant for this client.

asyncio lets no one but the transport watch the transport's own file descriptor
(``add_writer`` refuses it), so the watch is on a duplicate, made while the client is behind
and closed when it caught up or the connection ends (``stop``): the socket closes only
when its last descriptor does. The duplicate is a bare descriptor, not a socket object:
asyncio formats a socket object's repr (a getsockname call) while looking it up, which made
one watch cycle (duplicate, add, remove, close) cost 15 µs instead of 7.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from apiserver.realtime.transport import frame_of

if TYPE_CHECKING:  # only a type here; importing it would be circular
    from apiserver.realtime.transport import DirectQueue


class FrameSender:
    """Write one websocket's frames in order, from shared bytes, without copying them."""

    __slots__ = (
        "queue", "transport", "fd", "rest", "urgent", "watch", "stopped",
        "_loop", "_on_close", "_idle",
    )  # fmt: skip

    def __init__(
        self,
        queue: DirectQueue,
        transport: asyncio.Transport,
        fd: int,
        on_close: Callable[[], None],
    ) -> None:
        """Write to ``fd``, the socket of ``transport``, which must hold nothing from now on.

        ``on_close`` is called when the queue hands out its stop sentinel (Engine.IO closed
        the socket, or the client was dropped).
        """
        self.queue = queue
        self.transport = transport
        self.fd = fd
        self.rest: memoryview | None = None  # the unwritten part of the frame being written
        self.urgent: list[bytes] = []  # pings and pongs, written before the queued packets
        self.watch: int | None = None  # a duplicate of ``fd``, polled while behind
        self.stopped = False
        self._loop = asyncio.get_running_loop()
        self._on_close = on_close
        self._idle: asyncio.Future[None] | None = None  # ``wait_idle``'s
        queue.sender = self

    def write(self, frame: bytes | memoryview) -> None:
        """Write ``frame`` now (the sender is idle: nothing queued, nothing half-written)."""
        if self.transport.is_closing():
            self.stop()
            return
        written = self._send(frame)
        if written is not None and written < len(frame):
            self.queue.direct = None  # whatever comes next queues behind the rest
            self._keep_rest(frame, written)

    def pump(self) -> None:
        """Write the rest, then queued packets, while the kernel takes them (16 at most)."""
        if self.stopped:
            return
        if self.transport.is_closing():
            self.stop()
            return
        queue = self.queue
        queue.new_batch()
        frame: bytes | memoryview | None = self.rest
        while True:
            if frame is None and self.urgent:
                frame = self.urgent.pop(0)
            elif frame is None:
                try:
                    pkt = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                queue.task_done()  # Engine.IO's close(wait=True) joins the queue
                if pkt is None:  # the stop sentinel
                    self.rest = None
                    self.stop()
                    self._on_close()
                    return
                frame = frame_of(pkt)
            written = self._send(frame)
            if written is None:
                return
            if written < len(frame):
                self._keep_rest(frame, written)
                return
            frame = None
        self.rest = None
        if queue.empty() and not self.urgent:
            self._unwatch()
            self._went_idle()
        else:  # 16 packets written: the rest after other clients' turns
            self._watch()
        queue.set_buffered(0)

    def _send(self, frame: bytes | memoryview) -> int | None:
        """Write what the kernel takes of ``frame`` now; None once the socket failed."""
        try:
            return os.write(self.fd, frame)
        except BlockingIOError:
            return 0
        except OSError:  # reset or gone: the reader ends the connection
            self.stop()
            self.transport.abort()
            return None

    def _keep_rest(self, frame: bytes | memoryview, written: int) -> None:
        """Keep the unwritten part of ``frame`` (a view) and watch for room to write it."""
        self.rest = memoryview(frame)[written:]
        self._watch()
        self.queue.set_buffered(len(self.rest))  # may drop the client (stop)

    def send_urgent(self, frame: bytes) -> None:
        """Write a ping or pong now if idle, else right after the frame being written."""
        if self.stopped:
            return
        if self.queue.direct is self:
            self.write(frame)
        else:
            self.urgent.append(frame)
            self._watch()

    def _went_idle(self) -> None:
        idle = self._idle
        if idle is not None and not idle.done():
            idle.set_result(None)
        queue = self.queue
        if not self.stopped and queue.dropped is None and not queue.forgotten:
            queue.direct = self

    async def wait_idle(self) -> None:
        """Return once everything queued was written (or the sender stopped)."""
        if self.stopped or (self.rest is None and not self.urgent and self.queue.empty()):
            return
        if self._idle is None or self._idle.done():
            self._idle = self._loop.create_future()
        await self._idle

    def start(self) -> None:
        """Write what was queued before serving began, and go idle."""
        self.pump()

    def stop(self) -> None:
        """Write nothing more: no direct writes, no watch (``rest`` stays for ``refuse``)."""
        self.stopped = True
        if self.queue.direct is self:
            self.queue.direct = None
        self._unwatch()
        idle = self._idle
        if idle is not None and not idle.done():
            idle.set_result(None)

    def _watch(self) -> None:
        if self.watch is not None or self.stopped:
            return
        if self.transport.is_closing():  # ``fd`` may already be another file's
            self.stop()
            return
        try:
            watch = os.dup(self.fd)
        except OSError:  # out of descriptors
            self.stop()
            self.transport.abort()
            return
        self.watch = watch
        self._loop.add_writer(watch, self.pump)

    def _unwatch(self) -> None:
        watch = self.watch
        if watch is not None:
            self.watch = None
            self._loop.remove_writer(watch)  # before closing it: epoll would keep reporting
            os.close(watch)
