"""Qwen credentials: stored write-only; changes publish ``credentials:updated``."""

from __future__ import annotations

import time
from typing import Any

from apiserver.realtime.publisher import EventPublisher, iso_now
from apiserver.schemas import CredentialsIn
from qwenstack_core.store import Connection, Store
from qwenstack_core.store import credentials as rows


class CredentialService:
    """Save, describe and delete the Qwen browser credentials."""

    def __init__(self, store: Store, events: EventPublisher) -> None:
        self._store = store
        self._events = events

    async def status(self) -> dict[str, Any]:
        return await self._store.read(rows.status)

    async def save(self, new: CredentialsIn) -> dict[str, Any]:
        def save(conn: Connection) -> dict[str, Any]:
            rows.save(conn, new.token, new.cookies, new.expires_at)
            return rows.status(conn)

        status = await self._store.write(save)
        self._events.publish("credentials:updated", {"action": "updated", **status,
                                                      "timestamp": iso_now()})  # fmt: skip
        return status

    async def delete(self) -> int:
        deleted, created_at = await self._store.write(rows.delete)
        self._events.publish(
            "credentials:updated",
            {
                "action": "deleted",
                "hasCredentials": False,
                "isValid": False,
                "isExpired": False,
                "expiresAt": None,
                "createdAt": created_at,
                "updatedAt": int(time.time()) if deleted else None,
                "timestamp": iso_now(),
            },
        )
        return deleted
