"""Pushed feeds for live views (the dashboard): request history as it is recorded, child stats.

Both go only to clients subscribed to them (like ``proxy:log``) and consume no ``seq``.

- ``history:updated`` ``{action: "recorded", activities, total, timestamp}``: the children write
  request history into the shared database from their own processes, so the daemon learns of
  it through SQLite's ``PRAGMA data_version`` on its own connection (it changes only when
  another connection committed): one cheap check per interval, and the newest requests are
  read and pushed only when it changed. ``activities`` has the shape of
  ``GET /api/activity/recent``.
- ``proxy:stats`` ``{providerRouter, qwenProxy, timestamp}`` with ``pid``, ``state``,
  ``uptime``, ``cpu`` and ``memory`` per child, while at least one child is up: CPU and memory
  change without a state transition, so no ``proxy:status`` would carry them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from apiserver.realtime.publisher import EventPublisher, iso_now
from apiserver.services.history import HistoryService
from apiserver.services.status import CHILD_KEYS, StatusService
from qwenstack_core.logsetup import get_logger
from qwenstack_core.store import Store
from qwenstack_core.store.schema import data_version

log = get_logger("apiserver.live_feeds")

HISTORY_EVENT = "history:updated"
STATS_EVENT = "proxy:stats"
LIVE_EVENTS = (HISTORY_EVENT, STATS_EVENT)
HISTORY_ITEMS = 20
STATS_FIELDS = ("pid", "state", "uptime", "cpu", "memory", "running")


class LiveFeeds:
    """Run the two periodic checks as background tasks of the application."""

    def __init__(
        self,
        store: Store,
        history: HistoryService,
        status: StatusService,
        events: EventPublisher,
        *,
        history_interval: float = 1.0,
        stats_interval: float = 2.0,
        audience: Callable[[str], bool] = lambda _name: True,
    ) -> None:
        self._store = store
        self._history = history
        self._status = status
        self._events = events
        self._history_interval = history_interval
        self._stats_interval = stats_interval
        # Whether any client receives events of a name: sampling for nobody is not done.
        self._audience = audience
        self._tasks: list[asyncio.Task[None]] = []
        self._last_history: list[dict[str, Any]] | None = None
        self._version: int | None = None

    async def start(self) -> None:
        """Take the history as it is now (not news), then start both feeds."""
        self._version = await self._store.read(data_version)
        self._last_history, _total = await self._history.recent_activity(HISTORY_ITEMS)
        self._tasks = [
            asyncio.create_task(
                self._every(self._history_interval, self.check_history), name="history-feed"
            ),
            asyncio.create_task(
                self._every(self._stats_interval, self.publish_stats), name="stats-feed"
            ),
        ]

    async def stop(self) -> None:
        """Stop both feeds."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _every(self, interval: float, check: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await check()
            except Exception:  # a storage fault now must not end the feed for good
                log.exception("live_feed_failed", feed=getattr(check, "__name__", "?"))

    async def check_history(self) -> None:
        """Publish the newest requests when another process committed to the database."""
        version = await self._store.read(data_version)
        if version == self._version:
            return
        self._version = version
        items, total = await self._history.recent_activity(HISTORY_ITEMS)
        if items == self._last_history:
            return
        self._last_history = items
        self._events.publish(
            HISTORY_EVENT,
            {"action": "recorded", "activities": items, "total": total, "timestamp": iso_now()},
            subscribers_only=True,
        )

    async def publish_stats(self) -> None:
        """Publish CPU, memory and uptime of the children while any of them is up.

        Only while a client is subscribed: each sample reads /proc for every process, work
        that would otherwise compete for the CPU with a child that is starting.
        """
        if not self._audience(STATS_EVENT):
            return
        children = self._status.children()
        if not any(children[key].get("pid") for key in CHILD_KEYS):
            return
        payload: dict[str, Any] = {
            key: {field: children[key].get(field) for field in STATS_FIELDS} for key in CHILD_KEYS
        }
        payload["timestamp"] = iso_now()
        self._events.publish(STATS_EVENT, payload, subscribers_only=True)
