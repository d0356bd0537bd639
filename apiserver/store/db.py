"""``Store``: the only owner of the SQLite connection of a process."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from apiserver.store import schema

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` with the pragmas every process of the stack uses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so every write is one explicit
    # transaction and reads outside a write see the latest committed data.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Store:
    """Run every database call on one worker thread, off the event loop.

    ``read`` and ``write`` take a function of a connection; repositories in this package are
    such functions. A write runs inside ``BEGIN IMMEDIATE`` … ``COMMIT`` and is rolled back
    whole on any error, so nothing is half-written.
    """

    def __init__(self, path: Path, *, seed_options: dict[str, object] | None = None) -> None:
        self.path = path
        self._seed_options = seed_options or {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._conn: sqlite3.Connection | None = None
        self.migrated_from = 0

    async def open(self) -> None:
        """Connect and migrate the schema."""
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        self._conn = connect(self.path)
        self.migrated_from, _ = schema.migrate(self._conn, seed_options=self._seed_options)

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the store thread."""
        return await self._run(lambda: fn(self._require()))

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction on the store thread."""
        return await self._run(lambda: self.write_sync(fn))

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction on the calling thread (store thread only)."""
        conn = self._require()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)
