"""GET /api/health."""

from __future__ import annotations

from aiohttp import web

from apiserver import __version__
from apiserver.keys import STORE
from apiserver.realtime.publisher import iso_now


async def health(request: web.Request) -> web.Response:
    """Answer that the daemon is up, or degraded with the storage fault (no query is run)."""
    fault = request.app[STORE].health()
    body = {
        "status": "degraded" if fault else "ok",
        "service": "api-server",
        "version": __version__,
        "timestamp": iso_now(),
    }
    if fault:
        body["reason"] = fault
    return web.json_response(body)


def setup(app: web.Application) -> None:
    """Register the route."""
    app.router.add_get("/api/health", health)
