"""Providers, their key/value configuration and their model links (functions of a connection).

Readers return the stored values as they are, secrets included: the router needs them, and
the daemon masks what it shows before anything leaves it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from qwenstack_core.errors import Conflict, NotFound
from qwenstack_core.provider_urls import base_url
from qwenstack_core.redaction import is_secret_name, mask_nested

PROVIDER_TYPES = ("qwen-proxy", "lm-studio", "qwen-direct", "openai-compatible")

_COLUMNS = "id, name, type, enabled, priority, description, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One stored config value of a provider; ``is_sensitive`` says it must never be shown."""

    provider_id: str
    key: str
    value: Any
    is_sensitive: bool
    updated_at: int


def now_ms() -> int:
    """Return the current time in epoch milliseconds (the rows' timestamp unit)."""
    return int(time.time() * 1000)


def is_sensitive_key(key: str) -> bool:
    """Return True for config keys whose values are secrets by name."""
    return is_secret_name(key)


def _provider(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "type": row["type"],
        "enabled": bool(row["enabled"]),
        "priority": row["priority"],
        "description": row["description"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def list_providers(
    conn: sqlite3.Connection, *, type_: str | None = None, enabled: bool | None = None
) -> list[dict[str, Any]]:
    """Return providers ordered by priority (highest first), then name."""
    sql = f"SELECT {_COLUMNS} FROM providers"
    where: list[str] = []
    args: list[Any] = []
    if type_ is not None:
        where.append("type = ?")
        args.append(type_)
    if enabled is not None:
        where.append("enabled = ?")
        args.append(int(enabled))
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY priority DESC, name ASC"
    return [_provider(r) for r in conn.execute(sql, args)]


def get_provider(conn: sqlite3.Connection, provider_id: str) -> dict[str, Any]:
    """Return one provider or raise 404."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM providers WHERE id = ?", (provider_id,)).fetchone()
    if row is None:
        raise NotFound(f"Provider '{provider_id}' not found", code="provider_not_found")
    return _provider(row)


def _name_taken(conn: sqlite3.Connection, name: str, except_id: str | None = None) -> bool:
    row = conn.execute(
        "SELECT id FROM providers WHERE name = ? AND id IS NOT ?", (name, except_id)
    ).fetchone()
    return row is not None


def create_provider(
    conn: sqlite3.Connection,
    *,
    id: str,
    name: str,
    type: str,
    enabled: bool,
    priority: int,
    description: str | None,
    config: dict[str, Any],
) -> dict[str, Any]:
    """Insert a provider (and its initial config); 409 on a taken id or name."""
    if conn.execute("SELECT 1 FROM providers WHERE id = ?", (id,)).fetchone():
        raise Conflict(f"Provider '{id}' already exists", code="provider_exists")
    if _name_taken(conn, name):
        raise Conflict(f"Provider name '{name}' is already taken", code="provider_name_taken")
    now = now_ms()
    conn.execute(
        f"INSERT INTO providers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (id, name, type, int(enabled), priority, description, now, now),
    )
    for key, value in config.items():
        set_config_value(conn, id, key, value, None, now=now)
    return get_provider(conn, id)


def update_provider(
    conn: sqlite3.Connection, provider_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """Update the given columns of a provider; 404/409 as for create."""
    get_provider(conn, provider_id)
    if "name" in fields and _name_taken(conn, fields["name"], provider_id):
        raise Conflict(
            f"Provider name '{fields['name']}' is already taken", code="provider_name_taken"
        )
    values = {k: (int(v) if k == "enabled" else v) for k, v in fields.items()}
    assignments = ", ".join(f"{column} = ?" for column in values)
    conn.execute(
        f"UPDATE providers SET {assignments}, updated_at = ? WHERE id = ?",
        (*values.values(), now_ms(), provider_id),
    )
    return get_provider(conn, provider_id)


def set_provider_enabled(conn: sqlite3.Connection, provider_id: str, enabled: bool) -> int:
    """Enable or disable a provider in one statement; return its new updated_at; 404."""
    now, sql = now_ms(), "UPDATE providers SET enabled = ?, updated_at = ? WHERE id = ?"
    if not conn.execute(sql, (int(enabled), now, provider_id)).rowcount:
        raise NotFound(f"Provider '{provider_id}' not found", code="provider_not_found")
    return now


def delete_provider(conn: sqlite3.Connection, provider_id: str) -> bool:
    """Delete a provider with its configs and links; clear an active_provider naming it.

    Returns True when the ``active_provider`` setting was cleared.
    """
    get_provider(conn, provider_id)
    conn.execute("DELETE FROM providers WHERE id = ?", (provider_id,))
    cleared = conn.execute(
        "UPDATE settings SET value = 'null', updated_at = ? WHERE key = 'active_provider'"
        " AND value = ?",
        (now_ms(), json.dumps(provider_id)),
    )
    return cleared.rowcount > 0


# -- configuration -------------------------------------------------------------------------


def get_config(conn: sqlite3.Connection, provider_id: str) -> dict[str, Any]:
    """Return a provider's config as key -> value (real values, secrets included); 404."""
    return {entry.key: entry.value for entry in config_entries(conn, provider_id)}


def config_entries(conn: sqlite3.Connection, provider_id: str) -> list[ConfigEntry]:
    """Return a provider's config entries ordered by key, with their sensitivity; 404."""
    get_provider(conn, provider_id)
    rows = conn.execute(
        "SELECT key, value, is_sensitive, updated_at FROM provider_configs"
        " WHERE provider_id = ? ORDER BY key",
        (provider_id,),
    )
    return [_config_entry(provider_id, r) for r in rows]


def _config_entry(provider_id: str, row: sqlite3.Row) -> ConfigEntry:
    return ConfigEntry(
        provider_id=provider_id,
        key=row["key"],
        value=json.loads(row["value"]),
        is_sensitive=bool(row["is_sensitive"]),
        updated_at=row["updated_at"],
    )


def set_config_value(
    conn: sqlite3.Connection,
    provider_id: str,
    key: str,
    value: Any,
    is_sensitive: bool | None,
    *,
    now: int | None = None,
) -> ConfigEntry:
    """Upsert one config key; sensitive by the flag or the key's name, and it stays so.

    ``is_sensitive=False`` cannot downgrade a secret-looking name or an already secret key.
    """
    now = now or now_ms()
    sensitive = bool(is_sensitive) or is_sensitive_key(key)
    conn.execute(
        "INSERT INTO provider_configs (provider_id, key, value, is_sensitive, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (provider_id, key) DO UPDATE SET"
        " value = excluded.value, updated_at = excluded.updated_at,"
        " is_sensitive = MAX(is_sensitive, excluded.is_sensitive)",
        (provider_id, key, json.dumps(value), int(sensitive), now, now),
    )
    row = conn.execute(
        "SELECT key, value, is_sensitive, updated_at FROM provider_configs"
        " WHERE provider_id = ? AND key = ?",
        (provider_id, key),
    ).fetchone()
    return _config_entry(provider_id, row)


def replace_config_values(
    conn: sqlite3.Connection, provider_id: str, config: dict[str, Any]
) -> int:
    """Upsert many config keys (others are kept); return how many were written."""
    get_provider(conn, provider_id)
    now = now_ms()
    for key, value in config.items():
        set_config_value(conn, provider_id, key, value, None, now=now)
    return len(config)


def delete_config_value(conn: sqlite3.Connection, provider_id: str, key: str) -> None:
    """Delete one config key; 404 when absent."""
    get_provider(conn, provider_id)
    cur = conn.execute(
        "DELETE FROM provider_configs WHERE provider_id = ? AND key = ?", (provider_id, key)
    )
    if cur.rowcount == 0:
        raise NotFound(
            f"Configuration key '{key}' not found for provider '{provider_id}'",
            code="config_key_not_found",
        )


# -- model links ---------------------------------------------------------------------------


def linked_models(conn: sqlite3.Connection, provider_id: str) -> list[dict[str, Any]]:
    """Return the models linked to a provider with ``is_default`` and ``provider_config``."""
    get_provider(conn, provider_id)
    rows = conn.execute(
        "SELECT m.id, m.name, m.description, m.capabilities, m.created_at, m.updated_at,"
        " pm.is_default, pm.config FROM provider_models pm JOIN models m ON m.id = pm.model_id"
        " WHERE pm.provider_id = ? ORDER BY pm.is_default DESC, m.id",
        (provider_id,),
    )
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "description": r["description"],
            "capabilities": json.loads(r["capabilities"]),
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
            "is_default": bool(r["is_default"]),
            "provider_config": json.loads(r["config"]) if r["config"] is not None else None,
        }
        for r in rows
    ]


