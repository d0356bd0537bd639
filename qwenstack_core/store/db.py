"""``Store``: the only owner of the SQLite connection of a process."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from qwenstack_core.errors import StorageUnavailable
from qwenstack_core.store import schema
from qwenstack_core.store.checkpoint import Checkpointer
from qwenstack_core.store.commits import WriteJob, run_batch
from qwenstack_core.store.worker import DatabaseThread, Outcome

T = TypeVar("T")
U = TypeVar("U")

# The connection a repository function receives. Other packages annotate with this name so that
# sqlite3 itself is imported only inside the store.
Connection: TypeAlias = sqlite3.Connection

BUSY_TIMEOUT_MS = 5000

# SQLite result codes (the name before any extended suffix) that mean "the storage under the
# database is at fault", with the sentence a user gets for each.
_STORAGE_FAULTS = {
    "SQLITE_READONLY": "the database is read-only (check the permissions and the file system"
    " of {path})",
    "SQLITE_FULL": "the disk holding the database is full ({path})",
    "SQLITE_IOERR": "the database file cannot be read or written (I/O error on {path})",
    "SQLITE_CANTOPEN": "the database file cannot be opened ({path})",
    "SQLITE_CORRUPT": "the database file is damaged ({path})",
    "SQLITE_NOTADB": "the database file is not a database any more ({path})",
    "SQLITE_BUSY": "the database is locked by another process ({path})",
}


def storage_fault(exc: sqlite3.Error, path: Path) -> StorageUnavailable | None:
    """Return the StorageUnavailable for a storage-level SQLite error, None for another one."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_IOERR") and not _writable(path):
        # A file made read-only under an open connection (immutable, a permission the open
        # descriptor ignores but the kernel enforces) fails as an I/O error: say what it is.
        name = "SQLITE_READONLY"
    for prefix, sentence in _STORAGE_FAULTS.items():
        if name == prefix or name.startswith(prefix + "_"):
            return StorageUnavailable(
                "Storage unavailable: " + sentence.format(path=path) + "; nothing was written"
            )
    return None


def _writable(path: Path) -> bool:
    """Return False when the kernel refuses to write the database file or its WAL."""
    return all(
        not os.path.exists(name) or os.access(name, os.W_OK) for name in (path, f"{path}-wal")
    )


