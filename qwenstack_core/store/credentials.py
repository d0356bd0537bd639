"""The stored Qwen browser credentials (one row). Times are Unix seconds, as the extension sends."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class QwenCredentials:
    """The secret values, for qwen-proxy only: never serialised into a response."""

    token: str
    cookies: str
    expires_at: int | None


def _now() -> int:
    return int(time.time())


def status(conn: sqlite3.Connection) -> dict[str, Any]:
    """Return what may be shown about the credentials (never the secrets)."""
    row = conn.execute(
        "SELECT expires_at, created_at, updated_at FROM qwen_credentials WHERE id = 1"
    ).fetchone()
    if row is None:
        return {
            "hasCredentials": False,
            "isValid": False,
            "isExpired": False,
            "expiresAt": None,
            "createdAt": None,
            "updatedAt": None,
        }
    expires_at = row["expires_at"]
    expired = expires_at is not None and expires_at <= _now()
    return {
        "hasCredentials": True,
        "isValid": not expired,
        "isExpired": expired,
        "expiresAt": expires_at,
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def save(conn: sqlite3.Connection, token: str, cookies: str, expires_at: int | None) -> None:
    """Replace the stored credentials (creation time kept across replacements)."""
    now = _now()
    conn.execute(
        "INSERT INTO qwen_credentials (id, token, cookies, expires_at, created_at, updated_at)"
        " VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET token = excluded.token,"
        " cookies = excluded.cookies, expires_at = excluded.expires_at,"
        " updated_at = excluded.updated_at",
        (token, cookies, expires_at, now, now),
    )


def delete(conn: sqlite3.Connection) -> tuple[int, int | None]:
    """Delete the credentials; return (rows deleted, creation time of the removed record)."""
    row = conn.execute("SELECT created_at FROM qwen_credentials WHERE id = 1").fetchone()
    conn.execute("DELETE FROM qwen_credentials WHERE id = 1")
    return (0, None) if row is None else (1, row["created_at"])


def load(conn: sqlite3.Connection) -> QwenCredentials | None:
    """Return the secret values (qwen-proxy's upstream calls only)."""
    row = conn.execute(
        "SELECT token, cookies, expires_at FROM qwen_credentials WHERE id = 1"
    ).fetchone()
    if row is None:
        return None
    return QwenCredentials(row["token"], row["cookies"], row["expires_at"])
