"""The request middleware: request ids, Host/Origin/token checks, errors as JSON, logging.

It also hands a write's response to the transport before the events the write published go.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from apiserver import errors
from apiserver.realtime.publisher import ResponseGate
from apiserver.security import AccessPolicy, bearer, same_origin
from apiserver.validation import check_body_headers
from qwenstack_core.errors import StoreError
from qwenstack_core.logsetup import bind_log_context, get_logger

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = get_logger("apiserver.http")
_HTTP_LOGGER = logging.getLogger("apiserver.http")  # stdlib caches its level checks

PUBLIC_API_PATHS = frozenset({"/api/health", "/api/openapi.json"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"
CORS_ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def json_error(exc: errors.APIError, request_id: str | None) -> web.Response:
    """Render an APIError in the one error shape."""
    headers = {"X-Request-ID": request_id} if request_id else None
    return web.json_response(exc.body(), status=exc.status, headers=headers)


def _from_http_exception(exc: web.HTTPException) -> errors.APIError:
    return _from_status(exc.status, exc.reason)


def _from_status(status: int, reason: str | None = None) -> errors.APIError:
    if status in (403, 404):  # 403: a directory under /static/ (no listings): not a resource
        return errors.NotFound("Route not found", code="route_not_found")
    if status == 405:
        return errors.MethodNotAllowed("Method not allowed for this route")
    if status == 413:
        return errors.PayloadTooLarge("Request body is larger than 1 MiB")
    if status == 415:
        return errors.UnsupportedMediaType("Request body must be application/json")
    if 400 <= status < 500:
        return errors.InvalidRequest(reason or "Bad request", code="bad_request")
    return errors.APIError(errors.INTERNAL_MESSAGE)


def api_middleware(policy: AccessPolicy) -> Middleware:
    """The one request middleware: every step of a request in one layer.

    A request id in every log line; Host, Origin, CORS preflight, API token and body headers
    checked (``access_checked``); a write's response handed to the transport before the events
    it published go (``_hand_off``); every error in the one JSON shape; the outcome logged.
    One layer rather than one per step: each layer costs every request a coroutine and an
    await more (about 3% of a write's CPU for two of them).
    """
    # Unique per daemon run without a syscall per request (uuid4 reads os.urandom).
    prefix = f"{os.getpid():x}{int(time.time()):x}"
    counter = itertools.count(1)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request.headers.get("X-Request-ID", "")
        if not (request_id and len(request_id) <= 128 and _REQUEST_ID.fullmatch(request_id)):
            request_id = f"{prefix}-{next(counter)}"  # only safe ids are echoed back
        request[REQUEST_ID] = request_id
        bind_log_context(request_id=request_id, method=request.method, path=request.path)
        started = time.perf_counter()
        response: web.StreamResponse
        try:
            preflight = access_checked(policy, request)
            if preflight is not None:
                response = preflight
            elif request.method in WRITE_METHODS and request.path.startswith("/api/"):
                with ResponseGate() as gate:
                    response = await handler(request)
                    await _hand_off(request, response, gate)
            else:
                response = await handler(request)
        except errors.APIError as exc:
            response = json_error(exc, request_id)
        except StoreError as exc:
            response = json_error(errors.from_store(exc), request_id)
        except web.HTTPException as exc:
            if exc.status < 400:  # redirects and the like pass through untouched
                raise
            response = json_error(_from_http_exception(exc), request_id)
            if "Allow" in exc.headers:  # RFC 9110: a 405 names the allowed methods
                response.headers["Allow"] = exc.headers["Allow"]
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("request_failed")
            response = web.json_response(errors.internal_error(request_id), status=500)
        status = response.status
        if (
            status >= 400
            and not response.prepared
            and response.content_type != "application/json"
            and not request.path.startswith("/socket.io")
        ):
            # An error answered (not raised) by aiohttp itself: still the one error shape.
            response = json_error(_from_status(status, response.reason), request_id)
        level = _LEVELS["warning" if status >= 500 else "info" if status >= 400 else "debug"]
        if _HTTP_LOGGER.isEnabledFor(level):  # the same check structlog's filter makes, minus
            log.log(  # building the event dict of a line nobody sees (debug, on every 2xx)
                level,
                "request_finished",
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        return response

    return middleware


_LEVELS = {"debug": 10, "info": 20, "warning": 30}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=/-]+")
REQUEST_ID = web.RequestKey("request_id", str)
CORS_HEADERS = web.RequestKey("cors_headers", dict[str, str])


async def decorate_response(request: web.Request, response: web.StreamResponse) -> None:
    """Add the request id and CORS headers to every response (``on_response_prepare``)."""
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers["X-Request-ID"] = request_id
    cors = request.get(CORS_HEADERS)
    if cors:
        response.headers.update(cors)


def access_checked(policy: AccessPolicy, request: web.Request) -> web.Response | None:
    """Check where a request comes from and that it may be made; None when it may go on.

    Raises APIError for a foreign Host or Origin, a missing API token or bad body headers;
    returns the answer to a CORS preflight.
    """
    if not policy.host_allowed(request.headers.get("Host")):
        raise errors.Forbidden("Host header not allowed", code="host_not_allowed")
    path = request.path
    origin = request.headers.get("Origin")
    foreign = bool(origin) and not same_origin(origin or "", request.headers.get("Host"))
    if foreign and not (origin and origin.isascii() and policy.origin_allowed(origin)):
        # Also for Socket.IO: Engine.IO would refuse it with a bare JSON string.
        raise errors.Forbidden("Origin not allowed", code="origin_not_allowed")
    if path.startswith("/socket.io"):
        return None  # Engine.IO applies the token and CORS headers
    if foreign and origin:
        cors_headers = request[CORS_HEADERS] = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Expose-Headers": "X-Request-ID",
            "Vary": "Origin",
        }
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            cors_headers["Access-Control-Allow-Methods"] = CORS_ALLOW_METHODS
            cors_headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
            cors_headers["Access-Control-Max-Age"] = "600"
            return web.Response(status=204)
    if (
        path.startswith("/api/")
        and path not in PUBLIC_API_PATHS
        and not policy.token_valid(bearer(request.headers.get("Authorization")))
    ):
        raise errors.Unauthorized(
            "Missing or invalid API token: send 'Authorization: Bearer <API_TOKEN>'"
        )
    if request.method in WRITE_METHODS and path.startswith("/api/"):
        check_body_headers(request)  # also for routes that never read their body
    return None


async def _hand_off(request: web.Request, response: web.StreamResponse, gate: ResponseGate) -> None:
    """Hand a write's response to the transport, then release the events it published.

    Only the hand-off is awaited, not the client reading the response: a client that does not
    read an 11 MB answer must not hold up the events of every other write.
    """
    if response.prepared:
        return  # the handler sent it itself; the gate opens when the request ends
    if _sends_at_once(request, response):
        await _send(request, response)  # in the transport when this returns
        gate.release()
        return
    sending = asyncio.ensure_future(_send(request, response))
    await _handed_off(request, sending)
    gate.release()  # the response is in the transport: events may go
    await sending


# A body this small written to a transport with nothing buffered cannot reach the transport's
# high-water mark (64 KiB), so writing it never waits for the client to read.
DIRECT_SEND_MAX = 16 * 1024


def _sends_at_once(request: web.Request, response: web.StreamResponse) -> bool:
    """Return True when sending ``response`` cannot wait on the client (a small, plain body)."""
    transport = request.transport
    body = response.body if isinstance(response, web.Response) else None
    return (
        transport is not None
        and isinstance(body, bytes)
        and len(body) <= DIRECT_SEND_MAX
        and not response.compression
        and transport.get_write_buffer_size() == 0
    )


async def _send(request: web.Request, response: web.StreamResponse) -> None:
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionResetError:
        # The write is committed and its events go out; only this answer is lost.
        log.info("client_disconnected_before_response", status=response.status)


async def _handed_off(request: web.Request, sending: asyncio.Future[None]) -> None:
    """Return once the response's bytes are in the transport (sent, or waiting to drain)."""
    transport = request.transport
    for _ in range(100):  # a few loop turns; body compression may take some
        await asyncio.sleep(0)
        if sending.done() or transport is None or transport.get_write_buffer_size() > 0:
            return
