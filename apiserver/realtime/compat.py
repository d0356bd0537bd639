"""Start-time check of the private parts of python-engineio/python-socketio the fast path uses.

The fast path (``transport.DirectQueue``/``DirectWebSocket``) and the bounded queues lean on
names that are not part of the libraries' documented API. They are pinned to the tested minor
versions in pyproject.toml; should another version be installed anyway, this check finds what
is missing and the daemon logs one warning and uses the supported ``AsyncServer.emit`` path.
"""

from __future__ import annotations

import inspect
from importlib import metadata
from typing import Any

import socketio
from engineio import async_socket, payload

# The minors the fast path was tested with (pyproject.toml pins the same).
TESTED_MINORS = {"python-engineio": "4.15", "python-socketio": "5.18"}

# Methods of AsyncSocket the fast path relies on (Engine.IO calls them, we replace their I/O;
# ``DirectWebSocket`` runs the steps of ``_websocket_handler`` and the server those of
# ``_send_ping`` itself).
SOCKET_METHODS = ("_websocket_handler", "_send_ping", "poll", "send", "close", "receive")
# Attributes of an AsyncSocket instance the fast path reads or sets.
SOCKET_ATTRIBUTES = ("queue", "upgraded", "upgrading", "closed", "closing", "connected", "sid",
                     "last_ping")  # fmt: skip
# python-socketio hooks overridden by ``server.SocketServer``.
SERVER_HOOKS = ("_engineio_server_class", "_handle_eio_message", "_handle_eio_disconnect",
                "_send_packet")  # fmt: skip


def fast_path_problems(sio: Any) -> list[str]:
    """Return what the fast path needs and ``sio`` (a ``SocketServer``) lacks; [] when fine."""
    from apiserver.realtime.server import EngineServer
    from apiserver.realtime.transport import BoundedQueue

    problems: list[str] = []
    for dist, minor in TESTED_MINORS.items():
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            problems.append(f"{dist} is not installed")
            continue
        if version.split(".")[:2] != minor.split("."):
            problems.append(f"{dist} {version} is not the tested {minor}.x")
    for hook in SERVER_HOOKS:
        if not callable(getattr(socketio.AsyncServer, hook, None)):
            problems.append(f"socketio.AsyncServer.{hook} is missing")
    eio = getattr(sio, "eio", None)
    if not isinstance(eio, EngineServer):
        problems.append("socketio.AsyncServer no longer builds its Engine.IO server itself")
        return problems
    drivers = getattr(eio, "_async", None)
    if not isinstance(drivers, dict) or "websocket" not in drivers:
        problems.append("engineio.AsyncServer._async['websocket'] is missing")
    for name in SOCKET_METHODS:
        if not callable(getattr(async_socket.AsyncSocket, name, None)):
            problems.append(f"engineio.async_socket.AsyncSocket.{name} is missing")
    close = getattr(async_socket.AsyncSocket, "close", None)
    if callable(close) and "reason" not in inspect.signature(close).parameters:
        problems.append("engineio.async_socket.AsyncSocket.close has no reason parameter")
    if not isinstance(getattr(payload.Payload, "max_decode_packets", None), int):
        problems.append("engineio.payload.Payload.max_decode_packets is missing")
    for reason in ("SERVER_DISCONNECT", "TRANSPORT_CLOSE"):
        if getattr(getattr(eio, "reason", None), reason, None) is None:
            problems.append(f"engineio.AsyncServer.reason.{reason} is missing")
    try:
        probe = async_socket.AsyncSocket(eio, "compat-check")
    except Exception as exc:  # a changed constructor is a missing part too
        problems.append(f"engineio.async_socket.AsyncSocket(server, sid) failed: {exc!r}")
        return problems
    for name in SOCKET_ATTRIBUTES:
        if not hasattr(probe, name):
            problems.append(f"engineio.async_socket.AsyncSocket().{name} is missing")
    queue = getattr(probe, "queue", None)
    if isinstance(queue, BoundedQueue):
        queue.forget()
    else:
        problems.append("engineio.AsyncServer.create_queue is not used for socket queues")
    if not callable(getattr(getattr(sio, "manager", None), "eio_sid_from_sid", None)):
        problems.append("socketio manager.eio_sid_from_sid is missing")
    return problems
