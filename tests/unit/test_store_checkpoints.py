"""WAL checkpoints run on the Store's own thread, never inside a commit, and bound the WAL.

Real SQLite files; the child's view is a second ``Store(path, migrate=False)`` as the children
open it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from qwenstack_core.store import Connection, Store
from qwenstack_core.store import models as model_rows
from qwenstack_core.store.checkpoint import CHECKPOINT_EVERY, RESTART_PAGES, Checkpointer


async def write_models(store: Store, first: int, count: int) -> None:
    for n in range(first, first + count):
        await store.write(
            lambda c, n=n: model_rows.create_model(
                c, id=f"m-{n}", name=f"M {n}", description="d" * 2000, capabilities=[]
            )
        )


async def checkpointed(checkpointer: Checkpointer, after: int) -> tuple[int, int, int]:
    """Wait (with a deadline) for a checkpoint run past ``after`` that copied the whole WAL."""
    async with asyncio.timeout(10):
        while True:
            result = checkpointer.last_result
            if checkpointer.checkpoints > after and result is not None and result[1] == result[2]:
                return result
            await asyncio.sleep(0.01)


async def written(store: Store) -> int:
    """Return how many models ``write_models`` wrote (the seed has models of its own)."""
    models = await store.read(model_rows.list_models)
    return sum(1 for m in models if m["id"].startswith("m-"))


def autocheckpoint(conn: Connection) -> int:
    return int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


async def test_checkpoints_are_off_the_write_path_and_children_see_every_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    store, child = Store(path), Store(path, migrate=False)
    await store.open()
    await child.open()
    try:
        assert await store.read(autocheckpoint) == 0  # no commit runs a checkpoint
        assert await child.read(autocheckpoint) == 1000  # a child keeps SQLite's own
        checkpointer = store.checkpointer
        assert checkpointer is not None and child.checkpointer is None
        before = checkpointer.checkpoints
        await write_models(store, 0, 3)
        # The child sees the commits whether or not they were copied into the file yet...
        assert await written(child) == 3
        # ...and a few commits are checkpointed on the idle timer, not only every N commits.
        await checkpointed(checkpointer, before)
        assert await written(child) == 3
    finally:
        await child.close()
        await store.close()


async def test_the_wal_does_not_grow_across_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    wal = Path(f"{path}-wal")
    store = Store(path)
    await store.open()
    try:
        checkpointer = store.checkpointer
        assert checkpointer is not None
        sizes = []
        for burst in range(4):
            done = checkpointer.checkpoints
            await write_models(store, burst * CHECKPOINT_EVERY, CHECKPOINT_EVERY)
            sizes.append((await asyncio.to_thread(wal.stat)).st_size)
            await checkpointed(checkpointer, done)
        # Once copied, the WAL is written again from its start: no burst makes it bigger
        # than the first one did (a few pages of slack for the schema's own pages).
        assert max(sizes) <= sizes[0] + 16 * 4096, sizes
        assert await written(store) == 4 * CHECKPOINT_EVERY
    finally:
        await store.close()
    reopened = Store(path, migrate=False)
    await reopened.open()
    try:
        assert await written(reopened) == 4 * CHECKPOINT_EVERY
    finally:
        await reopened.close()


async def test_the_wal_stays_bounded_under_writes_that_never_pause(tmp_path: Path) -> None:
    """A checkpoint off the write path never completes while writes keep coming; the store
    thread then completes one between two writes, and the WAL is written from its start."""
    path = tmp_path / "store.db"
    wal = Path(f"{path}-wal")
    store, child = Store(path), Store(path, migrate=False)
    await store.open()
    await child.open()
    peak = 0

    async def writer(k: int) -> None:
        nonlocal peak
        for n in range(1500):
            await store.write(
                lambda c, n=n: model_rows.create_model(
                    c, id=f"m-{k}-{n}", name="M", description="d" * 8000, capabilities=[]
                )
            )
            if n % 50 == 0:  # a child reading meanwhile
                await child.read(lambda c, n=n: model_rows.get_model(c, f"m-{k}-{n}"))
                peak = max(peak, (await asyncio.to_thread(wal.stat)).st_size)

    try:
        # ~70 MiB of WAL frames: rows of two pages and more, so that writes committed together
        # (commits.py) do not share their pages either.
        await asyncio.gather(*(writer(k) for k in range(4)))
        checkpointer = store.checkpointer
        # The writes appended ~70 MiB of frames; the store thread's checkpoints let the WAL
        # start over again and again, well before the RESTART that would make writers wait.
        assert checkpointer is not None and checkpointer.finished >= 3, checkpointer.finished
        assert peak < RESTART_PAGES * 4096 * 3 // 4, peak
        assert await written(child) == 6000
    finally:
        await child.close()
        await store.close()
