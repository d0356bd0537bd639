"""One of our programs run as a real process: its JSON log lines read, waited for, recorded.

The daemon, the provider-router and qwen-proxy are started, watched and stopped the same way;
each test helper only says which module to run, with which environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.capture import record
from tests.support.processes import free_port

STARTUP_TIMEOUT_S = 10.0


class LoggedProcess:
    """``python -m <module>`` with its output kept in ``lines`` and recorded for the scan."""

    module = ""  # the program, run as ``python -m module``
    label = ""  # how its output is named in the secret scan and in errors
    stop_timeout = 10.0

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._readers: list[asyncio.Task[None]] = []
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []

    def env(self) -> dict[str, str]:
        """Return the whole environment of the process."""
        raise NotImplementedError

    async def spawn(self, wait: bool = True) -> dict[str, Any] | None:
        """Start the process; with ``wait``, return its ``server_started`` entry.

        A process that exits or stays silent for STARTUP_TIMEOUT_S is stopped and reported with
        its last lines.
        """
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, env=self.env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout, "stdout")),
            asyncio.create_task(self._read(self.proc.stderr, "stderr")),
        ]
        if not wait:
            return None
        started = asyncio.ensure_future(self.wait_for_log("server_started"))
        exited = asyncio.ensure_future(self.proc.wait())
        done, _ = await asyncio.wait(
            {started, exited}, timeout=STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        exited.cancel()
        if started not in done:
            started.cancel()
            await self.stop()
            raise RuntimeError(f"{self.label} did not start:\n" + "\n".join(self.lines[-30:]))
        return started.result()

    async def _read(self, stream: asyncio.StreamReader, name: str) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.lines.append(text)
            record(f"{self.label} {name}", text)
            try:
                entry = json.loads(text)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            for event, fut in list(self._waiters):
                if entry.get("event") == event and not fut.done():
                    fut.set_result(entry)
                    self._waiters.remove((event, fut))

    def logs(self, event: str | None = None) -> list[dict[str, Any]]:
        """Return the JSON log entries seen so far (optionally of one event)."""
        out = []
        for text in self.lines:
            with contextlib.suppress(ValueError):
                entry = json.loads(text)
                if isinstance(entry, dict) and (event is None or entry.get("event") == event):
                    out.append(entry)
        return out

    async def wait_for_log(self, event: str, timeout: float = STARTUP_TIMEOUT_S) -> dict[str, Any]:
        """Return the last entry named ``event`` seen so far, or wait for the next one."""
        seen = self.logs(event)
        if seen:
            return seen[-1]
        return await self.next_log(event, timeout)

    async def next_log(self, event: str, timeout: float = STARTUP_TIMEOUT_S) -> dict[str, Any]:
        """Wait for the next log entry named ``event``."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((event, fut))
        async with asyncio.timeout(timeout):
            return await fut

    async def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int:
        """Send ``sig``, wait (SIGKILL past ``timeout``); return the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            await self.send_signal(sig)
            try:
                async with asyncio.timeout(self.stop_timeout if timeout is None else timeout):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(2):
                    await task
        assert self.proc.returncode is not None
        return self.proc.returncode


class ChildProgram(LoggedProcess):
    """A child program (provider-router, qwen-proxy) run by a test on a free loopback port.

    It gets what the supervisor gives a child (PORT, HOST, DATABASE_PATH), JSON logs at debug
    level, ``own_env()`` of the subclass, then the test's own ``env``.
    """

    def __init__(self, db_path: Path, env: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.db_path = db_path
        self.extra_env = dict(env or {})
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def own_env(self) -> dict[str, str]:
        """Return the variables this program's tests always set."""
        return {}

    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATABASE_PATH": str(self.db_path),
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "json",
        }
        env.update(self.own_env())
        env.update(self.extra_env)
        return env
