"""The live dashboard at ``/``: one static page from the package, driven by Socket.IO events.

No build step and nothing from outside the daemon: the page, its script and style, and the
Socket.IO browser client are files of this package served under ``/static/``. The
Content-Security-Policy allows scripts, styles and connections to the daemon's own origin only.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
PAGE = STATIC_DIR / "dashboard.html"
# A Host header as the access middleware lets it through; anything else gets no ws: source.
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def content_security_policy(host: str | None) -> str:
    """Return the page's CSP: everything from the daemon itself, nothing from anywhere else."""
    # 'self' covers ws: to the same host in CSP level 3; older engines need it spelled out.
    sockets = f" ws://{host} wss://{host}" if host and _HOST.match(host) else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'{sockets}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


async def page(request: web.Request) -> web.FileResponse:
    """Serve the dashboard page with its security headers."""
    return web.FileResponse(
        PAGE,
        headers={
            "Content-Security-Policy": content_security_policy(request.headers.get("Host")),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


def setup(app: web.Application) -> None:
    """Register ``/`` (the page's assets are served from ``/static/``)."""
    app.router.add_get("/", page)
