"""A single database thread that hands results back to the event loop in batches.

``loop.run_in_executor`` wakes the loop once per job through concurrent.futures; under load
the store thread finishes several jobs per wake-up, so this worker posts every finished
result of a batch with one ``call_soon_threadsafe``, and none at all while the loop has yet to
take the results of an earlier batch: those are handed over together. Same contract as a
one-worker executor: jobs run one at a time, in submission order.

Handing a job to an idle thread wakes it, and Linux lets a woken thread preempt the one that
woke it: the event loop, on its own CPU, in the middle of a request and holding the GIL. The
store thread then found the GIL taken and slept again, two context switches per job for
nothing. With ``yield_on_wake`` the thread waits for jobs as a ``SCHED_BATCH`` thread (a
batch thread's wake-up never preempts) and does its work as a normal thread again.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[[], Any], asyncio.Future[Any], Callable[[], None] | None]
_Done = tuple[asyncio.Future[Any], Any, BaseException | None, Callable[[], None] | None]
# What running one job gave: its value, or the exception it raised.
Outcome = tuple[Any, BaseException | None]
# Runs the callables of one batch, in order, and returns one outcome per callable.
BatchRunner = Callable[[list[Callable[[], Any]]], list[Outcome]]

_WAIT_POLICY = getattr(os, "SCHED_BATCH", None)  # Linux only
_WORK_POLICY = getattr(os, "SCHED_OTHER", None)


class DatabaseThread:
    """Run callables on one dedicated thread; await their results from the loop."""

    def __init__(
        self,
        name: str = "store",
        *,
        yield_on_wake: bool = False,
        run_batch: BatchRunner | None = None,
    ) -> None:
        # The owner may run a batch's jobs its own way (the Store commits consecutive writes
        # together); by default each job runs alone.
        self._run_batch = run_batch or run_each
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._name = name
        self._yield_on_wake = yield_on_wake and _WAIT_POLICY is not None
        self.batches = 0  # batches started so far (read on the database thread)
        # Finished jobs the loop has not taken yet, and whether a hand-over is scheduled.
        self._done: list[_Done] = []
        self._done_lock = threading.Lock()
        self._delivery_scheduled = False

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        assert self._loop is not None  # noqa: S101 - set together with the thread
        return self._loop

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the database thread and return its result."""
        return await self.submit(fn)

    def submit(
        self, fn: Callable[[], T], on_done: Callable[[], None] | None = None
    ) -> asyncio.Future[T]:
        """Queue ``fn`` for the database thread; the returned future gets its result.

        A plain future, not a task: awaiting it costs no extra event-loop step. A queued job
        runs even when its future is cancelled; ``on_done`` is then still called, on the loop,
        once the job has really ended (what ``asyncio.shield`` gave, one loop step cheaper).
        """
        loop = self._ensure_started()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, fut, on_done))
        return fut

    async def stop(self) -> None:
        """Finish queued jobs, then end the thread."""
        if self._thread is None:
            return
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _work(self) -> None:
        loop = self._loop
        assert loop is not None  # noqa: S101
        if self._yield_on_wake and os.sched_getscheduler(0) != _WORK_POLICY:
            self._yield_on_wake = False  # started with another policy on purpose: keep it
        stopping = False
        while not stopping:
            job = self._next_job()
            batch: list[_Job] = []
            while job is not None:
                batch.append(job)
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
            else:
                stopping = True
            self.batches += 1
            try:
                outcomes = self._run_batch([fn for fn, _fut, _on_done in batch])
            except BaseException as exc:  # a fault of the runner itself: every job learns it
                outcomes = [(None, exc)] * len(batch)
            done: list[_Done] = [
                (fut, value, exc, on_done)
                for (_fn, fut, on_done), (value, exc) in zip(batch, outcomes, strict=True)
            ]
            if done:
                with self._done_lock:
                    self._done.extend(done)
                    schedule = not self._delivery_scheduled
                    self._delivery_scheduled = True
                if schedule:  # else the hand-over already scheduled takes these too
                    loop.call_soon_threadsafe(self._deliver)

    def _next_job(self) -> _Job | None:
        """Take the next job, waiting for one as a batch thread with ``yield_on_wake``."""
        try:
            return self._jobs.get_nowait()
        except queue.Empty:
            if not self._yield_on_wake:
                return self._jobs.get()
        try:
            _set_policy(_WAIT_POLICY)
        except OSError:  # not allowed here (a sandbox): wait as a normal thread from now on
            self._yield_on_wake = False
            return self._jobs.get()
        try:
            return self._jobs.get()
        finally:
            _set_policy(_WORK_POLICY)

    def _deliver(self) -> None:
        with self._done_lock:
            done, self._done = self._done, []
            self._delivery_scheduled = False
        for fut, value, exc, on_done in done:
            if on_done is not None:
                on_done()
            if fut.cancelled():
                continue
            if exc is None:
                fut.set_result(value)
            else:
                fut.set_exception(exc)


def run_one(fn: Callable[[], Any]) -> Outcome:
    """Run ``fn``; return its value, or the exception it raised (handed to whoever awaits it)."""
    try:
        return fn(), None
    except BaseException as exc:
        return None, exc


def run_each(jobs: list[Callable[[], Any]]) -> list[Outcome]:
    """Run ``jobs`` one after the other (the default batch runner)."""
    return [run_one(fn) for fn in jobs]


def _set_policy(policy: int | None) -> None:
    """Set the scheduling policy of the calling thread (pid 0: this thread only, on Linux)."""
    if policy is not None:
        os.sched_setscheduler(0, policy, os.sched_param(0))
