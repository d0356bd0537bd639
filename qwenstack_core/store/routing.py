"""What the provider-router needs to route: one consistent read of the catalog and settings.

Unlike the API server's readers, provider configs come back with their real values (API keys
included): the router sends them upstream and never shows them.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from qwenstack_core.store.settings import SETTINGS


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """One provider with its whole (unmasked) configuration."""

    id: str
    type: str
    enabled: bool
    priority: int
    name: str
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One provider-model link and its config (``upstreamModel`` and the like)."""

    provider_id: str
    model_id: str
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model of the catalog."""

    id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    """Providers (priority order), links, models and every setting, read in one transaction."""

    providers: tuple[ProviderRow, ...]
    links: tuple[LinkRow, ...]
    models: tuple[ModelRow, ...]
    settings: dict[str, Any]


def _json_object(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def read_snapshot(conn: sqlite3.Connection) -> RoutingSnapshot:
    """Read everything routing depends on, consistently (one read transaction)."""
    # One transaction: a daemon write landing between two of these SELECTs must not give a
    # table that mixes old providers with new links.
    conn.execute("BEGIN")
    try:
        configs: dict[str, dict[str, Any]] = {}
        for row in conn.execute("SELECT provider_id, key, value FROM provider_configs"):
            try:
                value = json.loads(row["value"])
            except ValueError:
                continue
            configs.setdefault(row["provider_id"], {})[row["key"]] = value
        providers = tuple(
            ProviderRow(
                id=r["id"],
                type=r["type"],
                enabled=bool(r["enabled"]),
                priority=int(r["priority"]),
                name=r["name"],
                config=configs.get(r["id"], {}),
            )
            for r in conn.execute(
                "SELECT id, type, enabled, priority, name FROM providers"
                " ORDER BY priority DESC, name ASC, id ASC"
            )
        )
        links = tuple(
            LinkRow(r["provider_id"], r["model_id"], _json_object(r["config"]))
            for r in conn.execute(
                "SELECT provider_id, model_id, config FROM provider_models ORDER BY model_id"
            )
        )
        models = tuple(
            ModelRow(r["id"], r["name"], int(r["created_at"]))
            for r in conn.execute("SELECT id, name, created_at FROM models ORDER BY id")
        )
        stored: dict[str, Any] = {}
        for r in conn.execute("SELECT key, value FROM settings"):
            try:
                stored[r["key"]] = json.loads(r["value"])
            except ValueError:
                continue
    finally:
        conn.execute("COMMIT")
    settings = {key: stored.get(key, d.default) for key, d in SETTINGS.items()}
    return RoutingSnapshot(providers, links, models, settings)
