"""Run the real daemon as a process on a free port with a temporary database."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.capture import record
from tests.support.logged_process import STARTUP_TIMEOUT_S, LoggedProcess
from tests.support.processes import free_port

__all__ = ["STARTUP_TIMEOUT_S", "Api", "Daemon", "assert_error", "free_port"]


class Daemon(LoggedProcess):
    """One ``python -m apiserver`` process; its output is kept and recorded for the scan."""

    module = "apiserver"
    label = "daemon"
    stop_timeout = 15.0

    def __init__(self, db_path: Path, env: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.db_path = db_path
        self.extra_env = dict(env or {})
        self.port = 0
        self._started = asyncio.Event()

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
        started = await self.spawn()
        assert started is not None
        self.port = int(started["port"])
        return self

    async def wait_for_log(self, event: str, timeout: float = STARTUP_TIMEOUT_S) -> dict[str, Any]:
        """Wait for the next log entry named ``event`` (or return a past one if already seen).

        Of the past entries the first is returned; a past ``server_started`` only once.
        """
        for entry in self.logs(event):
            if event != "server_started" or not self._started.is_set():
                self._started.set()
                return entry
        return await self.next_log(event, timeout)


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
