"""The live routing table: re-read from the store only when another process committed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from provider_router.errors import RouterError
from provider_router.routing import RoutingTable
from qwenstack_core.logsetup import get_logger
from qwenstack_core.store import Store
from qwenstack_core.store.change_probe import ChangeProbe
from qwenstack_core.store.routing import RoutingSnapshot, read_snapshot

log = get_logger("provider_router.catalog")

Builder = Callable[[RoutingSnapshot], RoutingTable]


class LiveCatalog:
    """Own the current routing table; every request asks it, and it re-reads on change.

    The per-request check is ``ChangeProbe.changed()`` on the event loop (a few microseconds,
    no query of any table). Only when it reports a commit by another connection (the API
    server's edits, or our own history writer) is the table read again, on the store thread;
    requests arriving meanwhile wait for that read, so the very next request after an edit
    is routed by it.
    """

    def __init__(self, store: Store, probe: ChangeProbe, build: Builder) -> None:
        self._store = store
        self._probe = probe
        self._build = build
        self._table: RoutingTable | None = None
        self._loading: asyncio.Future[RoutingTable] | None = None
        self._started = 0  # sequence of loads started; only the newest may install its table
        self.reloads = 0

    async def open(self) -> None:
        """Open the probe and read the first table."""
        self._probe.open()
        await self.reload()

    @property
    def last(self) -> RoutingTable | None:
        """Return the newest table read, without checking the store."""
        return self._table

    def close(self) -> None:
        """Close the probe's connection."""
        self._probe.close()

    async def current(self) -> RoutingTable:
        """Return the table to route the current request by."""
        if self._probe.changed():
            return await self.reload()
        loading = self._loading
        if loading is not None and not loading.done():
            return await asyncio.shield(loading)
        if self._table is None:
            return await self.reload()
        return self._table

    async def reload(self) -> RoutingTable:
        """Read the table again now (also what ``POST /admin/reload`` does)."""
        self._started += 1
        load = asyncio.ensure_future(self._load(self._started))
        self._loading = load
        # Shielded: a client that goes away must not abort a load other requests wait for.
        return await asyncio.shield(load)

    async def _load(self, sequence: int) -> RoutingTable:
        try:
            snapshot = await self._store.read(read_snapshot)
        except Exception as exc:
            log.warning("routing_reload_failed", error_class=type(exc).__name__)
            if self._table is not None:
                return self._table  # keep routing by what we knew
            raise RouterError(
                503, "The provider store cannot be read", "storage_unavailable"
            ) from None
        table = self._build(snapshot)
        if sequence == self._started or self._table is None:
            self._table = table
        self.reloads += 1
        log.debug("routing_reloaded", providers=len(table.upstreams), sequence=sequence)
        return table
