"""HTTP handlers: validate, call one service method, serialise. Routes with and without /v1."""

from __future__ import annotations

import ipaddress
import json

from aiohttp import web

from provider_router.catalog import LiveCatalog
from provider_router.errors import RouterError
from provider_router.keys import CATALOG, CHAT
from qwenstack_core.logsetup import get_logger

log = get_logger("provider_router.api")

HEALTH_BODY = json.dumps({"status": "ok", "service": "provider-router"}).encode()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Forward a chat completion (stream or not) to the best provider that answers."""
    return await request.app[CHAT].complete(request)


async def list_models(request: web.Request) -> web.Response:
    """List the models linked to enabled providers, in the OpenAI list format."""
    table = await request.app[CATALOG].current()
    return web.Response(body=table.models_body, content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    """Return one served model, or 404 ``model_not_found``."""
    model_id = request.match_info["model_id"]
    table = await request.app[CATALOG].current()
    body = table.model_bodies.get(model_id)
    if body is None:
        raise RouterError(
            404,
            f"The model '{model_id}' is not served by any enabled provider",
            "model_not_found",
            param="model",
        )
    return web.Response(body=body, content_type="application/json")


async def health(_request: web.Request) -> web.Response:
    """Answer at once: no upstream call, no store access."""
    return web.Response(body=HEALTH_BODY, content_type="application/json")


def _from_loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


async def admin_reload(request: web.Request) -> web.Response:
    """Re-read providers, links and settings now (loopback clients only)."""
    if not _from_loopback(request):
        raise RouterError(403, "Only local clients may reload the router", "permission_denied")
    catalog: LiveCatalog = request.app[CATALOG]
    table = await catalog.reload()
    provider_id = None
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            raise RouterError(400, "Request body is not valid JSON", "invalid_json") from None
        if isinstance(body, dict) and isinstance(body.get("provider_id"), str):
            provider_id = body["provider_id"]
    log.info("routing_reload_requested", provider_id=provider_id)
    answer = {
        "reloaded": True,
        "provider_id": provider_id,
        "provider_active": provider_id in table.upstreams if provider_id else None,
        "enabled_providers": list(table.upstreams),
    }
    return web.json_response(answer)


def setup(app: web.Application) -> None:
    """Register the routes."""
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", chat_completions)
        app.router.add_get(f"{prefix}/models", list_models)
        app.router.add_get(f"{prefix}/models/{{model_id:.+}}", get_model)
    app.router.add_get("/health", health)
    app.router.add_post("/admin/reload", admin_reload)
