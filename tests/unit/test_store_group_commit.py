"""Writes found queued together on the store thread commit in one transaction, each keeping its
own outcome (qwenstack_core/store/commits.py), on a real SQLite file.

Each test holds the store thread on a read while it queues writes, so that they reach the
thread together, as they do under load.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apiserver.realtime.publisher import EventPublisher
from apiserver.schemas import ModelIn, ProviderIn
from apiserver.services.catalog import ModelService, ProviderService
from qwenstack_core.errors import Conflict, NotFound
from qwenstack_core.store import Connection, Store
from qwenstack_core.store import models as model_rows
from qwenstack_core.store import providers as provider_rows


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store(tmp_path / "group.db")
    await opened.open()
    yield opened
    await opened.close()


class HeldThread:
    """Keeps the store thread busy on a read until released: writes queued meanwhile batch."""

    def __init__(self, store: Store) -> None:
        self._started = threading.Event()
        self._gate = threading.Event()
        self._read = asyncio.ensure_future(store.read(self._block))

    def _block(self, _conn: Connection) -> None:
        self._started.set()
        self._gate.wait(5)

    async def __aenter__(self) -> HeldThread:
        assert await asyncio.to_thread(self._started.wait, 5), "the store thread never ran"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._gate.set()
        await self._read


def create(model_id: str) -> Any:
    """A one-statement write creating ``model_id``."""
    return lambda c: model_rows.create_model(
        c, id=model_id, name=model_id, description=None, capabilities=[]
    )


SEEDED = {"qwen3-max", "qwen3-vl-plus", "qwen3-vl-32b", "qwen3-coder-plus"}


def ids_seen_by_another_connection(path: Path) -> set[str]:
    """The models committed, but for the ones a new database is seeded with."""
    other = sqlite3.connect(path)
    try:
        return {row[0] for row in other.execute("SELECT id FROM models")} - SEEDED
    finally:
        other.close()


async def test_queued_writes_commit_once_and_each_keeps_its_outcome(store: Store) -> None:
    await store.write(create("taken"))
    commits = store.commits
    hooks: list[str] = []

    def created_then_failed(conn: Connection) -> None:
        create("half")(conn)
        raise ValueError("a write that fails after its first statement")

    async with HeldThread(store):
        first = store.write_then(
            create("a"), lambda _c, row: hooks.append(row["id"]) or row, single_statement=True
        )
        taken = store.write_then(
            create("taken"), lambda _c, row: hooks.append("taken") or row, single_statement=True
        )
        failed = store.write(created_then_failed)
        last = store.write_then(create("c"), lambda _c, row: hooks.append(row["id"]) or row)
    outcomes = await asyncio.gather(first, taken, failed, last, return_exceptions=True)

    assert outcomes[0]["id"] == "a"
    assert isinstance(outcomes[1], Conflict)
    assert isinstance(outcomes[2], ValueError)
    assert outcomes[3]["id"] == "c"
    assert store.commits == commits + 1, "the four writes did not share one transaction"
    assert hooks == ["a", "c"], "hooks run after the commit, in order, for successes only"
    assert ids_seen_by_another_connection(store.path) == {"taken", "a", "c"}


async def test_a_read_queued_between_writes_sees_the_earlier_ones_committed(
    store: Store,
) -> None:
    async with HeldThread(store):
        write = store.write(create("a"))
        # Another connection sees only committed data: the group must commit before the read.
        read = asyncio.ensure_future(
            store.read(lambda _c: ids_seen_by_another_connection(store.path))
        )
        await asyncio.sleep(0)  # the read is queued behind the write
        later = store.write(create("b"))
    await asyncio.gather(write, later)
    assert await read == {"a"}


async def test_when_sqlite_abandons_the_transaction_the_other_writes_run_alone(
    store: Store,
) -> None:
    def abandons(conn: Connection) -> None:
        conn.execute("ROLLBACK")  # what SQLite does itself on an I/O error or a full disk
        raise RuntimeError("the transaction is gone")

    async with HeldThread(store):
        first = store.write(create("a"))
        broken = store.write(abandons)
        last = store.write(create("c"))
    outcomes = await asyncio.gather(first, broken, last, return_exceptions=True)

    assert outcomes[0]["id"] == "a" and outcomes[2]["id"] == "c"
    assert isinstance(outcomes[1], RuntimeError)
    assert ids_seen_by_another_connection(store.path) == {"a", "c"}
    await store.write(create("after"))  # the connection is not left inside a transaction


async def test_when_the_commit_fails_each_write_runs_alone_and_only_the_culprit_fails(
    store: Store,
) -> None:
    def dangling_link(conn: Connection) -> None:
        # A deferred foreign key is checked at COMMIT: the group's COMMIT fails.
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute(
            "INSERT INTO provider_models (provider_id, model_id, created_at, updated_at)"
            " VALUES ('no-provider', 'no-model', 0, 0)"
        )

    async with HeldThread(store):
        first = store.write(create("a"))
        culprit = store.write(dangling_link)
        last = store.write_then(create("c"), lambda _c, row: row, single_statement=True)
    outcomes = await asyncio.gather(first, culprit, last, return_exceptions=True)

    assert outcomes[0]["id"] == "a" and outcomes[2]["id"] == "c"
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert ids_seen_by_another_connection(store.path) == {"a", "c"}


async def test_the_model_list_counts_each_model_once_when_the_first_writes_commit_together(
    store: Store,
) -> None:
    # The service keeps the list of models from write to write; its first writes since start
    # are the ones that load it, and here they commit in one group.
    models = ModelService(store, EventPublisher())
    async with HeldThread(store):
        creates = [
            asyncio.ensure_future(models.create(ModelIn(id=f"g-{n}", name=f"G {n}")))
            for n in range(5)
        ]
        await asyncio.sleep(0)  # one loop turn: each create has queued its write (FIFO)
    await asyncio.gather(*creates)
    commits = store.commits
    await models.delete("g-2")
    listed = [m["id"] for m in await models.find(capability=None, provider=None)]
    assert store.commits == commits + 1
    assert listed == sorted(SEEDED | {"g-0", "g-1", "g-3", "g-4"})


async def test_provider_writes_committed_together_publish_the_list_in_commit_order(
    store: Store,
) -> None:
    # An enable/disable changes one row of the list the service keeps from write to write
    # (no re-read): its first writes since start commit in one group, mixed with a create
    # that reads the list itself, and every event still shows the list as of its own write.
    events = EventPublisher()
    providers = ProviderService(store, events)
    async with HeldThread(store):
        writes = [
            asyncio.ensure_future(providers.set_enabled("lm-studio-default", False)),
            asyncio.ensure_future(
                providers.create(ProviderIn(id="g-p", name="G P", type="lm-studio"))
            ),
            asyncio.ensure_future(providers.set_enabled("lm-studio-default", True)),
            asyncio.ensure_future(providers.set_enabled("g-p", False)),
            asyncio.ensure_future(providers.set_enabled("none-such", True)),
        ]
        await asyncio.sleep(0)  # one loop turn: each write has queued (FIFO)
        commits = store.commits
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert store.commits == commits + 1  # one group
    assert isinstance(outcomes[4], NotFound)
    assert (outcomes[0]["enabled"], outcomes[2]["enabled"], outcomes[3]["enabled"]) == (
        False,
        True,
        False,
    )

    def states(items: list[dict[str, Any]]) -> dict[str, bool]:
        return {p["id"]: p["enabled"] for p in items if p["id"] in ("lm-studio-default", "g-p")}

    published = events.since(0)
    assert published is not None
    assert [states(e.payload["items"]) for e in published] == [
        {"lm-studio-default": False},
        {"lm-studio-default": False, "g-p": True},
        {"lm-studio-default": True, "g-p": True},
        {"lm-studio-default": True, "g-p": False},
    ]
    other = sqlite3.connect(store.path)
    try:
        stored = [
            (row[0], bool(row[1]), row[2])
            for row in other.execute(
                "SELECT id, enabled, updated_at FROM providers ORDER BY priority DESC, name"
            )
        ]
    finally:
        other.close()
    last = published[-1].payload["items"]
    assert stored == [(p["id"], p["enabled"], p["updated_at"]) for p in last]


async def test_an_enable_keeps_no_provider_of_a_group_whose_commit_failed(store: Store) -> None:
    # The first enable/disable since start reads the provider list inside the group's
    # transaction; a provider inserted earlier in the group shows there. The group's COMMIT
    # fails (a deferred foreign key), each write runs again alone, and the insert fails again:
    # the list the service keeps, and publishes, must not have that provider.
    events = EventPublisher()
    providers = ProviderService(store, events)

    def phantom_provider(conn: Connection) -> None:
        conn.execute("PRAGMA defer_foreign_keys = ON")
        provider_rows.create_provider(
            conn, id="phantom", name="Phantom", type="lm-studio", enabled=True, priority=0,
            description=None, config={},
        )  # fmt: skip
        conn.execute(
            "INSERT INTO provider_models (provider_id, model_id, created_at, updated_at)"
            " VALUES ('phantom', 'no-model', 0, 0)"
        )

    async with HeldThread(store):
        culprit = store.write(phantom_provider)
        toggled = asyncio.ensure_future(providers.set_enabled("lm-studio-default", False))
        await asyncio.sleep(0)  # one loop turn: the toggle has queued behind the culprit
    outcomes = await asyncio.gather(culprit, toggled, return_exceptions=True)
    assert isinstance(outcomes[0], sqlite3.IntegrityError)
    assert outcomes[1]["enabled"] is False

    await providers.set_enabled("lm-studio-default", True)  # from the list it keeps
    published = events.since(0)
    assert published is not None and len(published) == 2
    for event in published:
        assert "phantom" not in {p["id"] for p in event.payload["items"]}
