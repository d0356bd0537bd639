"""/api/settings: typed values."""

from __future__ import annotations

from aiohttp import web

from apiserver.keys import SETTINGS_SERVICE
from apiserver.schema_types import parse_body, parse_query
from apiserver.schemas import BulkSettingsIn, SettingIn, SettingsQuery
from apiserver.validation import read_json


async def list_settings(request: web.Request) -> web.Response:
    """Return all settings, or one category."""
    category = parse_query(SettingsQuery, request.query).category
    values = await request.app[SETTINGS_SERVICE].all(category)
    return web.json_response({"settings": values, "category": category or "all"})


async def get_setting(request: web.Request) -> web.Response:
    """Return one setting with its metadata."""
    return web.json_response(await request.app[SETTINGS_SERVICE].get(request.match_info["key"]))


async def put_setting(request: web.Request) -> web.Response:
    """Change one setting."""
    key = request.match_info["key"]
    value = parse_body(SettingIn, await read_json(request)).value
    result = await request.app[SETTINGS_SERVICE].put(key, value)
    return web.json_response({**result, "message": f"Setting '{key}' updated"})


async def bulk_update(request: web.Request) -> web.Response:
    """Change several settings, all or nothing."""
    service = request.app[SETTINGS_SERVICE]
    keys = await service.put_many(parse_body(BulkSettingsIn, await read_json(request)).settings)
    return web.json_response(
        {
            "updated": keys,
            "requiresRestart": service.requires_restart(keys),
            "message": f"{len(keys)} settings updated",
        }  # fmt: skip
    )


async def reset_setting(request: web.Request) -> web.Response:
    """Reset a setting to its default."""
    key = request.match_info["key"]
    result = await request.app[SETTINGS_SERVICE].reset(key)
    return web.json_response({**result, "message": f"Setting '{key}' reset to its default"})


def setup(app: web.Application) -> None:
    """Register the routes."""
    r = app.router
    r.add_get("/api/settings", list_settings)
    r.add_post("/api/settings/bulk", bulk_update)
    r.add_get("/api/settings/{key}", get_setting)
    r.add_put("/api/settings/{key}", put_setting)
    r.add_delete("/api/settings/{key}", reset_setting)