def link_model(
    conn: sqlite3.Connection,
    provider_id: str,
    model_id: str,
    *,
    is_default: bool,
    config: dict[str, Any] | None,
) -> dict[str, Any]:
    """Link a model to a provider; 404 for either, 409 when already linked."""
    get_provider(conn, provider_id)
    if conn.execute("SELECT 1 FROM models WHERE id = ?", (model_id,)).fetchone() is None:
        raise NotFound(f"Model '{model_id}' not found", code="model_not_found")
    exists = conn.execute(
        "SELECT 1 FROM provider_models WHERE provider_id = ? AND model_id = ?",
        (provider_id, model_id),
    ).fetchone()
    if exists:
        raise Conflict(
            f"Model '{model_id}' is already linked to provider '{provider_id}'",
            code="model_already_linked",
        )
    now = now_ms()
    if is_default:
        conn.execute(
            "UPDATE provider_models SET is_default = 0 WHERE provider_id = ?", (provider_id,)
        )
    conn.execute(
        "INSERT INTO provider_models (provider_id, model_id, is_default, config, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        (
            provider_id,
            model_id,
            int(is_default),
            json.dumps(config) if config is not None else None,
            now,
            now,
        ),
    )
    return {
        "provider_id": provider_id,
        "model_id": model_id,
        "is_default": is_default,
        "config": config,
        "created_at": now,
    }


