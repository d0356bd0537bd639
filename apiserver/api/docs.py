"""GET /api/openapi.json: the OpenAPI 3.1 document of this API (built once, no token needed)."""

from __future__ import annotations

import json

from aiohttp import web

from apiserver.keys import SETTINGS
from apiserver.openapi import build_document


def setup(app: web.Application) -> None:
    """Register the route, with the document built for this daemon's settings."""
    text = json.dumps(build_document(token=app[SETTINGS].api_token is not None))

    async def openapi(_request: web.Request) -> web.Response:
        """Return the OpenAPI document."""
        return web.Response(text=text, content_type="application/json")

    app.router.add_get("/api/openapi.json", openapi)
