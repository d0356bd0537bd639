"""Typed application keys: how handlers reach the services (no module globals)."""

from __future__ import annotations

from aiohttp import web

from apiserver.config import Settings
from apiserver.realtime.hub import Hub
from apiserver.realtime.publisher import EventPublisher
from apiserver.services.catalog import ModelService, ProviderService
from apiserver.services.credentials import CredentialService
from apiserver.services.history import HistoryService
from apiserver.services.live_feeds import LiveFeeds
from apiserver.services.provider_checks import ProviderChecks
from apiserver.services.proxy import ProxyService
from apiserver.services.settings import SettingsService
from apiserver.services.status import StatusService
from qwenstack_core.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
EVENTS = web.AppKey("events", EventPublisher)
PROVIDERS = web.AppKey("providers", ProviderService)
MODELS = web.AppKey("models", ModelService)
CREDENTIALS = web.AppKey("credentials", CredentialService)
SETTINGS_SERVICE = web.AppKey("settings_service", SettingsService)
PROVIDER_CHECKS = web.AppKey("provider_checks", ProviderChecks)
STATUS = web.AppKey("status", StatusService)
REALTIME = web.AppKey("realtime", Hub)
HISTORY = web.AppKey("history", HistoryService)
PROXY = web.AppKey("proxy", ProxyService)
LIVE_FEEDS = web.AppKey("live_feeds", LiveFeeds)