def _require_link(conn: sqlite3.Connection, provider_id: str, model_id: str) -> None:
    get_provider(conn, provider_id)
    row = conn.execute(
        "SELECT 1 FROM provider_models WHERE provider_id = ? AND model_id = ?",
        (provider_id, model_id),
    ).fetchone()
    if row is None:
        raise NotFound(
            f"Model '{model_id}' is not linked to provider '{provider_id}'",
            code="model_not_linked",
        )


def unlink_model(conn: sqlite3.Connection, provider_id: str, model_id: str) -> None:
    """Remove a provider↔model link; 404 when not linked."""
    _require_link(conn, provider_id, model_id)
    conn.execute(
        "DELETE FROM provider_models WHERE provider_id = ? AND model_id = ?",
        (provider_id, model_id),
    )


def set_default_model(conn: sqlite3.Connection, provider_id: str, model_id: str) -> None:
    """Make ``model_id`` the provider's only default model."""
    _require_link(conn, provider_id, model_id)
    now = now_ms()
    conn.execute(
        "UPDATE provider_models SET is_default = (model_id = ?), updated_at = ?"
        " WHERE provider_id = ?",
        (model_id, now, provider_id),
    )


# -- secrets bound to an origin ------------------------------------------------------------


def origin_of(url: str | None) -> str | None:
    """Return ``scheme://host:port`` of a URL (default ports made explicit), or None."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return url  # not a URL we understand: compared as it is
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def secrets_origin(conn: sqlite3.Connection, provider_id: str) -> str | None:
    """Return the origin the provider's requests (and so its secrets) go to now."""
    provider = get_provider(conn, provider_id)
    # The qwen-proxy default is on loopback whatever its port: the default port is used on
    # both sides of every comparison, so only a real change of baseURL or type counts.
    return origin_of(base_url(provider["type"], get_config(conn, provider_id), qwen_proxy_port=0))


def _carries_secret(entry: ConfigEntry) -> bool:
    return (
        entry.is_sensitive or is_secret_name(entry.key) or mask_nested(entry.value) != entry.value
    )


def drop_secrets_if_moved(
    conn: sqlite3.Connection, provider_id: str, origin_before: str | None, resent: set[str]
) -> list[str]:
    """Delete the secrets entered for another origin than the provider's current one.

    A provider's secrets are bound to the origin they were entered for: when a write moves the
    provider elsewhere (baseURL or type), every secret not re-sent in that same write is
    dropped, so that nothing (a test call, the router) can send it to the new origin. Returns
    the keys dropped.
    """
    if secrets_origin(conn, provider_id) == origin_before:
        return []
    dropped = [
        entry.key
        for entry in config_entries(conn, provider_id)
        if entry.key not in resent and _carries_secret(entry)
    ]
    for key in dropped:
        conn.execute(
            "DELETE FROM provider_configs WHERE provider_id = ? AND key = ?", (provider_id, key)
        )
    return dropped
