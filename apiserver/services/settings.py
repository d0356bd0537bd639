"""Typed settings; writes publish ``settings:updated``."""

from __future__ import annotations

from typing import Any

from apiserver.realtime.publisher import EventPublisher
from apiserver.services.catalog import settings_payload
from qwenstack_core.errors import Invalid
from qwenstack_core.store import Connection, Store
from qwenstack_core.store import settings as rows


class SettingsService:
    """Read, change and reset settings.

    ``fixed`` settings mirror how the daemon is configured (``server.port`` is the port the
    provider-router is started on): they read as that value and refuse writes, so a client
    never reads a number that nothing uses.
    """

    def __init__(
        self, store: Store, events: EventPublisher, *, fixed: dict[str, Any] | None = None
    ) -> None:
        self._store = store
        self._events = events
        self._fixed = fixed or {}

    def _with_fixed(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._fixed.get(k, v) for k, v in values.items()}

    def _refuse_fixed(self, keys: list[str]) -> None:
        details = [
            {"field": key, "message": f"is read-only: it is {self._fixed[key]}, from the daemon's"
             " configuration (PROVIDER_ROUTER_PORT)"}
            for key in keys if key in self._fixed
        ]  # fmt: skip
        if details:
            raise Invalid(details)

    async def all(self, category: str | None) -> dict[str, Any]:
        return self._with_fixed(await self._store.read(lambda c: rows.all_values(c, category)))

    async def get(self, key: str) -> dict[str, Any]:
        found = await self._store.read(lambda c: rows.get(c, key))
        if key in self._fixed:
            found.update(value=self._fixed[key], isDefault=True, readOnly=True)
        return found

    async def _write(self, action: str, keys: list[str], fn: Any) -> Any:
        def work(conn: Connection) -> tuple[Any, dict[str, Any]]:
            return fn(conn), rows.all_values(conn)

        result, values = await self._store.write(work)
        self._events.publish(
            "settings:updated", settings_payload(action, keys, self._with_fixed(values))
        )
        return result

    async def put(self, key: str, value: Any) -> dict[str, Any]:
        rows.definition(key)  # 404 first
        self._refuse_fixed([key])
        result: dict[str, Any] = await self._write(
            "updated", [key], lambda c: rows.put(c, key, value)
        )
        return result

    async def put_many(self, values: dict[str, Any]) -> list[str]:
        self._refuse_fixed(list(values))
        result: list[str] = await self._write(
            "updated", list(values), lambda c: rows.put_many(c, values)
        )
        return result

    async def reset(self, key: str) -> dict[str, Any]:
        rows.definition(key)  # 404 before touching the database
        result: dict[str, Any] = await self._write("reset", [key], lambda c: rows.reset(c, key))
        if key in self._fixed:
            result["value"] = self._fixed[key]
        return result

    @staticmethod
    def requires_restart(keys: list[str]) -> bool:
        """Return True when any of ``keys`` only takes effect after a restart."""
        return any(rows.SETTINGS[k].requires_restart for k in keys)
