"""A cheap "did another process commit?" check, meant to run on the event loop itself.

``PRAGMA data_version`` on a WAL database reads the shared-memory index, not the file, so it
costs microseconds: cheaper than handing a job to the store thread. The probe owns its own
connection (never the ``Store``'s, which lives on another thread) and never writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from qwenstack_core.store.db import connect
from qwenstack_core.store.schema import data_version


class ChangeProbe:
    """Report whether the database changed since the previous call (any other connection)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None

    def open(self) -> None:
        """Open the probe's connection (read-only use)."""
        conn = connect(self._path)
        conn.execute("PRAGMA query_only = ON")
        self._conn = conn
        self._seen = data_version(conn)

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def changed(self) -> bool:
        """Return True once per batch of commits made by other connections since last asked.

        An error (database gone, locked beyond the busy timeout) counts as a change, so the
        caller re-reads and learns about the problem there.
        """
        if self._conn is None:
            return True
        try:
            version = data_version(self._conn)
        except sqlite3.Error:
            return True
        if version == self._seen:
            return False
        self._seen = version
        return True
