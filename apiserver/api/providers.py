"""/api/providers: providers, their configuration and their model links."""

from __future__ import annotations

from aiohttp import web

from apiserver import errors
from apiserver.keys import PROVIDER_CHECKS, PROVIDERS
from apiserver.schema_types import parse_body, parse_query
from apiserver.schemas import (
    CONFIG_KEY,
    CONFIG_KEY_RULE,
    ConfigIn,
    ConfigValueIn,
    LinkIn,
    ProviderChanges,
    ProviderConfig,
    ProviderIn,
    ProviderQuery,
)
from apiserver.services.catalog import with_dropped
from apiserver.validation import path_id, read_json


def _provider_id(request: web.Request) -> str:
    return path_id(request, "provider_id", code="provider_not_found", what="Provider")


def _model_id(request: web.Request) -> str:
    return path_id(request, "model_id", code="model_not_linked", what="Linked model")


async def list_providers(request: web.Request) -> web.Response:
    """List providers by priority, optionally filtered by type and enabled."""
    query = parse_query(ProviderQuery, request.query)
    items = await request.app[PROVIDERS].find(type_=query.type, enabled=query.enabled)
    return web.json_response({"providers": items, "total": len(items)})


async def get_provider(request: web.Request) -> web.Response:
    """Return a provider with its (masked) config and linked models."""
    return web.json_response(await request.app[PROVIDERS].get(_provider_id(request)))


async def create_provider(request: web.Request) -> web.Response:
    """Create a provider."""
    body = parse_body(ProviderIn, await read_json(request))
    return web.json_response(await request.app[PROVIDERS].create(body), status=201)


async def update_provider(request: web.Request) -> web.Response:
    """Change provider fields."""
    provider_id = _provider_id(request)
    changes = parse_body(ProviderChanges, await read_json(request)).changes()
    return web.json_response(await request.app[PROVIDERS].update(provider_id, changes))


async def delete_provider(request: web.Request) -> web.Response:
    """Delete a provider with its configuration and links."""
    await request.app[PROVIDERS].delete(_provider_id(request))
    return web.json_response({"success": True, "message": "Provider deleted"})


async def enable_provider(request: web.Request) -> web.Response:
    """Enable a provider."""
    provider = await request.app[PROVIDERS].set_enabled(_provider_id(request), True)
    return web.json_response({**provider, "message": "Provider enabled"})


async def disable_provider(request: web.Request) -> web.Response:
    """Disable a provider."""
    provider = await request.app[PROVIDERS].set_enabled(_provider_id(request), False)
    return web.json_response({**provider, "message": "Provider disabled"})


async def test_provider(request: web.Request) -> web.Response:
    """Call the provider's model list from the daemon."""
    return web.json_response(await request.app[PROVIDER_CHECKS].test(_provider_id(request)))


async def reload_provider(request: web.Request) -> web.Response:
    """Make a running provider-router re-read the provider."""
    return web.json_response(await request.app[PROVIDER_CHECKS].reload(_provider_id(request)))


# -- configuration -------------------------------------------------------------------------


def _config_key(request: web.Request) -> str:
    key = request.match_info["key"]
    if not CONFIG_KEY.match(key):
        raise errors.NotFound(f"Configuration key '{key}' not found", code="config_key_not_found")
    return key


async def get_config(request: web.Request) -> web.Response:
    """Return a provider's configuration (secrets masked)."""
    provider_id = _provider_id(request)
    config = await request.app[PROVIDERS].config(provider_id)
    return web.json_response({"provider_id": provider_id, "config": config})


async def put_config(request: web.Request) -> web.Response:
    """Upsert configuration keys."""
    provider_id = _provider_id(request)
    values = parse_body(ConfigIn, await read_json(request)).config.values()
    result = await request.app[PROVIDERS].put_config(provider_id, values)
    return web.json_response({"provider_id": provider_id, **result})


async def patch_config_key(request: web.Request) -> web.Response:
    """Set one configuration key."""
    provider_id = _provider_id(request)
    key = request.match_info["key"]
    body = parse_body(ConfigValueIn, await read_json(request))
    if not CONFIG_KEY.match(key):
        raise errors.invalid_field("key", CONFIG_KEY_RULE)
    parse_body(ProviderConfig, {key: body.value}, prefix="config")  # the value, by its key
    return web.json_response(await request.app[PROVIDERS].set_config_value(provider_id, key, body))


async def delete_config_key(request: web.Request) -> web.Response:
    """Delete one configuration key."""
    dropped = await request.app[PROVIDERS].delete_config_value(
        _provider_id(request), _config_key(request)
    )
    return web.json_response(
        with_dropped({"success": True, "message": "Configuration key deleted"}, dropped)
    )


# -- model links ---------------------------------------------------------------------------


async def list_links(request: web.Request) -> web.Response:
    """List the models linked to a provider."""
    provider_id = _provider_id(request)
    models = await request.app[PROVIDERS].links(provider_id)
    return web.json_response({"provider_id": provider_id, "models": models, "total": len(models)})


async def link_model(request: web.Request) -> web.Response:
    """Link a model to a provider."""
    provider_id = _provider_id(request)
    body = parse_body(LinkIn, await read_json(request))
    return web.json_response(await request.app[PROVIDERS].link(provider_id, body), status=201)


async def unlink_model(request: web.Request) -> web.Response:
    """Remove a provider↔model link."""
    provider_id, model_id = _provider_id(request), _model_id(request)
    await request.app[PROVIDERS].unlink(provider_id, model_id)
    return web.json_response(
        {
            "success": True,
            "message": "Model unlinked from provider",
            "provider_id": provider_id,
            "model_id": model_id,
        }  # fmt: skip
    )


async def set_default_model(request: web.Request) -> web.Response:
    """Make a linked model the provider's default."""
    provider_id, model_id = _provider_id(request), _model_id(request)
    await request.app[PROVIDERS].set_default(provider_id, model_id)
    return web.json_response(
        {
            "provider_id": provider_id,
            "default_model": model_id,
            "message": "Default model updated",
        }  # fmt: skip
    )


def setup(app: web.Application) -> None:
    """Register the routes."""
    r = app.router
    r.add_get("/api/providers", list_providers)
    r.add_post("/api/providers", create_provider)
    r.add_get("/api/providers/{provider_id}", get_provider)
    r.add_put("/api/providers/{provider_id}", update_provider)
    r.add_delete("/api/providers/{provider_id}", delete_provider)
    r.add_post("/api/providers/{provider_id}/enable", enable_provider)
    r.add_post("/api/providers/{provider_id}/disable", disable_provider)
    r.add_post("/api/providers/{provider_id}/test", test_provider)
    r.add_post("/api/providers/{provider_id}/reload", reload_provider)
    r.add_get("/api/providers/{provider_id}/config", get_config)
    r.add_put("/api/providers/{provider_id}/config", put_config)
    r.add_patch("/api/providers/{provider_id}/config/{key}", patch_config_key)
    r.add_delete("/api/providers/{provider_id}/config/{key}", delete_config_key)
    r.add_get("/api/providers/{provider_id}/models", list_links)
    r.add_post("/api/providers/{provider_id}/models", link_model)
    r.add_delete("/api/providers/{provider_id}/models/{model_id}", unlink_model)
    r.add_put("/api/providers/{provider_id}/models/{model_id}/default", set_default_model)
