"""Tell the supervisor that this program is ready, with systemd's ``NOTIFY_SOCKET`` protocol.

The supervisor (or systemd, when a child runs as its own unit) sets ``NOTIFY_SOCKET`` to a unix
datagram socket it owns. A program sends ``READY=1`` there once it is listening, so it is known
as ready at once instead of at the next ``/health`` poll. Without the variable nothing is sent:
the same program runs unchanged by hand or under a supervisor that only probes ``/health``.

Standard library only: the children import this module and must stay light.
"""

from __future__ import annotations

import os
import socket

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"


def notify_address(value: str) -> str | bytes:
    """Return the socket address for a ``NOTIFY_SOCKET`` value, as systemd reads it.

    A value starting with ``@`` names a socket in the abstract namespace (the ``@`` stands for
    the leading NUL byte); any other value is a filesystem path.
    """
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def send(address: str, *lines: str) -> bool:
    """Send ``lines`` as one datagram to the notification socket ``address``; return success.

    systemd reads one message per datagram, one ``KEY=value`` per line (``READY=1``,
    ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``). An address that is neither a path nor an
    abstract name, or a socket nobody listens on any more, only makes the result False.
    """
    if not address or address[0] not in "@/":
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto("\n".join(lines).encode(), notify_address(address))
        except OSError:
            return False
    return True


def notify(*lines: str) -> bool:
    """Send ``lines`` (e.g. ``"READY=1"``) to ``$NOTIFY_SOCKET``; return whether it was sent.

    A missing variable, or a socket nobody listens on any more, is not an error for the caller:
    readiness then falls back to the supervisor's ``/health`` probe.
    """
    return send(os.environ.get(NOTIFY_SOCKET_ENV, ""), *lines)


def notify_ready() -> bool:
    """Send ``READY=1`` to ``$NOTIFY_SOCKET`` when it is set; a no-op otherwise."""
    return notify("READY=1")
