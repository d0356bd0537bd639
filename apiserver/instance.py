"""One daemon per database: an exclusive lock taken before anything touches the children.

A second daemon started on the same database would otherwise take the first one's live
children for orphans of a crashed run, and adopt or stop them.

The lock is an ``flock`` on the database file itself, opened through its resolved path: every
name of the file (the path, a symlink to it, a hard link to it) reaches the same inode, and
``flock`` locks belong to the open file of that inode, so no second name can bypass it. SQLite
uses POSIX record locks, which are independent of ``flock`` on Linux; and our descriptor stays
open as long as the daemon runs (closing any descriptor of a file drops the process's POSIX
locks on it, so it is closed only after the store, when the block ends). The pid of the holder
is written to ``<resolved database>.lock``, for the refusal message only.
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
    """Return the file beside the resolved ``database`` that names the holder's pid."""
    real = database.resolve()
    return real.with_name(real.name + ".lock")


@contextlib.contextmanager
def exclusive_database(database: Path) -> Iterator[None]:
    """Hold the daemon lock of ``database`` for the block (released when the process dies)."""
    real = database.resolve()
    real.parent.mkdir(parents=True, exist_ok=True)
    # O_CREAT without truncation: an empty file is a new, empty SQLite database.
    fd = os.open(real, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(
                f"another apiserver (pid {_holder(real, os.fstat(fd))}) is using {database}"
                + (f" ({real})" if real != database.absolute() else "")
                + "; stop it or set DATABASE_PATH to another file"
            ) from None
        pid_file = lock_path(real)
        with contextlib.suppress(OSError):
            pid_file.write_text(str(os.getpid()))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                if pid_file.read_text().strip() == str(os.getpid()):
                    pid_file.unlink()
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(real: Path, stat: os.stat_result) -> str:
    """Return the pid holding the flock on the file (/proc/locks on Linux, else the pid file)."""
    wanted = (os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/locks").read_text().splitlines():
            # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (device numbers in hex)
            fields = line.split()
            if len(fields) >= 6 and fields[1] == "FLOCK":
                major, minor, inode = fields[5].split(":")
                if (int(major, 16), int(minor, 16), int(inode)) == wanted:
                    return fields[4]
    try:
        return lock_path(real).read_text().strip() or "unknown"
    except OSError:
        return "unknown"
