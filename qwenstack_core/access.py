"""Who may talk to a program of the stack: the Host and browser-origin policy, bearer tokens.

The daemon and the provider-router apply the same rules (each in its own aiohttp middleware):
when bound to loopback, only loopback Host names (plus ``ALLOWED_HOSTS``) are served, which
defeats DNS rebinding; browser pages may call only from loopback or browser-extension origins
unless ``CORS_ORIGIN`` lists others. Pure policy: no web framework here.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
EXTENSION_SCHEMES = frozenset(
    {"chrome-extension", "moz-extension", "safari-web-extension", "ms-browser-extension"}
)


def host_name(value: str) -> str | None:
    """Return the host part of a ``Host`` header value (no port, no brackets), lower-case."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else None
    return value.partition(":")[0] if value.count(":") <= 1 else value


@dataclass(frozen=True, slots=True)
class HostOriginPolicy:
    """Host and origin checks derived once from a program's settings."""

    origins: tuple[str, ...] | None  # None = default policy (loopback + extensions)
    check_host: bool  # only when bound to loopback: a public bind has no fixed name
    allowed_hosts: frozenset[str]

    def origin_allowed(self, origin: str) -> bool:
        """Return True when a browser page of ``origin`` may call the program."""
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
        host = host_name(host_header or "")
        return host is not None and host in self.allowed_hosts


def bearer(header: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer …`` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def token_matches(presented: str | None, expected: str) -> bool:
    """Compare a presented token with the expected one in constant time."""
    # Header bytes that are not UTF-8 arrive as surrogate escapes: compare them as the
    # bytes they were (never equal to the token), instead of failing to encode them.
    return presented is not None and hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"), expected.encode()
    )
