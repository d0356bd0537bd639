"""``apiserver watch``: print every live event of a running daemon."""

from __future__ import annotations

from apiserver.config import Settings


async def watch(
    settings: Settings, url: str | None, transport: str | None, events: str | None
) -> int:
    """Connect to the daemon and print events until interrupted."""
    raise NotImplementedError
