"""Run the real provider-router as a process, and seed its store directly."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwenstack_core.store import Store
from qwenstack_core.store import providers as provider_rows
from qwenstack_core.store import settings as setting_rows
from tests.support.logged_process import ChildProgram


async def make_store(path: Path, apply: Callable[[sqlite3.Connection], Any] | None = None) -> None:
    """Create (migrate, seed) the database at ``path``, disable the seeded providers, apply."""

    def prepare(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE providers SET enabled = 0")
        if apply is not None:
            apply(conn)

    store = Store(path)
    await store.open()
    try:
        await store.write(prepare)
    finally:
        await store.close()


async def write(path: Path, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run one write transaction on the database from this (another) process."""
    store = Store(path)
    await store.open()
    try:
        return await store.write(fn)
    finally:
        await store.close()


def add_provider(
    conn: sqlite3.Connection,
    pid: str,
    base_url: str,
    *,
    priority: int = 0,
    enabled: bool = True,
    api_key: str | None = None,
    models: dict[str, str | None] | None = None,
    timeout_ms: int | None = None,
) -> None:
    """Insert an openai-compatible provider and link ``models`` ({model: upstreamModel})."""
    config: dict[str, Any] = {"baseURL": base_url}
    if api_key is not None:
        config["apiKey"] = api_key
    if timeout_ms is not None:
        config["timeout"] = timeout_ms
    provider_rows.create_provider(
        conn, id=pid, name=pid, type="openai-compatible", enabled=enabled, priority=priority,
        description=None, config=config,
    )  # fmt: skip
    for model, upstream in (models or {}).items():
        if conn.execute("SELECT 1 FROM models WHERE id = ?", (model,)).fetchone() is None:
            conn.execute(
                "INSERT INTO models (id, name, capabilities, created_at, updated_at)"
                " VALUES (?, ?, '[]', 0, 0)",
                (model, model),
            )
        provider_rows.link_model(
            conn, pid, model, is_default=False,
            config={"upstreamModel": upstream} if upstream else None,
        )  # fmt: skip


def put_setting(conn: sqlite3.Connection, key: str, value: Any) -> None:
    setting_rows.put(conn, key, value)


class RouterProcess(ChildProgram):
    """One ``python -m provider_router``; output kept and recorded for the secret scan."""

    module = "provider_router"
    label = "router"

    def own_env(self) -> dict[str, str]:
        return {"ROUTER_HISTORY_PRUNE_INTERVAL": "0.2"}

    async def start(self) -> RouterProcess:
        await self.spawn()
        return self
