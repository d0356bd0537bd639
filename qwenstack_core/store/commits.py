"""Group commit: the writes found queued together on the store thread share one transaction.

Under load the store thread takes several jobs at once (a batch, worker.py). Committed one by
one, every write paid a WAL append of the pages it touched, and the checkpoint a copy of them;
committed together, pages the writes share (a table's last leaf, its index) are written once.
A write is acknowledged only once its batch has committed (results reach the event loop after
the whole batch has run), so nothing acknowledged can be lost, and each write keeps its own
outcome:

- a one-statement write (``single_statement``) is atomic by itself inside the transaction: a
  failing statement (a taken id) is undone by SQLite alone, the other writes stay;
- any other write runs inside a SAVEPOINT and is rolled back to it when it fails;
- when SQLite abandons the whole transaction (an I/O error, a full disk) or COMMIT fails, the
  writes of the group run again, each in a transaction of its own, and each reports its own
  outcome: none of them had been acknowledged;
- ``then`` hooks run after the COMMIT, in order, for the writes that succeeded.

Any other job (a read) ends the group before it runs: it must see the writes queued before it
committed, never a transaction that might still roll back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Protocol

from qwenstack_core.store.worker import Outcome, run_one


class WriteHost(Protocol):
    """What a group of writes needs from the Store that owns the connection."""

    def write_connection(self) -> sqlite3.Connection: ...

    def before_write(self, conn: sqlite3.Connection) -> None:
        """Prepare a write transaction; raise when no write may run now."""

    def write_failed(self, exc: BaseException) -> BaseException:
        """Return the exception the caller of a failed write gets (storage faults named)."""

    def committed(self) -> None:
        """Record a committed write transaction."""


class WriteJob:
    """One write queued for the store thread; called alone, it is a transaction of its own."""

    __slots__ = ("fn", "then", "single_statement", "_alone")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        alone: Callable[[WriteJob], Any],
        *,
        then: Callable[[sqlite3.Connection, Any], Any] | None = None,
        single_statement: bool = False,
    ) -> None:
        self.fn = fn
        self.then = then
        self.single_statement = single_statement
        self._alone = alone

    def __call__(self) -> Any:
        return self._alone(self)


def run_batch(host: WriteHost, jobs: list[Callable[[], Any]]) -> list[Outcome]:
    """Run one batch of the store thread: consecutive writes committed together, in order."""
    outcomes: list[Outcome] = []
    group: list[WriteJob] = []
    for job in jobs:
        if isinstance(job, WriteJob):
            group.append(job)
            continue
        if group:
            outcomes += run_group(host, group)
            group = []
        outcomes.append(run_one(job))
    if group:
        outcomes += run_group(host, group)
    return outcomes


def run_group(host: WriteHost, group: list[WriteJob]) -> list[Outcome]:
    """Run ``group`` in one transaction (see the module's docstring); one outcome per write."""
    if len(group) == 1:
        return [run_one(group[0])]
    conn = host.write_connection()
    try:
        host.before_write(conn)
        conn.execute("BEGIN IMMEDIATE")
    except Exception:
        return [run_one(job) for job in group]  # each meets the fault alone and reports it
    outcomes: list[Outcome] = []
    for done, job in enumerate(group):
        try:
            value = job.fn(conn) if job.single_statement else _in_savepoint(conn, job.fn)
        except BaseException as exc:
            if not conn.in_transaction:  # SQLite rolled back the whole transaction
                return [
                    *(run_one(earlier) for earlier in group[:done]),
                    (None, host.write_failed(exc)),
                    *run_group(host, group[done + 1 :]),
                ]
            outcomes.append((None, host.write_failed(exc)))
        else:
            outcomes.append((value, None))
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [run_one(job) for job in group]
    host.committed()
    return [_then(conn, job, outcome) for job, outcome in zip(group, outcomes, strict=True)]


def _then(conn: sqlite3.Connection, job: WriteJob, outcome: Outcome) -> Outcome:
    value, exc = outcome
    if exc is not None or job.then is None:
        return outcome
    try:
        return job.then(conn, value), None
    except BaseException as then_exc:
        return None, then_exc


def _in_savepoint(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run ``fn(conn)`` inside a SAVEPOINT of the open transaction; undo it if it fails."""
    conn.execute("SAVEPOINT write")
    try:
        result = fn(conn)
        conn.execute("RELEASE write")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK TO write")
                conn.execute("RELEASE write")
            except sqlite3.Error:
                conn.execute("ROLLBACK")  # the group runs again, each write alone
        raise
    return result
