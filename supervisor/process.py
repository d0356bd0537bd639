"""Operating-system helpers of the supervisor: process identity and trees, signals, ports, probes.

Functions only, no state: ``ChildProcess`` decides when to call them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

import psutil

TREE_POLL = 0.02  # seconds between checks that a stopped tree is gone (no exit notification)
LINE_LIMIT = 64 * 1024  # longer output lines are split rather than blocking the reader


def signal_name(number: int) -> str:
    """Return a signal's name (``SIGKILL``) for reasons and events."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(code: int | None, sig: str | None) -> str:
    """Return how a process ended, as a reason phrase."""
    if sig is not None:
        return f"exited with signal {sig}"
    if code is not None:
        return f"exited with code {code}"
    return "exited (status unknown)"


def same_process(pid: int, create_time: float) -> psutil.Process | None:
    """Return the process if ``pid`` still runs with ``create_time`` (not a recycled pid)."""
    try:
        ps = psutil.Process(pid)
        if abs(ps.create_time() - create_time) > 0.01 or not alive(ps):
            return None
    except psutil.Error:
        return None
    return ps


def alive(ps: psutil.Process) -> bool:
    """Return True if the process runs (a zombie counts as gone: it holds nothing but a pid)."""
    try:
        return ps.is_running() and ps.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def alive_pids(procs: Iterable[psutil.Process]) -> list[int]:
    """Return the pids of ``procs`` that still run."""
    return [p.pid for p in procs if alive(p)]


def signal_tree(
    pid: int,
    own_group: bool,
    tree: Iterable[psutil.Process],
    sig: signal.Signals,
    *,
    include_tree: bool,
) -> None:
    """Signal the process group (or the process), then known descendants that escaped it."""
    try:
        if own_group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
    if not include_tree:
        return
    for proc in list(tree):
        try:
            if own_group and os.getpgid(proc.pid) == pid:
                continue  # already signalled through the group (twice may mean "force")
        except ProcessLookupError:
            continue
        # send_signal checks the create time, so a recycled pid is never hit.
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


async def wait_future(future: asyncio.Future[None], timeout: float) -> bool:
    """Wait up to ``timeout`` for ``future``; return whether it is done."""
    if future.done():
        return True
    if timeout <= 0:
        return False
    done, _ = await asyncio.wait({future}, timeout=timeout)
    return bool(done)


async def wait_tree_gone(procs: Iterable[psutil.Process], deadline: float) -> bool:
    """Deadline-poll until none of ``procs`` runs; psutil gives no exit notification."""
    loop = asyncio.get_running_loop()
    procs = list(procs)
    while True:
        if not alive_pids(procs):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(TREE_POLL)


def port_in_use(host: str, port: int) -> bool:
    """Return True when something listens on ``host:port`` (we cannot bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR ignores TIME_WAIT leftovers but still fails on a live listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


async def port_problem(host: str, port: int) -> str | None:
    """Return why ``port`` cannot be ours (naming the holder), or None when it is free."""
    if not port_in_use(host, port):
        return None
    pid, name = await asyncio.to_thread(port_holder, port)
    if pid is None:
        return f"port {port} in use by an unknown process"
    return f"port {port} in use by pid {pid} ({name or 'unknown'})"


def port_holder(port: int) -> tuple[int | None, str | None]:
    """Return (pid, name) of the process listening on ``port``, as far as we may see it."""
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.Error:
        return None, None
    for conn in connections:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        if conn.pid is None:
            continue
        try:
            return conn.pid, psutil.Process(conn.pid).name()
        except psutil.Error:
            return conn.pid, None
    return None, None


async def open_reader(pipe: BinaryIO) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """Wrap the read end of a pipe in a StreamReader (the pipe is closed if that fails)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
    except BaseException:
        pipe.close()
        raise
    return reader, transport


@dataclass(slots=True)
class Pipes:
    """The stdout/stderr pipes of one spawn: our read ends, and the write ends to give away.

    Our own pipes rather than PIPE: the read transports close at exit even if an escaped
    grandchild keeps the write ends open, and we can close them ourselves. Created without an
    await: the read ends are wrapped in StreamReaders by their reader tasks after the spawn,
    so nothing stands between a crash and the next spawn.
    """

    out: BinaryIO
    err: BinaryIO
    out_w: int
    err_w: int

    def close_write_ends(self) -> None:
        """Close our copies of the write ends (the child has its own after the spawn)."""
        for fd in (self.out_w, self.err_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def close_all(self) -> None:
        """Close everything (the spawn failed)."""
        self.close_write_ends()
        self.out.close()
        self.err.close()


def open_pipes() -> Pipes:
    """Create the two output pipes of a spawn (the read ends as unbuffered binary files)."""
    out_r, out_w = os.pipe()
    try:
        err_r, err_w = os.pipe()
    except BaseException:
        os.close(out_r)
        os.close(out_w)
        raise
    return Pipes(os.fdopen(out_r, "rb", buffering=0), os.fdopen(err_r, "rb", buffering=0),
                 out_w, err_w)  # fmt: skip


async def http_ok(host: str, port: int, path: str, timeout: float) -> bool:
    """Return True if ``GET http://host:port/path`` answers 200 within ``timeout``."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request.encode("ascii"))
                await writer.drain()
                status = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, ValueError):
        return False
    parts = status.split()
    return len(parts) >= 2 and parts[1] == b"200"
