"""The child stats feed samples only while a client listens to it."""

from __future__ import annotations

from typing import Any

from apiserver.realtime.publisher import EventPublisher
from apiserver.services.live_feeds import STATS_EVENT, LiveFeeds


class CountingStatus:
    """Stands in for the status service: counts the samples taken of the children."""

    def __init__(self) -> None:
        self.samples = 0

    def children(self) -> dict[str, dict[str, Any]]:
        self.samples += 1
        child = {"pid": 42, "state": "running", "uptime": 1, "cpu": 0.5, "memory": 1}
        return {"providerRouter": dict(child), "qwenProxy": dict(child)}


async def test_stats_are_sampled_only_while_someone_listens() -> None:
    listening: set[str] = set()
    status, events = CountingStatus(), EventPublisher()
    feeds = LiveFeeds(
        None,  # type: ignore[arg-type]  # the store and history are not used by this feed
        None,  # type: ignore[arg-type]
        status,  # type: ignore[arg-type]
        events,
        audience=listening.__contains__,
    )
    await feeds.publish_stats()
    assert status.samples == 0 and events.counts.get(STATS_EVENT) is None

    listening.add(STATS_EVENT)
    await feeds.publish_stats()
    assert status.samples == 1 and events.counts[STATS_EVENT] == 1
