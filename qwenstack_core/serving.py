"""Start-up pieces every program's ``serve`` shares (no web framework: the core stays light)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable


def stop_on_signals() -> asyncio.Event:
    """Return an event set by SIGTERM or SIGINT (installed on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def bound_port(addresses: Iterable[object]) -> int | None:
    """Return the TCP port among a server's bound ``addresses`` (what port 0 turned into)."""
    for address in addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
