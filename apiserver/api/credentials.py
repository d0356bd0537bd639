"""/api/qwen/credentials: write-only secrets, readable status."""

from __future__ import annotations

from aiohttp import web

from apiserver.keys import CREDENTIALS
from apiserver.schema_types import parse_body
from apiserver.schemas import CredentialsIn
from apiserver.validation import read_json


async def save(request: web.Request) -> web.Response:
    """Replace the stored credentials."""
    body = parse_body(CredentialsIn, await read_json(request))
    status = await request.app[CREDENTIALS].save(body)
    return web.json_response(
        {
            "success": True,
            "message": "Qwen credentials updated successfully",
            "expiresAt": status["expiresAt"],
        }
    )


async def status(request: web.Request) -> web.Response:
    """Describe the stored credentials without revealing them."""
    return web.json_response(await request.app[CREDENTIALS].status())


async def delete(request: web.Request) -> web.Response:
    """Delete the stored credentials."""
    deleted = await request.app[CREDENTIALS].delete()
    message = "Qwen credentials deleted" if deleted else "No credentials to delete"
    return web.json_response({"success": True, "message": message, "deleted": deleted})


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_post("/api/qwen/credentials", save)
    app.router.add_get("/api/qwen/credentials", status)
    app.router.add_delete("/api/qwen/credentials", delete)
