"""Request history, written off the request path: queued in memory, inserted in batches.

A request only appends to a list. One background task inserts what has accumulated in one
transaction on the history store's own thread (a slow disk delays the batch, never a
response); another prunes by the retention settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from qwenstack_core.logsetup import get_logger
from qwenstack_core.store import Store
from qwenstack_core.store.history_writes import Exchange, insert_exchanges, prune

log = get_logger("provider_router.history")

MAX_PENDING = 50_000  # beyond this (the disk stalled for long) the oldest entries are dropped

Retention = Callable[[], tuple[int, int]]  # (max rows, max age in days)


class HistoryRecorder:
    """Queue exchanges and write them in batches; prune in the background."""

    def __init__(
        self,
        store: Store,
        retention: Retention,
        *,
        flush_interval: float,
        prune_interval: float,
    ) -> None:
        self._store = store
        self._retention = retention
        self._flush_interval = flush_interval
        self._prune_interval = prune_interval
        self._pending: list[Exchange] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0
        self.written = 0

    def record(self, exchange: Exchange) -> None:
        """Queue one exchange (never blocks, never touches the disk)."""
        pending = self._pending
        pending.append(exchange)
        if len(pending) > MAX_PENDING:
            overflow = len(pending) - MAX_PENDING
            del pending[:overflow]
            self.dropped += overflow
        if not self._wake.is_set():
            self._wake.set()

    def start(self) -> None:
        """Start the writer and pruner tasks."""
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="history-writer"),
            asyncio.create_task(self._prune_loop(), name="history-pruner"),
        ]

    async def close(self) -> None:
        """Stop the tasks, then write whatever is still queued."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()

    async def flush(self) -> None:
        """Write every queued exchange now."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            written = await self._store.write(lambda c: insert_exchanges(c, batch))
            self.written += written
            log.debug("history_written", rows=written)
        except Exception as exc:
            # The batch is lost rather than retried forever; the router keeps serving.
            log.warning("history_write_failed", rows=len(batch), error_class=type(exc).__name__)

    async def prune_now(self) -> int:
        """Apply the retention settings once; return how many requests were deleted."""
        max_rows, max_age_days = self._retention()
        now = int(time.time() * 1000)
        deleted = await self._store.write(
            lambda c: prune(c, max_rows=max_rows, max_age_days=max_age_days, now_ms=now)
        )
        if deleted:
            log.info(
                "history_pruned", deleted=deleted, max_rows=max_rows, max_age_days=max_age_days
            )
        return deleted

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            # Let a batch gather: one transaction per interval instead of one per request.
            await asyncio.sleep(self._flush_interval)
            self._wake.clear()
            await self.flush()

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.prune_now()
            except Exception as exc:
                log.warning("history_prune_failed", error_class=type(exc).__name__)
            await asyncio.sleep(self._prune_interval)
