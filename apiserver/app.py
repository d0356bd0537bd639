"""``create_app``: the aiohttp application with its services, middlewares and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from apiserver import dashboard, keys, middleware
from apiserver.api import (
    credentials,
    debug,
    docs,
    event_stats,
    health,
    history,
    models,
    providers,
    proxy,
)
from apiserver.api import settings as settings_api
from apiserver.config import Settings
from apiserver.realtime import mount as realtime
from apiserver.realtime.publisher import EventPublisher
from apiserver.security import AccessPolicy
from apiserver.services.catalog import ModelService, ProviderService
from apiserver.services.credentials import CredentialService
from apiserver.services.history import HistoryService
from apiserver.services.live_feeds import LiveFeeds
from apiserver.services.provider_checks import ProviderChecks
from apiserver.services.proxy import ProxyService, child_specs
from apiserver.services.settings import SettingsService
from apiserver.services.status import StatusService, stopped_children
from apiserver.validation import MAX_BODY
from qwenstack_core.logsetup import get_logger
from qwenstack_core.store import Store
from supervisor import SupervisorManager

log = get_logger("apiserver.app")


def create_app(
    settings: Settings, *, supervisor: SupervisorManager | None = None
) -> web.Application:
    """Build the application; services start and stop with it (``cleanup_ctx``).

    ``supervisor`` replaces the manager of the real children (the in-process tests pass one
    that runs nothing).
    """
    policy = AccessPolicy.from_settings(settings)
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[middleware.api_middleware(policy)],
    )
    app.on_response_prepare.append(middleware.decorate_response)
    app[keys.SETTINGS] = settings
    store = Store(settings.database_path, seed_options={"qwen_api_key": settings.qwen_api_key})
    events = EventPublisher()
    app[keys.STORE] = store
    app[keys.EVENTS] = events
    app[keys.PROVIDERS] = ProviderService(store, events)
    app[keys.MODELS] = ModelService(store, events)
    app[keys.CREDENTIALS] = CredentialService(store, events)
    app[keys.SETTINGS_SERVICE] = SettingsService(
        store, events, fixed={"server.port": settings.provider_router_port}
    )
    app[keys.HISTORY] = HistoryService(store)
    app[keys.STATUS] = StatusService(
        app[keys.PROVIDERS],
        app[keys.MODELS],
        app[keys.CREDENTIALS],
        app[keys.SETTINGS_SERVICE],
        events,
        stopped_children(
            provider_router_port=settings.provider_router_port,
            qwen_proxy_port=settings.qwen_proxy_port,
        ),
    )
    app[keys.PROXY] = ProxyService(
        supervisor or SupervisorManager(child_specs(settings)),
        store,
        app[keys.STATUS],
        events,
        orphan_policy=settings.orphan_policy,
    )
    app[keys.PROVIDER_CHECKS] = ProviderChecks(
        app[keys.PROVIDERS],
        qwen_proxy_port=settings.qwen_proxy_port,
        router_port=settings.provider_router_port,
        router_state=app[keys.PROXY].router_state,
    )
    app[keys.REALTIME] = realtime.create_hub(events, app[keys.STATUS], policy, settings.realtime)
    app[keys.LIVE_FEEDS] = LiveFeeds(
        store, app[keys.HISTORY], app[keys.STATUS], events, audience=app[keys.REALTIME].listened
    )
    realtime.setup(app, app[keys.REALTIME])
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_events_ctx)
    app.cleanup_ctx.append(_http_ctx)
    app.cleanup_ctx.append(_live_feeds_ctx)
    app.cleanup_ctx.append(_proxy_ctx)  # last in, first out: children stop before the store
    dashboard.setup(app)
    for module in (
        health,
        proxy,
        credentials,
        providers,
        models,
        settings_api,
        event_stats,
        history,
        docs,
    ):
        module.setup(app)
    if settings.debug_hooks:
        debug.setup(app)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[keys.STORE]
    await store.open()
    log.info("store_opened", path=str(store.path), migrated_from=store.migrated_from)
    yield
    await store.close()


async def _events_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[keys.EVENTS].start()
    yield
    await app[keys.STATUS].close()
    await app[keys.EVENTS].stop()


async def _live_feeds_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[keys.LIVE_FEEDS].start()
    yield
    await app[keys.LIVE_FEEDS].stop()


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[keys.PROVIDER_CHECKS].close()


async def _proxy_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[keys.PROXY].restore()
    yield
    await app[keys.PROXY].shutdown()
