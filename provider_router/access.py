"""Who may use the router: the Host check, the browser-origin policy, ``ROUTER_API_KEY``.

Same defaults and overrides as the API server: loopback Host names (plus ``ALLOWED_HOSTS``)
when bound to loopback; browser origins on loopback or of extensions unless ``CORS_ORIGIN``
says otherwise.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from provider_router.config import RouterSettings, is_loopback
from provider_router.errors import RouterError, from_http_exception
from qwenstack_core.logsetup import get_logger

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = get_logger("provider_router.http")

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
EXTENSION_SCHEMES = frozenset(
    {"chrome-extension", "moz-extension", "safari-web-extension", "ms-browser-extension"}
)
CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"
CORS_ALLOW_METHODS = "GET, POST, OPTIONS"
# The OpenAI API (and its prefix-less aliases) sit behind ROUTER_API_KEY; /health does not.
KEYED_PREFIXES = ("/v1/", "/chat/", "/models")


def _hostname(value: str) -> str | None:
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else None
    return value.partition(":")[0] if value.count(":") <= 1 else value


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Host, origin and key checks derived once from the settings."""

    origins: tuple[str, ...] | None
    check_host: bool
    allowed_hosts: frozenset[str]
    api_key: bytes | None

    @classmethod
    def from_settings(cls, settings: RouterSettings) -> AccessPolicy:
        return cls(
            origins=settings.cors_origins,
            check_host=is_loopback(settings.host),
            allowed_hosts=LOOPBACK_HOSTS | frozenset(settings.allowed_hosts),
            api_key=settings.api_key.encode() if settings.api_key else None,
        )

    def host_allowed(self, host_header: str | None) -> bool:
        if not self.check_host:
            return True
        return _hostname(host_header or "") in self.allowed_hosts

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.rstrip("/")
        if self.origins is not None:
            return "*" in self.origins or origin in self.origins
        parts = urlsplit(origin)
        if parts.scheme in EXTENSION_SCHEMES:
            return True
        return parts.scheme in ("http", "https") and (parts.hostname or "") in LOOPBACK_HOSTS

    def key_valid(self, authorization: str | None) -> bool:
        if self.api_key is None:
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.api_key
        )


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
