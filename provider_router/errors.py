"""Errors in the OpenAI shape: ``{"error": {"message", "type", "code", "param"}}``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    502: "upstream_error",
    503: "service_unavailable",
}


class RouterError(Exception):
    """An answer in the OpenAI error shape; ``extra`` adds fields next to ``message``."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        param: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": _TYPES.get(self.status, "api_error"),
            "code": self.code,
            "param": self.param,
        }
        error.update(self.extra)
        return {"error": error}

    def response(self) -> web.Response:
        """Render as a JSON response."""
        return web.Response(
            body=json.dumps(self.body()).encode(),
            status=self.status,
            content_type="application/json",
            headers=self.headers,
        )


def invalid(
    message: str, *, param: str | None = None, code: str = "invalid_request"
) -> RouterError:
    """Return a 400 about the request body."""
    return RouterError(400, message, code, param=param)


def from_http_exception(exc: web.HTTPException) -> RouterError:
    """Map aiohttp's own errors (unknown route, wrong method, body too large) to our shape."""
    status = exc.status
    if status == 404:
        return RouterError(404, "Route not found", "route_not_found")
    if status == 405:
        return RouterError(405, "Method not allowed for this route", "method_not_allowed")
    if status == 413:
        return RouterError(413, "Request body is too large", "payload_too_large")
    if 400 <= status < 500:
        return RouterError(status, exc.reason or "Bad request", "bad_request")
    return RouterError(500, "Internal error", "internal_error")


def sse_error_event(message: str, code: str) -> bytes:
    """Return the SSE event that ends a stream that failed after it started, then ``[DONE]``."""
    body = {"error": {"message": message, "type": "upstream_error", "code": code, "param": None}}
    return b"data: " + json.dumps(body).encode() + b"\n\ndata: [DONE]\n\n"
