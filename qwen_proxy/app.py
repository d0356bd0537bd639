"""Build the aiohttp application: one store, one pooled upstream session, the chat service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from qwen_proxy.catalog import ModelCatalog
from qwen_proxy.config import Settings
from qwen_proxy.credentials import CredentialSource
from qwen_proxy.errors import error_middleware
from qwen_proxy.handlers import SERVICE, add_routes
from qwen_proxy.service import ChatService
from qwen_proxy.upstream import QwenClient, RetryPolicy
from qwenstack_core.logsetup import get_logger
from qwenstack_core.store import Store

log = get_logger("qwen_proxy")

SETTINGS = web.AppKey("settings", Settings)
# Conversations unused this long are forgotten; their chats stay in the user's Qwen account.
CONVERSATION_MAX_AGE_S = 30 * 24 * 3600
CONVERSATION_MAX_ROWS = 10_000


def create_app(settings: Settings) -> web.Application:
    """Return the qwen-proxy application for ``settings``."""
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    add_routes(app)
    return app


def upstream_session(settings: Settings) -> aiohttp.ClientSession:
    """Return the one pooled client session for Qwen."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30, ttl_dns_cache=300),
        # The credentials go in our own Cookie header; never keep or replay Qwen's Set-Cookie.
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=15, sock_read=settings.upstream_timeout
        ),
        auto_decompress=True,
    )


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = Store(settings.database_path, migrate=False)
    await store.open()
    session = upstream_session(settings)
    retry = RetryPolicy(settings.retry_base, settings.retry_cap, settings.max_retries)
    client = QwenClient(session, settings.base_url, retry)
    catalog = ModelCatalog(client, store, settings.models_ttl)
    service = ChatService(store, CredentialSource(store), client, catalog, retry)
    app[SERVICE] = service
    prune = asyncio.ensure_future(_prune(service))
    try:
        yield
    finally:
        prune.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await prune
        await catalog.close()
        await session.close()
        await store.close()


async def _prune(service: ChatService) -> None:
    try:
        removed = await service.prune(
            max_age_s=CONVERSATION_MAX_AGE_S, max_rows=CONVERSATION_MAX_ROWS
        )
    except Exception as exc:  # a busy database must not stop the proxy
        log.warning("conversations_prune_failed", error=repr(exc))
        return
    if removed:
        log.info("conversations_pruned", removed=removed)
