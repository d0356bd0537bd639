"""Who may talk to the daemon: the CORS origin policy, the Host check, the API token."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from apiserver.config import Settings, is_loopback

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
EXTENSION_SCHEMES = frozenset(
    {"chrome-extension", "moz-extension", "safari-web-extension", "ms-browser-extension"}
)


def _hostname(value: str) -> str | None:
    """Return the host part of a ``Host`` header value (no port, no brackets), lower-case."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else None
    host, _, _port = value.partition(":") if value.count(":") <= 1 else (value, "", "")
    return host


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Origin, Host and token checks derived once from the settings."""

    origins: tuple[str, ...] | None  # None = default policy (loopback + extensions)
    check_host: bool
    allowed_hosts: frozenset[str]
    token: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        """Build the policy for ``settings``."""
        return cls(
            origins=settings.cors_origins,
            check_host=is_loopback(settings.api_host),
            allowed_hosts=LOOPBACK_HOSTS | frozenset(settings.allowed_hosts),
            token=settings.api_token,
        )

    def origin_allowed(self, origin: str) -> bool:
        """Return True when a browser page of ``origin`` may call the API."""
        origin = origin.rstrip("/")
        if self.origins is not None:
            return "*" in self.origins or origin in self.origins
        parts = urlsplit(origin)
        if parts.scheme in EXTENSION_SCHEMES:
            return True
        return parts.scheme in ("http", "https") and (parts.hostname or "") in LOOPBACK_HOSTS

    def host_allowed(self, host_header: str | None) -> bool:
        """Return False for a Host that is not ours (DNS rebinding) when bound to loopback."""
        if not self.check_host:
            return True
        host = _hostname(host_header or "")
        return host is not None and host in self.allowed_hosts

    def token_valid(self, presented: str | None) -> bool:
        """Return True when no token is configured or ``presented`` matches it."""
        if self.token is None:
            return True
        # Header bytes that are not UTF-8 arrive as surrogate escapes: compare them as the
        # bytes they were (never equal to the token), instead of failing to encode them.
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), self.token.encode()
        )


def bearer(header: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer …`` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def same_origin(origin: str, host: str | None) -> bool:
    """Return True when ``origin`` is the daemon's own origin (the page came from us)."""
    return bool(host) and origin.rstrip("/").split("://", 1)[-1].lower() == (host or "").lower()
