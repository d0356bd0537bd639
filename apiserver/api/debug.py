"""/api/debug: test hooks, mounted only with APISERVER_DEBUG_HOOKS=1 (never in normal use)."""

from __future__ import annotations

import time

from aiohttp import web

from apiserver.errors import InvalidRequest
from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.debug")

MAX_BLOCK_S = 30.0


async def block_loop(request: web.Request) -> web.Response:
    """Block the event loop for ``?seconds=`` (the systemd watchdog test's hung daemon)."""
    try:
        seconds = float(request.query.get("seconds", "1"))
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_BLOCK_S:
        raise InvalidRequest(f"seconds must be in (0, {MAX_BLOCK_S:g}]")
    log.warning("event_loop_blocking", seconds=seconds)
    # Deliberately synchronous: nothing else runs on the loop meanwhile.
    time.sleep(seconds)  # noqa: ASYNC251
    return web.json_response({"blocked": seconds})


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_post("/api/debug/block-loop", block_loop)
