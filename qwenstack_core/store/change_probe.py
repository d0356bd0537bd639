"""A cheap "did the routing data change?" check, meant to run on the event loop itself.

``PRAGMA data_version`` on a WAL database reads the shared-memory index, not the file, so it
costs microseconds: cheaper than handing a job to the store thread. Only when it moved (another
connection committed: the API server, or this child's own history writer) is the one-row
``catalog_version`` read, which triggers bump on every write to the routing tables; history
writes leave it alone. The probe owns its own connection (never the ``Store``'s, which lives
on another thread) and never writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from qwenstack_core.store.db import connect
from qwenstack_core.store.schema import catalog_version, data_version


class ChangeProbe:
    """Report whether the routing tables changed since the previous call."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._catalog: int | None = None

    def open(self) -> None:
        """Open the probe's connection (read-only use)."""
        conn = connect(self._path)
        conn.execute("PRAGMA query_only = ON")
        self._conn = conn
        self._seen = data_version(conn)
        self._catalog = catalog_version(conn)

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def changed(self) -> bool:
        """Return True once after the routing tables changed (by another connection).

        An error (database gone, locked beyond the busy timeout) counts as a change, so the
        caller re-reads and learns about the problem there.
        """
        conn = self._conn
        if conn is None:
            return True
        try:
            version = data_version(conn)
            if version == self._seen:
                return False
            self._seen = version
            stamp = catalog_version(conn)
        except sqlite3.Error:
            self._seen = self._catalog = None
            return True
        if stamp == self._catalog:
            return False  # a commit, but not to the routing tables (history rows)
        self._catalog = stamp
        return True
