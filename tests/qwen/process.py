"""Run ``python -m qwen_proxy`` as a real process; its output is kept for the secret scan."""

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
from tests.support.daemon import free_port

STARTUP_TIMEOUT_S = 10.0


class QwenProxyProcess:
    """One qwen-proxy child started by the test, on a free port."""

    def __init__(self, db_path: Path, base_url: str, env: Mapping[str, str] | None = None):
        self.db_path = db_path
        self.base_url = base_url
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._readers: list[asyncio.Task[None]] = []
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATABASE_PATH": str(self.db_path),
            "QWEN_BASE_URL": self.base_url,
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "json",
            "QWEN_RETRY_BASE": "0.05",
        }
        env.update(self.extra_env)
        return env

    async def start(self, wait: bool = True) -> QwenProxyProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qwen_proxy",
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout, "stdout")),
            asyncio.create_task(self._read(self.proc.stderr, "stderr")),
        ]
        if wait:
            started = asyncio.ensure_future(self.wait_for_log("server_started"))
            exited = asyncio.ensure_future(self.proc.wait())
            done, _ = await asyncio.wait(
                {started, exited}, timeout=STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
            exited.cancel()
            if started not in done:
                started.cancel()
                await self.stop()
                raise RuntimeError("qwen-proxy did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    async def _read(self, stream: asyncio.StreamReader, name: str) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.lines.append(text)
            record(f"qwen-proxy {name}", text)
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
        out = []
        for text in self.lines:
            with contextlib.suppress(ValueError):
                entry = json.loads(text)
                if isinstance(entry, dict) and (event is None or entry.get("event") == event):
                    out.append(entry)
        return out

    async def wait_for_log(self, event: str, timeout: float = STARTUP_TIMEOUT_S) -> dict[str, Any]:
        seen = self.logs(event)
        if seen:
            return seen[-1]
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((event, fut))
        async with asyncio.timeout(timeout):
            return await fut

    async def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait (SIGKILL past ``timeout``); return the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
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
