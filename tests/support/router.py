"""Run the real provider-router as a process, and seed its store directly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwenstack_core.store import Store
from qwenstack_core.store import providers as provider_rows
from qwenstack_core.store import settings as setting_rows
from tests.support.capture import record
from tests.support.daemon import free_port

STARTUP_TIMEOUT_S = 10.0


async def make_store(path: Path, apply: Callable[[sqlite3.Connection], Any] | None = None) -> None:
    """Create (migrate, seed) the database at ``path``, disable the seeded providers, apply."""

    def prepare(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE providers SET enabled = 0")
        if apply is not None:
            apply(conn)

    store = Store(path)
    await store.open()
    try:
        await store.write(prepare)
    finally:
        await store.close()


async def write(path: Path, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run one write transaction on the database from this (another) process."""
    store = Store(path)
    await store.open()
    try:
        return await store.write(fn)
    finally:
        await store.close()


def add_provider(
    conn: sqlite3.Connection,
    pid: str,
    base_url: str,
    *,
    priority: int = 0,
    enabled: bool = True,
    api_key: str | None = None,
    models: dict[str, str | None] | None = None,
    timeout_ms: int | None = None,
) -> None:
    """Insert an openai-compatible provider and link ``models`` ({model: upstreamModel})."""
    config: dict[str, Any] = {"baseURL": base_url}
    if api_key is not None:
        config["apiKey"] = api_key
    if timeout_ms is not None:
        config["timeout"] = timeout_ms
    provider_rows.create_provider(
        conn, id=pid, name=pid, type="openai-compatible", enabled=enabled, priority=priority,
        description=None, config=config,
    )  # fmt: skip
    for model, upstream in (models or {}).items():
        if conn.execute("SELECT 1 FROM models WHERE id = ?", (model,)).fetchone() is None:
            conn.execute(
                "INSERT INTO models (id, name, capabilities, created_at, updated_at)"
                " VALUES (?, ?, '[]', 0, 0)",
                (model, model),
            )
        provider_rows.link_model(
            conn, pid, model, is_default=False,
            config={"upstreamModel": upstream} if upstream else None,
        )  # fmt: skip


def put_setting(conn: sqlite3.Connection, key: str, value: Any) -> None:
    setting_rows.put(conn, key, value)


class RouterProcess:
    """One ``python -m provider_router``; output kept and recorded for the secret scan."""

    def __init__(self, db_path: Path, env: dict[str, str] | None = None) -> None:
        self.db_path = db_path
        self.extra_env = env or {}
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
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "json",
            "ROUTER_HISTORY_PRUNE_INTERVAL": "0.2",
        }
        env.update(self.extra_env)
        return env

    async def start(self) -> RouterProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "provider_router", env=self.env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
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
        exited.cancel()
        if started not in done:
            started.cancel()
            await self.stop()
            raise RuntimeError("router did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    async def _read(self, stream: asyncio.StreamReader, name: str) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.lines.append(text)
            record(f"router {name}", text)
            with contextlib.suppress(ValueError):
                entry = json.loads(text)
                if isinstance(entry, dict):
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
        past = self.logs(event)
        if past:
            return past[-1]
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((event, fut))
        async with asyncio.timeout(timeout):
            return await fut

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
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
