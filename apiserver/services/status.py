"""The ``proxy:status`` payload, and the full state snapshot that Socket.IO clients sync from."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from apiserver.realtime.publisher import EventPublisher, iso_now
from apiserver.services.catalog import ModelService, ProviderService
from apiserver.services.credentials import CredentialService
from apiserver.services.settings import SettingsService
from supervisor.states import aggregate as aggregate_states

Row = dict[str, Any]

# The two supervised children, by their key in ``proxy:status``.
CHILD_KEYS = ("providerRouter", "qwenProxy")

# Per child: what the supervisor reports (seed fields first, then our additions).
ChildrenStatus = Callable[[], Mapping[str, Mapping[str, Any]]]

# The events after which the store part of ``proxy:status`` must be read again. Every write of
# providers, models (and links) or credentials publishes one of them (events.md).
CATALOG_EVENTS = ("providers:updated", "models:updated", "credentials:updated")

MESSAGES = {
    "running": "Proxy servers are running",
    "stopped": "Proxy servers are stopped",
    "starting": "Proxy servers are starting",
    "partial": "Some proxy servers are not running",
}


def stopped_child(port: int) -> Row:
    """Return the status of a child that is not running (and never ran in this daemon)."""
    return {
        "running": False,
        "port": port,
        "pid": None,
        "uptime": 0,
        "state": "stopped",
        "healthy": False,
        "restarts": 0,
        "startedAt": None,
        "lastExit": None,
        "reason": None,
        "cpu": 0,
        "memory": 0,
    }


def stopped_children(*, provider_router_port: int, qwen_proxy_port: int) -> ChildrenStatus:
    """Return a ``children_status`` reporting both children stopped (no supervisor wired)."""

    def children() -> Mapping[str, Mapping[str, Any]]:
        return {
            "providerRouter": stopped_child(provider_router_port),
            "qwenProxy": stopped_child(qwen_proxy_port),
        }

    return children


def aggregate(children: Mapping[str, Mapping[str, Any]]) -> str:
    """Return the aggregate ``status`` of the reported children (events.md)."""
    return aggregate_states(str(children[key].get("state", "stopped")) for key in CHILD_KEYS)


class StatusService:
    """Build ``proxy:status`` from the store and the children, and publish it in order."""

    def __init__(
        self,
        providers: ProviderService,
        models: ModelService,
        credentials: CredentialService,
        settings: SettingsService,
        events: EventPublisher,
        children_status: ChildrenStatus,
    ) -> None:
        self._providers = providers
        self._models = models
        self._credentials = credentials
        self._settings = settings
        self._events = events
        self._children_status = children_status
        self._message: str | None = None
        # The store part of the payload (providers, models, credentials), read once and kept
        # until one of CATALOG_EVENTS is published: a child transition then publishes without
        # touching the store.
        self._catalog: Row | None = None
        self._catalog_version: tuple[int, ...] | None = None
        # Publications build their payload with awaits in between; the lock (FIFO) keeps them
        # in call order, so the last proxy:status a client sees is the latest state.
        self._publish_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Row]] = set()

    def set_children_status(self, children_status: ChildrenStatus) -> None:
        """Report the children through ``children_status`` from now on (the supervisor)."""
        self._children_status = children_status

    def children(self) -> dict[str, Row]:
        """Return a snapshot of both children's status, taken now."""
        reported = self._children_status()
        return {key: dict(reported[key]) for key in CHILD_KEYS}

    def _version(self) -> tuple[int, ...]:
        counts = self._events.counts
        return tuple(counts.get(name, 0) for name in CATALOG_EVENTS)

    def _fresh_catalog(self) -> Row | None:
        """Return the kept store part if no catalog event was published since it was read."""
        if self._catalog is not None and self._catalog_version == self._version():
            return self._catalog
        return None

    async def _read_catalog(self) -> Row:
        if (catalog := self._fresh_catalog()) is not None:
            return catalog
        version = self._version()  # before the reads: a write during them reads again later
        providers = await self._providers.find(type_=None, enabled=None)
        models = await self._models.find(capability=None, provider=None)
        credentials = await self._credentials.status()
        self._catalog = {
            "providers": {
                "items": providers,
                "total": len(providers),
                "enabled": sum(1 for p in providers if p["enabled"]),
            },
            "models": {"items": models, "total": len(models)},
            "credentials": credentials,
        }
        self._catalog_version = version
        return self._catalog

    def _payload(self, catalog: Row, message: str | None, children: Mapping[str, Row]) -> Row:
        status = aggregate(children)
        credentials = catalog["credentials"]
        expires_at = credentials["expiresAt"]
        # Expiry moves with the clock, not with writes: computed at every build.
        expired = (
            credentials["hasCredentials"]
            and expires_at is not None
            and (expires_at <= int(time.time()))
        )
        return {
            "status": status,
            "providerRouter": dict(children["providerRouter"]),
            "qwenProxy": dict(children["qwenProxy"]),
            "providers": dict(catalog["providers"]),
            "models": dict(catalog["models"]),
            "credentials": {
                "valid": credentials["hasCredentials"] and not expired,
                "expiresAt": expires_at,
                "hasCredentials": credentials["hasCredentials"],
                "isExpired": bool(expired),
            },
            "message": message or self._message or MESSAGES[status],
            "timestamp": iso_now(),
        }

    async def status(
        self, message: str | None = None, children: Mapping[str, Row] | None = None
    ) -> Row:
        """Return the ``proxy:status`` payload (without ``seq``/``instance``)."""
        children = children if children is not None else self.children()
        return self._payload(await self._read_catalog(), message, children)

    async def publish_status(
        self, message: str | None = None, children: Mapping[str, Row] | None = None
    ) -> Row:
        """Publish ``proxy:status`` to every client (call it on every child transition)."""
        if children is None:
            children = self.children()  # the state at the call, not when the reads finish
        async with self._publish_lock:
            payload = await self.status(message, children)
            if message:
                self._message = message
            self._events.publish("proxy:status", payload)
            return payload

    def notify(self, message: str | None = None) -> None:
        """Schedule ``publish_status`` from synchronous code (a supervisor listener).

        The children's status is taken now, so each call reports its own transition.
        """
        self.publish_soon(self.children(), message)

    def publish_soon(self, children: Mapping[str, Row], message: str | None = None) -> None:
        """Publish ``proxy:status`` for ``children`` now if possible, else right after the others.

        The fast path of a child transition: with the store part kept and no publication in
        progress, the event is numbered and queued before this returns (no await, no store
        read). Otherwise it queues behind the publications in progress, in call order.
        """
        catalog = self._fresh_catalog()
        if catalog is not None and not self._publish_lock.locked() and not self._tasks:
            payload = self._payload(catalog, message, children)
            if message:
                self._message = message
            self._events.publish("proxy:status", payload)
            return
        task = asyncio.get_running_loop().create_task(self.publish_status(message, dict(children)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let scheduled publications finish (briefly)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1)

    async def snapshot(self) -> Row:
        """Return the current state of every topic (the ``sync`` fallback)."""
        status = await self.status()
        credentials = await self._credentials.status()
        settings = await self._settings.all(None)
        return {
            "proxy:status": status,
            "providers:updated": {
                "action": "snapshot",
                "providerId": None,
                **status["providers"],
                "timestamp": status["timestamp"],
            },
            "models:updated": {
                "action": "snapshot",
                "modelId": None,
                **status["models"],
                "timestamp": status["timestamp"],
            },
            "credentials:updated": {
                "action": "snapshot",
                **credentials,
                "timestamp": status["timestamp"],
            },
            "settings:updated": {
                "action": "snapshot",
                "keys": sorted(settings),
                "settings": settings,
                "timestamp": status["timestamp"],
            },
        }