def file_identity(path: Path) -> tuple[int, int] | None:
    """Return (device, inode) of ``path``, or None when there is no such file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


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
    whole on any error, so nothing is half-written; writes queued together share one
    transaction, each rolled back alone when it fails (commits.py).
    """

    def __init__(
        self,
        path: Path,
        *,
        seed_options: dict[str, object] | None = None,
        migrate: bool = True,
        own_checkpoints: bool | None = None,
    ) -> None:
        self.path = path
        # Only the daemon migrates and seeds; a child opens with migrate=False and refuses a
        # schema it does not know.
        self._migrate = migrate
        self._seed_options = seed_options or {}
        # The daemon's Store checkpoints the WAL on a thread of its own instead of inside its
        # commits (store/checkpoint.py); a child's keeps SQLite's automatic checkpoint.
        self._own_checkpoints = migrate if own_checkpoints is None else own_checkpoints
        self._checkpointer: Checkpointer | None = None
        # The daemon's store thread does not preempt its event loop when handed a job
        # (worker.py); a child's keeps the default.
        self._thread = DatabaseThread(yield_on_wake=migrate, run_batch=self._run_batch)
        self._conn: sqlite3.Connection | None = None
        # (device, inode) of the file opened: a file deleted or replaced under the running
        # process is detected before each write, which is refused instead of being lost.
        self._identity: tuple[int, int] | None = None
        self._identity_batch = -1  # the store thread's batch the identity was last checked in
        self._identity_fault: str | None = None
        self.fault: str | None = None  # the last storage fault, until a write succeeds
        self.migrated_from = 0
        self.commits = 0  # write transactions committed (diagnostics and tests)
        # Read cache for the small, hot catalog lists (providers, models). Only this process
        # writes those tables (the children only write history), so a counter bumped by every
        # write through this Store is a sufficient invalidation.
        self._generation = 0
        self._cache: dict[Hashable, tuple[int, Any]] = {}

    async def open(self) -> None:
        """Connect, then migrate the schema (or, with ``migrate=False``, check its version)."""
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        if not self._migrate and not self.path.exists():
            raise schema.SchemaMismatch(f"no database at {self.path}: start the API server first")
        conn = connect(self.path)
        try:
            if self._migrate:
                self.migrated_from, _ = schema.migrate(conn, seed_options=self._seed_options)
            else:
                self.migrated_from = schema.require_version(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._identity = file_identity(self.path)
        if self._own_checkpoints:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = Checkpointer(self.path, connect)
            self._checkpointer.start()

    def identity_problem(self) -> str | None:
        """Return why the file at ``path`` is not the one opened (gone, replaced), or None."""
        if self._identity is None:
            return None
        now = file_identity(self.path)
        if now is None:
            return (
                f"Storage unavailable: the database file {self.path} was deleted while"
                " the server runs; restart it to recreate or restore the file"
            )
        if now != self._identity:
            return (
                f"Storage unavailable: the database file {self.path} was replaced while"
                " the server runs; restart it to use the new file"
            )
        return None

    def health(self) -> str | None:
        """Return the current storage fault as a sentence, or None when storage looks fine."""
        return self.identity_problem() or self.fault

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        if self._conn is not None:
            await self._run(self._close_sync)
            self._conn = None
        await self._thread.stop()

    def _close_sync(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self._require().close()

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The thread checkpointing this Store's WAL, when it owns its checkpoints."""
        return self._checkpointer

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the store thread."""
        return await self._run(lambda: self.read_sync(fn))

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the calling thread; storage faults become StorageUnavailable."""
        try:
            return fn(self._require())
        except sqlite3.Error as exc:
            fault = storage_fault(exc, self.path)
            if fault is None:
                raise
            raise fault from exc

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run ``fn(conn)`` in one transaction on the store thread; await the returned future.

        A plain future rather than a coroutine: one frame less on every write.
        """
        # A cancelled caller cannot stop a queued write, so the cache generation is bumped
        # when the write really ends (on_done), not when the caller gives up waiting.
        return self._thread.submit(WriteJob(fn, self._write_alone), self._written)

    def write_then(
        self,
        fn: Callable[[sqlite3.Connection], T],
        then: Callable[[sqlite3.Connection, T], U],
        *,
        single_statement: bool = False,
    ) -> asyncio.Future[U]:
        """Like ``write``, then run ``then(conn, result)`` on the store thread after the commit.

        ``then`` runs in commit order and only for committed writes: the place to keep a
        derived view (a catalog list) up to date without re-reading it inside every write.
        Writes queued together commit together and their ``then`` run after that COMMIT, so
        the connection a ``then`` gets shows the later writes of its group too: read what a
        hook needs in ``fn`` instead.
        ``single_statement``: see ``write_sync``. Await the returned future.
        """
        job = WriteJob(fn, self._write_alone, then=then, single_statement=single_statement)
        return self._thread.submit(job, self._written)

    def _write_alone(self, job: WriteJob) -> Any:
        """Run one queued write in a transaction of its own (store thread)."""
        value = self.write_sync(job.fn, single_statement=job.single_statement)
        return value if job.then is None else job.then(self._require(), value)

    def _run_batch(self, jobs: list[Callable[[], Any]]) -> list[Outcome]:
        """The store thread's batch: writes queued together commit together (commits.py)."""
        return run_batch(self, jobs)

    def _written(self) -> None:
        self._generation += 1

    async def read_cached(self, key: Hashable, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Like ``read``, but reuse the result until the next write (callers must not mutate it)."""
        hit = self._cache.get(key)
        if hit is not None and hit[0] == self._generation:
            value: T = hit[1]
            return value
        generation = self._generation
        value = await self.read(fn)
        self._cache[key] = (generation, value)
        return value

    def prime(self, key: Hashable, value: Any) -> None:
        """Cache ``value`` for ``key`` as read right after the latest write."""
        self._cache[key] = (self._generation, value)

    def write_sync(
        self, fn: Callable[[sqlite3.Connection], T], *, single_statement: bool = False
    ) -> T:
        """Run ``fn(conn)`` in one transaction on the calling thread (store thread only).

        With ``single_statement`` the caller promises that ``fn`` executes exactly one SQL
        statement: SQLite makes a single statement atomic by itself (its own transaction, with
        its triggers and foreign-key cascades), so no BEGIN and COMMIT are run around it. Each
        statement releases and retakes the GIL on this thread, and retaking it waits for a busy
        event loop: two statements fewer per write is measurably less CPU under load.
        """
        conn = self._require()
        self.before_write(conn)
        try:
            result = fn(conn) if single_statement else _in_transaction(conn, fn)
        except sqlite3.Error as exc:
            failure = self.write_failed(exc)
            if failure is exc:
                raise
            raise failure from exc
        self.committed()
        return result

    # What a group of writes needs (commits.WriteHost); store thread only.

    def write_connection(self) -> sqlite3.Connection:
        return self._require()

    def before_write(self, conn: sqlite3.Connection) -> None:
        """Refuse writes to a replaced file; complete a checkpoint when one is due."""
        # Checked once per batch of queued jobs, not per write: stat releases the GIL, which a
        # busy event loop then takes a switch interval to hand back. A file replaced between
        # two jobs of a batch is the same race as one replaced between the check and COMMIT.
        if self._identity_batch != self._thread.batches:
            self._identity_batch = self._thread.batches
            self._identity_fault = self.identity_problem()
        problem = self._identity_fault
        if problem is not None:
            self.fault = problem
            raise StorageUnavailable(problem + "; nothing was written")
        if self._checkpointer is not None and self._checkpointer.wants_finish():
            self._checkpointer.finish_on(conn)

    def write_failed(self, exc: BaseException) -> BaseException:
        """Return what the caller of a failed write gets: storage faults become a sentence."""
        if isinstance(exc, sqlite3.Error):
            fault = storage_fault(exc, self.path)
            if fault is not None:
                self.fault = fault.message
                fault.__cause__ = exc
                return fault
        return exc

    def committed(self) -> None:
        """Record a committed write transaction."""
        self.fault = None
        self.commits += 1
        if self._checkpointer is not None:
            self._checkpointer.committed()

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def _run(self, fn: Callable[[], T]) -> T:
        return await self._thread.run(fn)


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn(conn)`` inside ``BEGIN IMMEDIATE`` … ``COMMIT``; roll back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        # Also when COMMIT itself failed (disk full, busy): never leave the one connection
        # inside a transaction, or every later BEGIN would fail.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result
