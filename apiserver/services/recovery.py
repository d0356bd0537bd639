"""What survives a daemon restart: recorded children (orphans) and the desired state.

At spawn each child is recorded (pid + create time + argv + port); a later daemon adopts or
stops what is still alive with the same create time, then starts the children the user wanted
running (or all of them with ``system.autoStart``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from qwenstack_core.logsetup import get_logger
from qwenstack_core.store import Connection, Store, supervision
from qwenstack_core.store import settings as setting_rows
from supervisor import ProcessExit, SpawnRecord, SupervisorManager

log = get_logger("apiserver.proxy")

DESIRED_KEY = "proxy.desired"  # {child name: bool}

Keep = Callable[[asyncio.Future[Any]], None]


class Recovery:
    """Keep the child records and the desired state, and restore both at daemon start."""

    def __init__(
        self,
        manager: SupervisorManager,
        store: Store,
        names: tuple[str, ...],
        *,
        orphan_policy: str,
        keep: Keep,
    ) -> None:
        self._manager = manager
        self._store = store
        self._names = names  # the children, in start order
        self._orphan_policy = orphan_policy
        self._keep = keep  # the owner of background tasks (awaited at shutdown)
        self._writes: set[asyncio.Future[Any]] = set()  # record writes not yet committed

    async def remember(self, wanted: dict[str, bool]) -> None:
        """Store which children the user wants running (merged into the stored wish)."""

        def update(conn: Connection) -> None:
            desired = supervision.get_state(conn, DESIRED_KEY)
            current = dict(desired) if isinstance(desired, dict) else {}
            current.update(wanted)
            supervision.set_state(conn, DESIRED_KEY, current)

        await self._store.write(update)

    async def restore(self) -> None:
        """At daemon start: adopt or stop recorded orphans, then restore the desired state."""
        records = await self._store.read(supervision.child_records)
        for record in records:
            await self._recover(record)

        def read(conn: Connection) -> tuple[object, object]:
            return (
                supervision.get_state(conn, DESIRED_KEY),
                setting_rows.all_values(conn, "system").get("system.autoStart"),
            )

        desired, auto_start = await self._store.read(read)
        wanted = [
            name
            for name in self._names
            if auto_start is True or (isinstance(desired, dict) and desired.get(name) is True)
        ]
        if wanted:
            log.info("proxy_restoring", children=wanted, auto_start=auto_start is True)
            # In the background: the daemon answers while the children come up.
            self._keep(asyncio.ensure_future(self._start_each(wanted)))

    async def _start_each(self, names: list[str]) -> None:
        for name in self._names:  # start order, whatever order ``names`` has
            if name in names:
                await self._manager.start(name)

    async def _recover(self, record: supervision.ChildRecord) -> None:
        if record.name not in self._names:
            await self._store.write(lambda c: supervision.forget_child(c, record.name, record.pid))
            return
        spec = self._manager.child(record.name).spec
        # Adopt only what the current configuration would have started; an orphan of another
        # command line or port is stopped and replaced.
        same_config = record.argv == spec.argv and record.port == spec.port
        if self._orphan_policy == "adopt" and same_config:
            ours = await self._manager.adopt(record.name, record.pid, record.create_time)
        else:
            ours = await self._manager.stop_orphan(record.name, record.pid, record.create_time)
        log.info(
            "orphan_recovered" if ours else "orphan_gone",
            child=record.name,
            pid=record.pid,
            policy=self._orphan_policy,
        )
        if not ours or self._orphan_policy == "stop":
            await self._store.write(lambda c: supervision.forget_child(c, record.name, record.pid))

    # -- records (supervisor listeners: synchronous, they only schedule the writes) ----------

    def on_spawn(self, spawn: SpawnRecord) -> None:
        """Record a spawned child so a later daemon can recognise it."""
        if spawn.create_time is None:
            return
        record = supervision.ChildRecord(
            spawn.child, spawn.pid, spawn.create_time, spawn.argv, spawn.port
        )
        self._write_soon(lambda c: supervision.record_child(c, record))

    def on_exit(self, exit_: ProcessExit) -> None:
        """Forget a child whose process (and tree) is gone."""
        self._write_soon(lambda c: supervision.forget_child(c, exit_.child, exit_.pid))

    def _write_soon(self, fn: Callable[[Connection], None]) -> None:
        # Submitted in listener order; the store thread runs writes in submission order.
        write = asyncio.ensure_future(self._store.write(fn))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        self._keep(write)

    async def flush(self) -> None:
        """Wait until the record writes scheduled so far are committed (or failed)."""
        if self._writes:
            await asyncio.wait(set(self._writes))
