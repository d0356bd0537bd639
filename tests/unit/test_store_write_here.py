"""A one-statement write runs on the event loop while the store thread is idle (Store._write_here),
on a real SQLite file: in order with queued jobs, never waiting there for another connection's
lock, with the same outcomes as on the store thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from qwenstack_core.errors import Conflict
from qwenstack_core.store import Connection, Store
from qwenstack_core.store import models as model_rows
from qwenstack_core.store.db import BUSY_TIMEOUT_MS
from tests.unit.test_store_group_commit import HeldThread, create, ids_seen_by_another_connection


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store(tmp_path / "here.db")
    await opened.open()
    yield opened
    await opened.close()


def recorded(where: list[str], write: Any) -> Any:
    """``write``, noting the name of the thread each attempt ran on."""

    def attempt(conn: Connection) -> Any:
        where.append(threading.current_thread().name)
        return write(conn)

    return attempt


def kept(hooks: list[Any]) -> Any:
    """A ``then`` hook that records the write's result and passes it on."""

    def then(_conn: Connection, value: Any) -> Any:
        hooks.append(value)
        return value

    return then


async def test_an_idle_stores_write_runs_on_the_loop_and_is_committed(store: Store) -> None:
    listed = await store.read_cached(("models",), model_rows.list_models)
    await asyncio.sleep(0)  # idle once the read's hand-over is over (the next loop step)
    commits = store.commits
    where: list[str] = []
    hooks: list[Any] = []
    done = store.write_then(recorded(where, create("here")), kept(hooks), single_statement=True)
    assert done.done(), "the write should have run before write_then returned"
    await done
    assert where == [threading.main_thread().name]
    assert hooks and hooks[0]["id"] == "here"
    assert store.commits == commits + 1
    assert ids_seen_by_another_connection(store.path) == {"here"}
    # The read cache saw the write, as after a write on the store thread.
    again = await store.read_cached(("models",), model_rows.list_models)
    assert {m["id"] for m in again} - {m["id"] for m in listed} == {"here"}


async def test_a_write_behind_a_queued_job_runs_on_the_store_thread_after_it(store: Store) -> None:
    where: list[str] = []
    async with HeldThread(store):
        write = store.write_then(recorded(where, create("queued")), kept([]), single_statement=True)
        assert not write.done() and where == []
    await write
    assert where == ["store"]
    assert ids_seen_by_another_connection(store.path) == {"queued"}


async def test_a_lock_held_elsewhere_sends_the_write_to_the_store_thread(store: Store) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction
        where: list[str] = []
        on_thread = threading.Event()

        def waited(conn: Connection) -> Any:
            if where:
                on_thread.set()
            return recorded(where, create("waited"))(conn)

        started = time.monotonic()
        write = store.write_then(waited, kept([]), single_statement=True)
        # Tried once on the loop without waiting for the lock (a wait would last the busy
        # timeout); the store thread waits for it while the loop goes on (it runs this test).
        assert time.monotonic() - started < BUSY_TIMEOUT_MS / 1000 / 2
        assert where == [threading.main_thread().name]
        assert store.fault is None  # a lock to wait for is no storage fault
        assert not write.done()
        assert await asyncio.to_thread(on_thread.wait, 5), "the store thread never tried it"
        assert not write.done()
        other.execute("COMMIT")
        await asyncio.wait_for(write, 10)
    finally:
        other.close()
    assert where == [threading.main_thread().name, "store"]
    assert store.fault is None and store.health() is None
    assert ids_seen_by_another_connection(store.path) == {"waited"}
    # The loop's connection waits for locks again on the store thread.
    assert (await store.read(lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0])) > 0


async def test_a_failing_write_on_the_loop_reports_its_own_error(store: Store) -> None:
    await store.write(create("taken"))
    await asyncio.sleep(0)  # idle once the write's hand-over is over (the next loop step)
    commits = store.commits
    where: list[str] = []
    failed = store.write_then(recorded(where, create("taken")), kept([]), single_statement=True)
    with pytest.raises(Conflict):
        await failed
    assert where == [threading.main_thread().name]
    assert store.commits == commits
    # Nothing is left open: the next write commits.
    await store.write_then(create("next"), kept([]), single_statement=True)
    assert ids_seen_by_another_connection(store.path) == {"taken", "next"}


async def test_a_write_made_before_an_earlier_writes_caller_resumed_does_not_overtake_it(
    store: Store,
) -> None:
    second: list[asyncio.Future[Any]] = []
    where: list[str] = []
    async with HeldThread(store):
        first = store.write_then(create("first"), kept([]), single_statement=True)
        # Called as the first result is handed over, before the task awaiting it resumes: the
        # place of another request's handler step that writes.
        first.add_done_callback(
            lambda _done: second.append(
                store.write_then(recorded(where, create("second")), kept([]), single_statement=True)
            )
        )

        async def first_caller() -> bool:
            await first
            return second[0].done()  # the second write's caller could go on (and publish)

        caller = asyncio.ensure_future(first_caller())
    assert await caller is False
    await second[0]
    assert where == ["store"]


async def test_a_write_before_which_a_checkpoint_is_due_goes_to_the_store_thread(
    store: Store,
) -> None:
    assert store.checkpointer is not None
    store.checkpointer.finish_wanted = True  # as the checkpointer sets it for a long WAL
    where: list[str] = []
    await store.write_then(recorded(where, create("later")), kept([]), single_statement=True)
    assert where == ["store"]
    assert ids_seen_by_another_connection(store.path) == {"later"}
