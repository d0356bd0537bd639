"""Tell systemd the truth about the daemon: ready, alive, what the children do, stopping.

With ``Type=notify`` systemd waits for ``READY=1`` before it calls the service started, shows
the last ``STATUS=`` line in ``systemctl status``, restarts the service when ``WATCHDOG=1``
pings stop for longer than ``WatchdogSec=``, and learns from ``STOPPING=1`` that the shutdown
is deliberate. The pings are sent by a task on the daemon's own event loop, so a blocked loop
(the failure a watchdog is for) stops them. Without ``NOTIFY_SOCKET`` nothing is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from apiserver.realtime.publisher import Event
from qwenstack_core import notify
from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.systemd")

# (key in proxy:status, child name) in start order.
CHILDREN = (("qwenProxy", "qwen-proxy"), ("providerRouter", "provider-router"))

Sender = Callable[[str], bool]


def socket_sender(address: str) -> Sender:
    """Return a function that sends one message to systemd's notification socket ``address``."""

    def send(message: str) -> bool:
        sent = notify.send(address, message)
        if not sent:
            log.warning("systemd_notify_failed", address=address)
        return sent

    return send


def child_summary(status: Mapping[str, Any]) -> str:
    """Return a one-line summary of both children from a ``proxy:status`` payload.

    E.g. ``qwen-proxy backoff (exit 1), provider-router running (pid 4242)``.
    """
    parts = []
    for key, name in CHILDREN:
        child = status.get(key) or {}
        state = str(child.get("state") or ("running" if child.get("running") else "stopped"))
        detail = ""
        last_exit = child.get("lastExit") or {}
        if state == "running" and child.get("pid"):
            detail = f"pid {child['pid']}"
        elif state in ("backoff", "failed") and last_exit:
            signal_name = last_exit.get("signal")
            detail = str(signal_name) if signal_name else f"exit {last_exit.get('code')}"
        parts.append(f"{name} {state}" + (f" ({detail})" if detail else ""))
    return ", ".join(parts)


class ServiceNotifier:
    """Send systemd's service notifications for this daemon (no-ops without a socket)."""

    def __init__(self, send: Sender | None, watchdog_interval: float | None) -> None:
        self._send = send
        self.watchdog_interval = watchdog_interval
        self._status: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.pings = 0

    @classmethod
    def from_settings(
        cls, notify_socket: str | None, watchdog_interval: float | None
    ) -> ServiceNotifier:
        """Build the notifier for the daemon's settings."""
        send = socket_sender(notify_socket) if notify_socket else None
        return cls(send, watchdog_interval if send else None)

    @property
    def enabled(self) -> bool:
        return self._send is not None

    def _notify(self, *lines: str) -> None:
        if self._send is not None:
            self._send("\n".join(lines))

    def ready(self, status: str) -> None:
        """Report that the daemon serves requests, and start the watchdog pings."""
        self._status = status
        self._notify("READY=1", f"STATUS={status}")
        log.info("systemd_notified", ready=True, status=status, enabled=self.enabled)
        if self.watchdog_interval is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._ping_forever(self.watchdog_interval), name="systemd-watchdog"
            )

    def status(self, text: str) -> None:
        """Set the one-line ``STATUS=`` that ``systemctl status`` shows (only on change)."""
        if text != self._status:
            self._status = text
            self._notify(f"STATUS={text}")

    async def on_event(self, event: Event) -> None:
        """Keep ``STATUS=`` current from every ``proxy:status`` (an EventPublisher sink)."""
        self.on_event_now(event)

    def on_event_now(self, event: Event) -> bool:
        """``on_event``, synchronously (the publisher's fast path); always delivers."""
        if event.name == "proxy:status":
            self.status(child_summary(event.payload))
        return True

    async def stopping(self) -> None:
        """Report a deliberate shutdown; the watchdog stops with it."""
        self._notify("STOPPING=1", "STATUS=stopping the children")
        self._status = "stopping the children"
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _ping_forever(self, interval: float) -> None:
        # Runs on the event loop on purpose: if the loop is blocked, systemd hears nothing.
        while True:
            self._notify("WATCHDOG=1")
            self.pings += 1
            await asyncio.sleep(interval)
