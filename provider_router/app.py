"""``create_app``: the router's aiohttp application; its parts start and stop with it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from provider_router import access, api
from provider_router.catalog import LiveCatalog
from provider_router.config import RouterSettings
from provider_router.forward import Forwarder
from provider_router.history import HistoryRecorder
from provider_router.keys import CATALOG, CHAT, FORWARDER, HISTORY, SETTINGS
from provider_router.routing import build_table
from provider_router.service import ChatService
from qwenstack_core.logsetup import get_logger
from qwenstack_core.store import Store
from qwenstack_core.store.change_probe import ChangeProbe

log = get_logger("provider_router.app")


def create_app(settings: RouterSettings) -> web.Application:
    """Build the application from ``settings``."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[access.guard(access.AccessPolicy.from_settings(settings))],
    )
    app.on_response_prepare.append(access.allow_origin)
    app[SETTINGS] = settings

    # Two stores, two threads: routing reads never queue behind a history batch.
    routing_store = Store(settings.database_path, migrate=False)
    history_store = Store(settings.database_path, migrate=False)
    catalog = LiveCatalog(
        routing_store,
        ChangeProbe(settings.database_path),
        lambda snapshot: build_table(snapshot, qwen_proxy_port=settings.qwen_proxy_port),
    )

    def retention() -> tuple[int, int]:
        table = catalog.last
        values = table.settings if table is not None else {}
        rows, days = values.get("history.maxRows"), values.get("history.maxAgeDays")
        return (
            rows if isinstance(rows, int) and rows > 0 else 10_000,
            days if isinstance(days, int) and days > 0 else 30,
        )

    history = HistoryRecorder(
        history_store,
        retention,
        flush_interval=settings.history_flush_interval,
        prune_interval=settings.history_prune_interval,
    )
    app[CATALOG] = catalog
    app[FORWARDER] = Forwarder()
    app[HISTORY] = history
    app[CHAT] = ChatService(catalog, app[FORWARDER], history)

    async def stores(app: web.Application) -> AsyncIterator[None]:
        await routing_store.open()
        await history_store.open()
        try:
            await catalog.open()
            await app[FORWARDER].open()
            history.start()
            yield
        finally:
            await history.close()
            await app[FORWARDER].close()
            catalog.close()
            await history_store.close()
            await routing_store.close()

    app.cleanup_ctx.append(stores)
    api.setup(app)
    return app
