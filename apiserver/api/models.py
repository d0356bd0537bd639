"""/api/models."""

from __future__ import annotations

import json

from aiohttp import web

from apiserver.keys import MODELS
from apiserver.schema_types import parse_body, parse_query
from apiserver.schemas import ModelChanges, ModelIn, ModelQuery
from apiserver.validation import path_id, read_json

# The same answer for every deletion: encoded once.
_DELETED = json.dumps({"success": True, "message": "Model deleted"}).encode()


def _model_id(request: web.Request) -> str:
    return path_id(request, "model_id", code="model_not_found", what="Model")


async def list_models(request: web.Request) -> web.Response:
    """List models, optionally by capability or linked provider."""
    query = parse_query(ModelQuery, request.query)
    items = await request.app[MODELS].find(capability=query.capability, provider=query.provider)
    return web.json_response({"models": items, "total": len(items)})


async def get_model(request: web.Request) -> web.Response:
    """Return one model with its providers."""
    return web.json_response({"model": await request.app[MODELS].get(_model_id(request))})


async def create_model(request: web.Request) -> web.Response:
    """Create a model."""
    body = parse_body(ModelIn, await read_json(request))
    return web.json_response({"model": await request.app[MODELS].create(body)}, status=201)


async def update_model(request: web.Request) -> web.Response:
    """Change a model's name, description or capabilities."""
    model_id = _model_id(request)
    changes = parse_body(ModelChanges, await read_json(request)).changes()
    return web.json_response({"model": await request.app[MODELS].update(model_id, changes)})


async def delete_model(request: web.Request) -> web.Response:
    """Delete a model and its links."""
    await request.app[MODELS].delete(_model_id(request))
    return web.Response(body=_DELETED, content_type="application/json", charset="utf-8")


def setup(app: web.Application) -> None:
    """Register the routes."""
    r = app.router
    r.add_get("/api/models", list_models)
    r.add_post("/api/models", create_model)
    r.add_get("/api/models/{model_id}", get_model)
    r.add_put("/api/models/{model_id}", update_model)
    r.add_delete("/api/models/{model_id}", delete_model)
