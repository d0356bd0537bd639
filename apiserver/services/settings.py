"""Typed settings; writes publish ``settings:updated``."""

from __future__ import annotations

from typing import Any

from apiserver.events import EventPublisher
from apiserver.services.catalog import settings_payload
from qwenstack_core.store import Connection, Store
from qwenstack_core.store import settings as rows


class SettingsService:
    """Read, change and reset settings."""

    def __init__(self, store: Store, events: EventPublisher) -> None:
        self._store = store
        self._events = events

    async def all(self, category: str | None) -> dict[str, Any]:
        return await self._store.read(lambda c: rows.all_values(c, category))

    async def get(self, key: str) -> dict[str, Any]:
        return await self._store.read(lambda c: rows.get(c, key))

    async def _write(self, action: str, keys: list[str], fn: Any) -> Any:
        def work(conn: Connection) -> tuple[Any, dict[str, Any]]:
            return fn(conn), rows.all_values(conn)

        result, values = await self._store.write(work)
        self._events.publish("settings:updated", settings_payload(action, keys, values))
        return result

    async def put(self, key: str, value: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._write(
            "updated", [key], lambda c: rows.put(c, key, value)
        )
        return result

    async def put_many(self, values: dict[str, Any]) -> list[str]:
        result: list[str] = await self._write(
            "updated", list(values), lambda c: rows.put_many(c, values)
        )
        return result

    async def reset(self, key: str) -> dict[str, Any]:
        rows.definition(key)  # 404 before touching the database
        result: dict[str, Any] = await self._write("reset", [key], lambda c: rows.reset(c, key))
        return result

    @staticmethod
    def requires_restart(keys: list[str]) -> bool:
        """Return True when any of ``keys`` only takes effect after a restart."""
        return any(rows.SETTINGS[k].requires_restart for k in keys)
