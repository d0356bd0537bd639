"""One daemon per database: an exclusive lock taken before anything touches the children.

A second daemon started on the same database would otherwise take the first one's live
children for orphans of a crashed run, and adopt or stop them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class DatabaseInUse(Exception):
    """Another daemon holds the database."""


def lock_path(database: Path) -> Path:
    """Return the lock file beside ``database``."""
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def exclusive_database(database: Path) -> Iterator[None]:
    """Hold the daemon lock of ``database`` for the block (released when the process dies)."""
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:  # noqa: PTH123 - we need the descriptor for flock
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise DatabaseInUse(
                f"another apiserver (pid {holder}) is using {database}; "
                "stop it or set DATABASE_PATH to another file"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
