"""Errors in the OpenAI shape ``{"error": {"message", "type", "code"}}``, and the one middleware."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from qwenstack_core.logsetup import get_logger

log = get_logger("qwen_proxy.http")

HOW_TO_PROVIDE = (
    "Sign in on chat.qwen.ai with the browser extension installed, or POST {token, cookies,"
    " expiresAt} to the API server's /api/qwen/credentials"
)


class ProxyError(Exception):
    """An error answered in the OpenAI shape; ``message`` is safe to show a client."""

    status = 500
    type = "server_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """Return the OpenAI error object."""
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


class InvalidRequest(ProxyError):
    """The client's request is malformed (400)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ModelNotFound(ProxyError):
    """The requested model is not one Qwen offers (404)."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class CredentialsMissing(ProxyError):
    """No usable Qwen credentials, or Qwen refused them (401)."""

    status = 401
    type = "authentication_error"
    code = "qwen_credentials_missing"


class UpstreamError(ProxyError):
    """Qwen failed or answered something unusable (502 unless told otherwise)."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"


class RateLimited(ProxyError):
    """Qwen kept answering 429 (429)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limited"


def error_response(error: ProxyError) -> web.Response:
    """Render ``error`` as a JSON response."""
    return web.Response(
        body=orjson.dumps(error.body()),
        status=error.status,
        content_type="application/json",
        headers=error.headers,
    )


_HTTP_CODES = {
    404: ("not_found", "invalid_request_error"),
    405: ("method_not_allowed", "invalid_request_error"),
    413: ("request_too_large", "invalid_request_error"),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure in the OpenAI error shape and log one line per request."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except ProxyError as exc:
        status = exc.status
        return error_response(exc)
    except web.HTTPException as exc:
        status = exc.status
        code, kind = _HTTP_CODES.get(exc.status, ("http_error", "invalid_request_error"))
        message = exc.reason
        if exc.status == 413:
            message = "Request body too large"
        elif exc.status == 404:
            message = f"No route {request.method} {request.path}"
        error = ProxyError(message, code=code, status=exc.status)
        error.type = kind
        return error_response(error)
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        return error_response(ProxyError("Internal error in qwen-proxy"))
    finally:
        if request.path != "/health":
            log.info(
                "request_finished",
                method=request.method,
                path=request.path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
