"""Models and their provider links as seen from the model side."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from qwenstack_core.errors import Conflict, NotFound
from qwenstack_core.store.providers import now_ms

_COLUMNS = "m.id, m.name, m.description, m.capabilities, m.created_at, m.updated_at"


def _model(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "capabilities": json.loads(row["capabilities"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def list_models(
    conn: sqlite3.Connection, *, capability: str | None = None, provider: str | None = None
) -> list[dict[str, Any]]:
    """Return models ordered by id, optionally with a capability or linked to a provider."""
    sql = f"SELECT {_COLUMNS} FROM models m"
    where: list[str] = []
    args: list[Any] = []
    if provider is not None:
        sql += " JOIN provider_models pm ON pm.model_id = m.id"
        where.append("pm.provider_id = ?")
        args.append(provider)
    if capability is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(m.capabilities) WHERE value = ?)")
        args.append(capability)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY m.id"
    return [_model(r) for r in conn.execute(sql, args)]


def get_model(conn: sqlite3.Connection, model_id: str) -> dict[str, Any]:
    """Return one model or raise 404."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM models m WHERE m.id = ?", (model_id,)).fetchone()
    if row is None:
        raise NotFound(f"Model '{model_id}' not found", code="model_not_found")
    return _model(row)


def get_model_with_providers(conn: sqlite3.Connection, model_id: str) -> dict[str, Any]:
    """Return a model plus the providers it is linked to."""
    model = get_model(conn, model_id)
    rows = conn.execute(
        "SELECT p.id, p.name, p.type, p.enabled, p.priority, pm.is_default, pm.config"
        " FROM provider_models pm JOIN providers p ON p.id = pm.provider_id"
        " WHERE pm.model_id = ? ORDER BY p.priority DESC, p.name",
        (model_id,),
    )
    model["providers"] = [
        {
            "id": r["id"],
            "name": r["name"],
            "type": r["type"],
            "enabled": bool(r["enabled"]),
            "priority": r["priority"],
            "is_default": bool(r["is_default"]),
            "provider_config": json.loads(r["config"]) if r["config"] else None,
        }
        for r in rows
    ]
    return model


def create_model(
    conn: sqlite3.Connection,
    *,
    id: str,
    name: str,
    description: str | None,
    capabilities: list[str],
) -> dict[str, Any]:
    """Insert a model; 409 when the id exists.

    One statement: the primary key refuses a taken id, and the row is returned from the values
    written. Every statement releases and retakes the GIL on the store thread, which waits for
    the busy event loop each time, so fewer statements mean faster writes under load.
    """
    now = now_ms()
    text = json.dumps(capabilities)
    try:
        conn.execute(
            "INSERT INTO models (id, name, description, capabilities, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (id, name, description, text, now, now),
        )
    except sqlite3.IntegrityError as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_CONSTRAINT_PRIMARYKEY":
            raise Conflict(f"Model '{id}' already exists", code="model_exists") from None
        raise
    return {
        "id": id,
        "name": name,
        "description": description,
        "capabilities": list(capabilities),  # a fresh copy (of strings), as a read-back gives
        "created_at": now,
        "updated_at": now,
    }


def update_model(conn: sqlite3.Connection, model_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Update the given columns of a model."""
    get_model(conn, model_id)
    values = {k: (json.dumps(v) if k == "capabilities" else v) for k, v in fields.items()}
    assignments = ", ".join(f"{column} = ?" for column in values)
    conn.execute(
        f"UPDATE models SET {assignments}, updated_at = ? WHERE id = ?",
        (*values.values(), now_ms(), model_id),
    )
    return get_model(conn, model_id)


def delete_model(conn: sqlite3.Connection, model_id: str) -> None:
    """Delete a model (its links go with it); 404 when there is none (one statement)."""
    if conn.execute("DELETE FROM models WHERE id = ?", (model_id,)).rowcount == 0:
        raise NotFound(f"Model '{model_id}' not found", code="model_not_found")
