"""The HTTP server under the app: requests aiohttp cannot parse still get the one JSON error.

aiohttp answers a malformed request (bad method, raw bytes in the path, both Transfer-Encoding
and Content-Length, a bad chunk size, an encoding it cannot decode) itself, before any
middleware runs, with a text/plain body echoing the request line, and logs each as an ERROR
with a traceback. Here those answers are the JSON error shape and each is logged as one
warning line without a traceback, at most ``LOG_BURST`` per ``LOG_WINDOW_S``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from apiserver import errors
from apiserver.validation import unsupported_encoding
from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.http")

LOG_WINDOW_S = 60.0
LOG_BURST = 10


class WarningBudget:
    """Allow ``burst`` log lines per ``window`` seconds; count what was left out."""

    def __init__(self, burst: int = LOG_BURST, window: float = LOG_WINDOW_S) -> None:
        self._burst = burst
        self._window = window
        self._window_start = 0.0
        self._used = 0
        self.suppressed = 0

    def take(self) -> int | None:
        """Return how many lines were suppressed before this one, or None to stay silent."""
        now = time.monotonic()
        if now - self._window_start >= self._window:
            self._window_start, self._used = now, 0
        if self._used >= self._burst:
            self.suppressed += 1
            return None
        self._used += 1
        suppressed, self.suppressed = self.suppressed, 0
        return suppressed


def error_for(status: int, exc: BaseException | None) -> errors.APIError:
    """Return the API error for what aiohttp refused before routing."""
    if isinstance(exc, ContentEncodingError) and ("br" in str(exc) or "zstd" in str(exc)):
        return unsupported_encoding("br" if "br" in str(exc) else "zstd")
    if status == 413:
        return errors.PayloadTooLarge("Request is larger than the server accepts")
    if status == 504:
        return errors.APIError("Request handler timed out")
    if 400 <= status < 500:
        return errors.InvalidRequest(
            "Malformed HTTP request: the request line, headers or body framing could not be parsed",
            code="malformed_request",
        )
    return errors.APIError(errors.INTERNAL_MESSAGE)


class JsonErrorRequestHandler(RequestHandler):
    """A connection handler whose own error answers are JSON and quietly logged."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: the answer has begun, nothing to do
            raise ConnectionError("Response is sent already")
        error = error_for(status, exc)
        server = self._manager
        budget = server.warnings if isinstance(server, JsonErrorServer) else None
        suppressed = budget.take() if budget is not None else 0
        if suppressed is not None:
            log.warning(
                "malformed_request",
                status=error.status,
                code=error.code,
                reason=type(exc).__name__ if exc is not None else None,
                suppressed_since_last=suppressed,
            )
        response = web.json_response(error.body(), status=error.status)
        response.force_close()
        return response


class JsonErrorServer(web.Server):
    """``web.Server`` making ``JsonErrorRequestHandler``s; owns their log budget."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warnings = WarningBudget()

    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorAppRunner(web.AppRunner):
    """``web.AppRunner`` serving through ``JsonErrorServer``."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return JsonErrorServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
