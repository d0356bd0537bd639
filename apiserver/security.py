"""Who may talk to the daemon: the CORS origin policy, the Host check, the API token."""

from __future__ import annotations

from dataclasses import dataclass

from apiserver.config import Settings, is_loopback
from qwenstack_core.access import LOOPBACK_HOSTS, HostOriginPolicy, bearer, token_matches

__all__ = ["AccessPolicy", "bearer", "same_origin"]


@dataclass(frozen=True, slots=True)
class AccessPolicy(HostOriginPolicy):
    """Origin, Host and token checks derived once from the settings."""

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

    def token_valid(self, presented: str | None) -> bool:
        """Return True when no token is configured or ``presented`` matches it."""
        return self.token is None or token_matches(presented, self.token)


def same_origin(origin: str, host: str | None) -> bool:
    """Return True when ``origin`` is the daemon's own origin (the page came from us)."""
    return bool(host) and origin.rstrip("/").split("://", 1)[-1].lower() == (host or "").lower()
