"""Readiness: the ``NOTIFY_SOCKET`` a run reports ``READY=1`` on (systemd's protocol), or /health.

Each run gets its own unix datagram socket, owned by the supervisor and closed with the run, so
a late message of an earlier run can never make a new one ready. On Linux the socket lives in
the abstract namespace (``@name``: nothing on disk to clean up); elsewhere it is a path in a
private temporary directory. Messages are newline-separated ``KEY=VALUE`` assignments; the
sender's pid comes with each message (``SO_PASSCRED``), and only the run's own process or a
process carrying the run's marker is listened to (systemd's ``NotifyAccess=all`` within the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import struct
import sys
import tempfile
from collections.abc import Callable

from supervisor import process

_CREDENTIALS = struct.Struct("iII")  # struct ucred: pid, uid, gid
_MAX_MESSAGE = 4096


def parse(message: bytes) -> dict[str, str]:
    """Return the assignments of one notification (``KEY=VALUE`` lines)."""
    fields = {}
    for line in message.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key:
            fields[key] = value
    return fields


class NotifySocket:
    """One run's notification socket; ``on_message(pid, fields)`` is called for each datagram."""

    def __init__(self, name: str, on_message: Callable[[int | None, dict[str, str]], None]) -> None:
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._tmpdir: str | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            if sys.platform.startswith("linux"):
                self.address = "@" + name
                self._sock.bind(b"\0" + name.encode())
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            else:
                self._tmpdir = tempfile.mkdtemp(prefix="qwenstack-notify-")
                self.address = os.path.join(self._tmpdir, "notify")  # noqa: PTH118
                self._sock.bind(self.address)
            self._sock.setblocking(False)
            self._loop.add_reader(self._sock.fileno(), self._readable)
        except BaseException:
            self.close()
            raise

    def _readable(self) -> None:
        while True:
            try:
                data, ancdata, _flags, _addr = self._sock.recvmsg(
                    _MAX_MESSAGE, socket.CMSG_SPACE(_CREDENTIALS.size)
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            pid = None
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == getattr(socket, "SCM_CREDENTIALS", -1):
                    pid = _CREDENTIALS.unpack(payload[: _CREDENTIALS.size])[0]
            self._on_message(pid, parse(data))

    def close(self) -> None:
        """Stop listening and release the socket (and its directory, if any)."""
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


def next_poll(elapsed: float, every: float, expected: float | None) -> float:
    """Return the wait before the next /health poll, ``elapsed`` seconds after the spawn."""
    if expected is None:
        return every
    fast_from, fast_until = 0.8 * expected, 2 * expected + every
    if elapsed < fast_from:
        return min(every, fast_from - elapsed)
    if elapsed < fast_until:
        return every / 10
    return every


async def wait_ready(
    host: str,
    port: int,
    path: str,
    *,
    every: float,
    probe_timeout: float,
    within: float,
    expected: float | None = None,
) -> bool:
    """Poll ``GET path`` ``every`` seconds until it answers 200 within ``within`` seconds.

    ``expected``: how long the previous run took to answer. From 80 % of it to twice it the
    polls come ten times as often, so a child that starts as fast as last time is found ready
    a few ms after it is, not up to ``every`` later; refused connections cost the child
    nothing. No probe at once: nothing listens a few microseconds after exec.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + within
    while (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(next_poll(loop.time() - start, every, expected), remaining))
        timeout = min(probe_timeout, max(deadline - loop.time(), 0.001))
        if await process.http_ok(host, port, path, timeout):
            return True
    return False
