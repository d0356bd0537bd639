"""GET /api/events/stats: Socket.IO clients and event counters."""

from __future__ import annotations

from aiohttp import web

from apiserver.keys import REALTIME


async def stats(request: web.Request) -> web.Response:
    """Return connected clients (by transport), events emitted per name and the last seq."""
    return web.json_response(request.app[REALTIME].stats())


def setup(app: web.Application) -> None:
    """Register the route."""
    app.router.add_get("/api/events/stats", stats)
