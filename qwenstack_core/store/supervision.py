"""What the daemon remembers about its children across restarts: records and desired state."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChildRecord:
    """A child as spawned: enough to recognise it (pid + create time) after a daemon crash."""

    name: str
    pid: int
    create_time: float
    argv: tuple[str, ...]
    port: int | None


def record_child(conn: sqlite3.Connection, record: ChildRecord) -> None:
    """Remember a freshly spawned child (replacing an older record of the same name)."""
    conn.execute(
        "INSERT INTO child_processes (name, pid, create_time, argv, port, recorded_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET pid = excluded.pid,"
        " create_time = excluded.create_time, argv = excluded.argv, port = excluded.port,"
        " recorded_at = excluded.recorded_at",
        (
            record.name,
            record.pid,
            record.create_time,
            json.dumps(list(record.argv)),
            record.port,
            int(time.time() * 1000),
        ),
    )


def forget_child(conn: sqlite3.Connection, name: str, pid: int) -> None:
    """Drop the record of a child that exited (only if it still names that pid)."""
    conn.execute("DELETE FROM child_processes WHERE name = ? AND pid = ?", (name, pid))


def child_records(conn: sqlite3.Connection) -> list[ChildRecord]:
    """Return the children recorded as running."""
    return [
        ChildRecord(r["name"], r["pid"], r["create_time"], tuple(json.loads(r["argv"])), r["port"])
        for r in conn.execute("SELECT name, pid, create_time, argv, port FROM child_processes")
    ]


def get_state(conn: sqlite3.Connection, key: str) -> object:
    """Return a daemon state value (None when unset)."""
    row = conn.execute("SELECT value FROM daemon_state WHERE key = ?", (key,)).fetchone()
    return json.loads(row["value"]) if row else None


def set_state(conn: sqlite3.Connection, key: str, value: object) -> None:
    """Store a daemon state value."""
    conn.execute(
        "INSERT INTO daemon_state (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )
