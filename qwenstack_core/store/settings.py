"""Typed settings: the registry of known keys, their validation, and their storage."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qwenstack_core.errors import Invalid, NotFound, invalid_field
from qwenstack_core.store.providers import now_ms

Check = Callable[[Any], str | None]  # returns an error message, or None when valid


def _int_range(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if not low <= value <= high:
            return f"must be between {low} and {high}"
        return None

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be a boolean"


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _host(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        return "must be a non-empty host name or address"
    return None


def _provider_id_or_null(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        return "must be a provider id or null"
    return None


@dataclass(frozen=True, slots=True)
class SettingDef:
    """One known setting."""

    key: str
    category: str
    default: Any
    check: Check
    requires_restart: bool


SETTINGS: dict[str, SettingDef] = {
    d.key: d
    for d in (
        SettingDef("server.port", "server", 3001, _int_range(1, 65535), True),
        SettingDef("server.host", "server", "127.0.0.1", _host, True),
        SettingDef("server.timeout", "server", 120000, _int_range(1000, 600000), False),
        SettingDef("logging.level", "logging", "info", _one_of("debug", "info", "warn", "error"),
                   False),
        SettingDef("logging.logRequests", "logging", False, _boolean, False),
        SettingDef("logging.logResponses", "logging", False, _boolean, False),
        SettingDef("system.autoStart", "system", False, _boolean, False),
        SettingDef("active_provider", "provider", None, _provider_id_or_null, False),
        # Request history retention, applied by the children in the background.
        SettingDef("history.maxRows", "history", 10000, _int_range(1, 10_000_000), False),
        SettingDef("history.maxAgeDays", "history", 30, _int_range(1, 3650), False),
    )
}  # fmt: skip
CATEGORIES = ("server", "logging", "system", "provider", "history")


def definition(key: str) -> SettingDef:
    """Return the definition of ``key`` or raise 404."""
    try:
        return SETTINGS[key]
    except KeyError:
        raise NotFound(f"Setting '{key}' not found", code="setting_not_found") from None


def validate(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Raise 400 when ``value`` is not valid for ``key`` (field named after the key)."""
    problem = definition(key).check(value)
    if problem:
        raise invalid_field(key, problem)
    if key == "active_provider" and value is not None:
        found = conn.execute("SELECT enabled FROM providers WHERE id = ?", (value,)).fetchone()
        if found is None:
            raise invalid_field(key, f"provider '{value}' does not exist")


def all_values(conn: sqlite3.Connection, category: str | None = None) -> dict[str, Any]:
    """Return every known setting (stored value or default), optionally of one category."""
    stored = {
        r["key"]: json.loads(r["value"]) for r in conn.execute("SELECT key, value FROM settings")
    }
    return {
        key: stored.get(key, d.default)
        for key, d in SETTINGS.items()
        if category is None or d.category == category
    }


def get(conn: sqlite3.Connection, key: str) -> dict[str, Any]:
    """Return one setting with its metadata."""
    d = definition(key)
    row = conn.execute("SELECT value, updated_at FROM settings WHERE key = ?", (key,)).fetchone()
    value = json.loads(row["value"]) if row else d.default
    return {
        "key": key,
        "value": value,
        "category": d.category,
        "requiresRestart": d.requires_restart,
        "isDefault": row is None or value == d.default,
        "updated_at": row["updated_at"] if row else None,
    }


def put(conn: sqlite3.Connection, key: str, value: Any) -> dict[str, Any]:
    """Validate and store one setting."""
    validate(conn, key, value)
    now = now_ms()
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (key, json.dumps(value), now),
    )
    return {"key": key, "value": value, "requiresRestart": SETTINGS[key].requires_restart,
            "updated_at": now}  # fmt: skip


def put_many(conn: sqlite3.Connection, values: dict[str, Any]) -> list[str]:
    """Validate every value first, then store all (the caller's transaction makes it atomic)."""
    details: list[dict[str, Any]] = []
    for key, value in values.items():
        if key not in SETTINGS:
            details.append({"field": key, "message": "is not a known setting"})
            continue
        try:
            validate(conn, key, value)
        except Invalid as exc:
            details.extend(exc.details or [])
    if details:
        raise Invalid(details)
    for key, value in values.items():
        put(conn, key, value)
    return list(values)


def reset(conn: sqlite3.Connection, key: str) -> dict[str, Any]:
    """Reset ``key`` to its default."""
    d = definition(key)
    conn.execute("DELETE FROM settings WHERE key = ?", (key,))
    return {"key": key, "value": d.default, "requiresRestart": d.requires_restart}
