"""Who may use the router: the Host check, the browser-origin policy, ``ROUTER_API_KEY``.

Same defaults and overrides as the API server: loopback Host names (plus ``ALLOWED_HOSTS``)
when bound to loopback; browser origins on loopback or of extensions unless ``CORS_ORIGIN``
says otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from provider_router.config import RouterSettings, is_loopback
from provider_router.errors import RouterError, from_http_exception
from qwenstack_core.access import LOOPBACK_HOSTS, HostOriginPolicy, bearer, token_matches
from qwenstack_core.logsetup import get_logger

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = get_logger("provider_router.http")

CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"
CORS_ALLOW_METHODS = "GET, POST, OPTIONS"
# The OpenAI API (and its prefix-less aliases) sit behind ROUTER_API_KEY; /health does not.
KEYED_PREFIXES = ("/v1/", "/chat/", "/models")


@dataclass(frozen=True, slots=True)
class AccessPolicy(HostOriginPolicy):
    """Host, origin and key checks derived once from the settings."""

    api_key: str | None

    @classmethod
    def from_settings(cls, settings: RouterSettings) -> AccessPolicy:
        return cls(
            origins=settings.cors_origins,
            check_host=is_loopback(settings.host),
            allowed_hosts=LOOPBACK_HOSTS | frozenset(settings.allowed_hosts),
            api_key=settings.api_key,
        )

    def key_valid(self, authorization: str | None) -> bool:
        return self.api_key is None or token_matches(bearer(authorization), self.api_key)


def guard(policy: AccessPolicy) -> Middleware:
    """Refuse foreign Hosts, foreign origins and missing keys; render every error as JSON."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = request.headers
        origin = headers.get("Origin")
        try:
            if not policy.host_allowed(headers.get("Host")):
                raise RouterError(403, "Host not allowed", "host_not_allowed")
            if origin is not None and not policy.origin_allowed(origin):
                raise RouterError(403, "Origin not allowed", "origin_not_allowed")
            if origin is not None and request.method == "OPTIONS":
                return _preflight(origin)
            if (
                policy.api_key is not None
                and request.path.startswith(KEYED_PREFIXES)
                and not policy.key_valid(headers.get("Authorization"))
            ):
                raise RouterError(
                    401,
                    "Missing or wrong API key: send 'Authorization: Bearer <ROUTER_API_KEY>'",
                    "invalid_api_key",
                )
            response = await handler(request)
        except RouterError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            response = from_http_exception(exc).response()
        except ConnectionError:
            raise  # the client is gone; nothing to answer
        except Exception:
            log.exception("request_failed", path=request.path)
            response = RouterError(500, "Internal error", "internal_error").response()
        return response

    return middleware


async def allow_origin(request: web.Request, response: web.StreamResponse) -> None:
    """Let an admitted browser origin read the answer (streams included: runs at prepare)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"


def _preflight(origin: str) -> web.Response:
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": CORS_ALLOW_METHODS,
            "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        },
    )
