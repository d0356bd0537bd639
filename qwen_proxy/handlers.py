"""HTTP handlers: validate, call the service, serialise."""

from __future__ import annotations

import orjson
from aiohttp import web

from qwen_proxy.errors import ModelNotFound
from qwen_proxy.output import stream_reply, whole_reply
from qwen_proxy.schema import parse_chat_request
from qwen_proxy.service import ChatService

SERVICE = web.AppKey("service", ChatService)

_HEALTH = orjson.dumps({"status": "ok", "service": "qwen-proxy"})


def _json(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def health(_request: web.Request) -> web.Response:
    """Answer the liveness probe without touching the store or Qwen."""
    return web.Response(body=_HEALTH, content_type="application/json")


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: Qwen's active models (the stored catalogue when Qwen is away)."""
    service = request.app[SERVICE]
    models = await service.catalog.models(await service.optional_credentials())
    return _json({"object": "list", "data": models})


async def get_model(request: web.Request) -> web.Response:
    """``GET /v1/models/{id}``."""
    service = request.app[SERVICE]
    model_id = request.match_info["model"]
    models = await service.catalog.models(await service.optional_credentials())
    for model in models:
        if model["id"] == model_id:
            return _json(model)
    raise ModelNotFound(f"The model '{model_id}' does not exist on Qwen", param="model")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``, stream or not."""
    chat = parse_chat_request(await request.read())
    service = request.app[SERVICE]
    if chat.stream:
        return await stream_reply(request, await service.start(chat), service)
    return await whole_reply(*await service.collect(chat), service)


def add_routes(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    app.router.add_post("/v1/chat/completions", chat_completions)
