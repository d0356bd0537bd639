"""Give memory freed by departed clients and sent bursts back to the system (glibc only).

A burst of events to many clients allocates and frees many buffers of tens of KiB (websocket
frames, the transports' buffers). glibc's allocator keeps the freed space of its heap unless
it is at the very top, so the process kept its peak size long after the clients left;
``malloc_trim(0)`` returns every free page of every arena to the kernel (measured: ~7 ms for
180 MiB of fragmented heap, next to nothing when there is nothing to give back). It runs in a
worker thread, ``delay`` seconds after a request, at most once per ``min_interval`` seconds,
and once more after the last request of a wave (clients leaving one after the other), so what
the wave freed is returned too; then again ``follow_ups`` seconds later, for what is freed
late (Engine.IO forgets closed sockets within a ping timeout, 20 s by default). Elsewhere
than on glibc it does nothing.

Departed clients also leave reference cycles behind (their tasks, sockets and requests: about
64 objects each), which an idle daemon's collector may not reach for a long time. So a trim
after clients left first runs a full ``gc.collect()`` on the loop, when it pays: once as many
clients left since the last collection as are still connected (a collection walks every
object of the clients that stay; measured ~40-70 ms after a thousand clients left, ~140 ms
with 500 still connected). What the collection frees goes back to pymalloc's arenas (an arena
empty as a whole is returned), or to the C heap and then the system with ``PYTHONMALLOC=malloc``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable

from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.realtime")


def load_malloc_trim() -> Callable[[int], int] | None:
    """Return glibc's ``malloc_trim``, or None when the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    result: Callable[[int], int] = trim
    return result


class HeapTrimmer:
    """Trim the C heap a little after clients leave or a big backlog drained, rate-limited."""

    def __init__(
        self,
        trim: Callable[[int], int] | None = None,
        *,
        delay: float = 0.2,
        min_interval: float = 1.0,
        follow_ups: tuple[float, ...] = (3.0, 10.0, 30.0),
        connected: Callable[[], int] = lambda: 0,
        collect: Callable[[], int] = gc.collect,
    ) -> None:
        self._trim = trim if trim is not None else load_malloc_trim()
        self._delay = delay
        self._min_interval = min_interval
        self._last = -min_interval
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[int] | None = None
        self._again = False  # requested while a trim was running: one more after it
        self._follow_ups = follow_ups
        self._pending_follow_ups: list[asyncio.TimerHandle] = []
        self.trims = 0
        self.collections = 0
        self._connected = connected  # how many clients are connected now
        self._collect = collect
        self._departed = 0  # clients that left since the last collection

    @property
    def available(self) -> bool:
        return self._trim is not None

    def request(self, departed: int = 0) -> None:
        """Ask for a trim (``departed``: clients that left); nearby requests make one trim."""
        self._departed += departed
        if self._trim is None or self._timer is not None:
            return
        for handle in self._pending_follow_ups:  # rescheduled after the coming trim
            handle.cancel()
        self._pending_follow_ups.clear()
        if self._running is not None:
            self._again = True
            return
        loop = asyncio.get_running_loop()
        wait = max(self._delay, self._last + self._min_interval - time.monotonic())
        self._timer = loop.call_later(wait, self._start)

    def _start(self, follow_up: bool = False) -> None:
        if not follow_up:
            self._timer = None
        if self._trim is None:
            return
        if self._running is not None:
            self._again = self._again or not follow_up  # a request is never lost
            return
        if not follow_up:
            loop = asyncio.get_running_loop()
            self._pending_follow_ups = [
                loop.call_later(after, self._start, True) for after in self._follow_ups
            ]
        self._last = time.monotonic()
        if self._departed and self._departed >= self._connected():
            self._collect_garbage()
        loop = asyncio.get_running_loop()
        self._running = loop.run_in_executor(None, self._trim, 0)
        self._running.add_done_callback(self._done)

    def _collect_garbage(self) -> None:
        departed, self._departed = self._departed, 0
        started = time.perf_counter()
        found = self._collect()
        self.collections += 1
        log.debug(
            "heap_garbage_collected",
            departed=departed,
            objects=found,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def _done(self, future: asyncio.Future[int]) -> None:
        self._running = None
        self.trims += 1
        if not future.cancelled() and future.exception() is not None:
            log.warning("heap_trim_failed", error=type(future.exception()).__name__)
        if self._again:
            self._again = False
            self.request()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for handle in self._pending_follow_ups:
            handle.cancel()
        self._pending_follow_ups.clear()
