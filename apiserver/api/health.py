"""GET /api/health."""

from __future__ import annotations

from aiohttp import web

from apiserver import __version__
from apiserver.events import iso_now


async def health(_request: web.Request) -> web.Response:
    """Answer that the daemon is up (no token needed, no database touched)."""
    return web.json_response(
        {"status": "ok", "service": "api-server", "version": __version__, "timestamp": iso_now()}
    )


def setup(app: web.Application) -> None:
    """Register the route."""
    app.router.add_get("/api/health", health)
