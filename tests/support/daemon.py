"""Run the real daemon as a process on a free port with a temporary database."""

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

import aiohttp

from tests.support.capture import record
from tests.support.processes import free_port

STARTUP_TIMEOUT_S = 10.0


class Daemon:
    """One ``python -m apiserver`` process; its output is kept and recorded for the scan."""

    def __init__(self, db_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.db_path = db_path
        self.extra_env = dict(env or {})
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.lines: list[str] = []
        self._readers: list[asyncio.Task[None]] = []
        self._started = asyncio.Event()
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "API_PORT": "0",
            "API_HOST": "127.0.0.1",
            "DATABASE_PATH": str(self.db_path),
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "json",
            # Keep the children away from the user's ports unless a test sets them.
            "QWEN_PROXY_PORT": str(free_port()),
            "PROVIDER_ROUTER_PORT": str(free_port()),
        }
        env.update(self.extra_env)
        return env

    async def start(self) -> Daemon:
        self._started.clear()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "apiserver",
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout, "stdout")),
            asyncio.create_task(self._read(self.proc.stderr, "stderr")),
        ]
        started = asyncio.ensure_future(self.wait_for_log("server_started"))
        exited = asyncio.ensure_future(self.proc.wait())
        done, _ = await asyncio.wait(
            {started, exited}, timeout=STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if started not in done:
            started.cancel()
            exited.cancel()
            await self.stop()
            raise RuntimeError("daemon did not start:\n" + "\n".join(self.lines[-30:]))
        exited.cancel()
        self.port = int(started.result()["port"])
        return self

    async def _read(self, stream: asyncio.StreamReader, name: str) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.lines.append(text)
            record(f"daemon {name}", text)
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
        """Wait for the next log entry named ``event`` (or return a past one if already seen)."""
        for entry in self.logs(event):
            if event != "server_started" or not self._started.is_set():
                self._started.set()
                return entry
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((event, fut))
        async with asyncio.timeout(timeout):
            return await fut

    async def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Stop the daemon (SIGKILL if it does not exit in time); return its exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            await self.send_signal(sig)
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


class Api:
    """A small JSON client; every response body is recorded for the secret scan."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def request(
        self, method: str, path: str, json_body: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        if json_body is not None:
            kwargs["json"] = json_body
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            text = await resp.text()
            record(f"{method} {path}", text)
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            return resp.status, body

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json_body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.request("POST", path, json_body, **kw)

    async def put(self, path: str, json_body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.request("PUT", path, json_body, **kw)

    async def patch(self, path: str, json_body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.request("PATCH", path, json_body, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("DELETE", path, **kw)


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    """Assert the one error shape with the expected status and code."""
    assert status == expected_status, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    assert set(err) <= {"message", "type", "code", "details"}, body
