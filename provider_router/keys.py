"""Typed application keys (no module globals)."""

from __future__ import annotations

from aiohttp import web

from provider_router.catalog import LiveCatalog
from provider_router.config import RouterSettings
from provider_router.forward import Forwarder
from provider_router.history import HistoryRecorder
from provider_router.service import ChatService

SETTINGS = web.AppKey("settings", RouterSettings)
CATALOG = web.AppKey("catalog", LiveCatalog)
FORWARDER = web.AppKey("forwarder", Forwarder)
HISTORY = web.AppKey("history", HistoryRecorder)
CHAT = web.AppKey("chat", ChatService)
