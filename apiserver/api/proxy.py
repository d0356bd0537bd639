"""/api/proxy: start, stop and watch the supervised children."""

from __future__ import annotations

from aiohttp import web

from apiserver.keys import PROXY
from apiserver.schema_types import parse_query
from apiserver.schemas import LogsQuery, StartQuery


def _child(request: web.Request) -> str:
    return request.match_info["child"]


async def status(request: web.Request) -> web.Response:
    """Return the same object as the ``proxy:status`` event."""
    return web.json_response(await request.app[PROXY].status())


async def start(request: web.Request) -> web.Response:
    """Start both children; ``?wait=false`` answers at once."""
    wait = parse_query(StartQuery, request.query).wait
    return web.json_response(await request.app[PROXY].start(wait=wait is not False))


async def stop(request: web.Request) -> web.Response:
    """Stop both children."""
    return web.json_response(await request.app[PROXY].stop())


async def restart(request: web.Request) -> web.Response:
    """Restart both children."""
    return web.json_response(await request.app[PROXY].restart())


async def start_child(request: web.Request) -> web.Response:
    """Start one child."""
    return web.json_response(await request.app[PROXY].start_child(_child(request)))


async def stop_child(request: web.Request) -> web.Response:
    """Stop one child."""
    return web.json_response(await request.app[PROXY].stop_child(_child(request)))


async def restart_child(request: web.Request) -> web.Response:
    """Restart one child."""
    return web.json_response(await request.app[PROXY].restart_child(_child(request)))


async def logs(request: web.Request) -> web.Response:
    """Return a child's recent output lines."""
    child = _child(request)
    lines = parse_query(LogsQuery, request.query).lines
    return web.json_response({"child": child, "lines": request.app[PROXY].logs(child, lines)})


def setup(app: web.Application) -> None:
    """Register the routes."""
    r = app.router
    r.add_get("/api/proxy/status", status)
    r.add_post("/api/proxy/start", start)
    r.add_post("/api/proxy/stop", stop)
    r.add_post("/api/proxy/restart", restart)
    r.add_post("/api/proxy/{child}/start", start_child)
    r.add_post("/api/proxy/{child}/stop", stop_child)
    r.add_post("/api/proxy/{child}/restart", restart_child)
    r.add_get("/api/proxy/{child}/logs", logs)
