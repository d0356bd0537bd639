"""``apiserver watch``: prints each event as one line, and exits 0 on Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import DaemonFactory
from tests.support.capture import record
from tests.support.daemon import Api, Daemon

TOKEN = "s3cr3t-watch-token-1"


@contextlib.asynccontextmanager
async def token_api(daemon: Daemon) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        yield Api(session, daemon.url)


async def start_watch(
    daemon: Daemon, *args: str, token: str | None = None
) -> asyncio.subprocess.Process:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "API_PORT": str(daemon.port)}  # fmt: skip
    if token:
        env["API_TOKEN"] = token
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "apiserver", "watch", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def read_line(stream: asyncio.StreamReader | None, where: str) -> str:
    assert stream is not None
    async with asyncio.timeout(10):
        line = (await stream.readline()).decode()
    record(f"watch {where}", line)
    return line


async def wait_for(stream: asyncio.StreamReader | None, text: str, where: str) -> str:
    while True:
        line = await read_line(stream, where)
        assert line, f"watch closed its {where} before printing {text!r}"
        if text in line:
            return line


async def stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    async with asyncio.timeout(10):
        return await proc.wait()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_watch_prints_events(daemon_factory: DaemonFactory, transport: str) -> None:
    daemon = await daemon_factory(env={"API_TOKEN": TOKEN})  # watch reads API_TOKEN too
    proc = await start_watch(daemon, "--transport", transport, token=TOKEN)
    try:
        await wait_for(proc.stderr, f"connected ({transport}", "stderr")
        line = await read_line(proc.stdout, "stdout")
        time_, name, payload = line.rstrip("\n").split(" ", 2)
        assert name == "proxy:status"
        assert len(time_) == 12 and time_[2] == ":"  # HH:MM:SS.mmm
        assert json.loads(payload)["status"] == "stopped"
        assert "\n" not in line.rstrip("\n")  # compact: one line per event

        async with token_api(daemon) as api:
            status, _ = await api.post("/api/models", {"id": "watched", "name": "Watched"})
            assert status == 201
        line = await read_line(proc.stdout, "stdout")
        _, name, payload = line.rstrip("\n").split(" ", 2)
        assert name == "models:updated"
        assert json.loads(payload)["modelId"] == "watched"
    finally:
        code = await stop(proc)
    assert code == 0


async def test_watch_subscribes_and_reports_refusal(
    daemon_factory: DaemonFactory,
) -> None:
    daemon = await daemon_factory(env={"API_TOKEN": TOKEN})
    refused = await start_watch(daemon)  # no token
    async with asyncio.timeout(10):
        _, err = await refused.communicate()
    record("watch stderr", err.decode())
    assert refused.returncode == 1
    assert "API token" in err.decode()

    proc = await start_watch(daemon, "--events", "models:updated", token=TOKEN)
    try:
        await wait_for(proc.stderr, "subscribed to models:updated", "stderr")
        async with token_api(daemon) as api:
            assert (await api.post("/api/providers/lm-studio-default/disable"))[0] == 200
            assert (await api.put("/api/models/qwen3-max", {"name": "W"}))[0] == 200
        name = "proxy:status"  # the greeting comes first
        while name == "proxy:status":
            name = (await read_line(proc.stdout, "stdout")).split(" ", 2)[1]
        assert name == "models:updated"  # the provider event was filtered out
    finally:
        code = await stop(proc)
    assert code == 0
