"""Nothing escapes the daemon, one daemon per database file, and a stable run resets the count.

Real daemon processes supervising fake children (tests/fakes). The grandchildren of
``escaping_grandchildren.py`` leave the child's process group (one by ``setsid``, one by a double
fork) and ignore SIGTERM; pytest cannot see them as its descendants, so each test tracks them
with the ``reaper`` fixture and kills what is left in its teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
import socketio

from tests.daemon.test_api_proxy import (
    KEYS,
    DaemonFactory,
    alive,
    brief,
    child_env,
    fake,
    living,
    reaper,
    wait_status,
    wait_until,
)
from tests.support.daemon import Api, Daemon

__all__ = ["reaper"]  # the fixture, imported for the tests below


async def grandchildren(api: Api) -> list[psutil.Process]:
    """Return the setsid and the double-forked grandchild of the running qwen-proxy."""
    for _ in range(200):
        status, logs = await api.get("/api/proxy/qwen-proxy/logs")
        assert status == 200, logs
        for entry in reversed(logs["lines"]):
            if entry["line"].startswith("GRANDCHILDREN "):
                return [psutil.Process(int(pid)) for pid in entry["line"].split()[1:]]
        await asyncio.sleep(0.025)
    raise AssertionError("the fake child never printed its grandchildren")


async def started_with_grandchildren(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, reaper: list[psutil.Process]
) -> tuple[Daemon, Api, int, list[psutil.Process]]:
    env = child_env(qwen=fake("escaping_grandchildren.py"))
    daemon = await daemon_factory(env=env)
    api = Api(http, daemon.url)
    status, body = await api.post("/api/proxy/start")
    assert status == 200 and body["status"] == "running", brief(body)
    child_pid = body["qwenProxy"]["pid"]
    escaped = await grandchildren(api)
    reaper.extend(escaped)
    assert living(escaped) == sorted(p.pid for p in escaped)
    child_group = os.getpgid(child_pid)
    assert all(os.getpgid(p.pid) != child_group for p in escaped)  # both left the group
    # The double-forked one lost its parent at once: the daemon (subreaper) adopted it.
    assert escaped[1].ppid() == daemon.pid
    return daemon, api, child_pid, escaped


async def test_escaped_grandchildren_die_with_a_crashed_child(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, reaper: list[psutil.Process]
) -> None:
    _daemon, api, child_pid, escaped = await started_with_grandchildren(
        daemon_factory, http, reaper
    )
    os.kill(child_pid, signal.SIGKILL)
    await wait_until(lambda: living(escaped) == [], "the grandchildren to be killed")
    body = await wait_status(
        api, lambda b: b["qwenProxy"]["state"] == "running" and b["qwenProxy"]["pid"] != child_pid,
        "qwen-proxy running again",
    )  # fmt: skip
    reaper.extend(await grandchildren(api))  # the new run's own, stopped with the daemon
    await api.post("/api/proxy/stop")
    assert body["qwenProxy"]["restarts"] == 1


async def test_escaped_grandchildren_die_with_a_stop(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, reaper: list[psutil.Process]
) -> None:
    _daemon, api, _child_pid, escaped = await started_with_grandchildren(
        daemon_factory, http, reaper
    )
    status, body = await api.post("/api/proxy/stop")
    assert status == 200 and body["status"] == "stopped", brief(body)
    await wait_until(lambda: living(escaped) == [], "the grandchildren to be killed")


async def test_escaped_grandchildren_die_with_the_daemon(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, reaper: list[psutil.Process]
) -> None:
    daemon, _api, child_pid, escaped = await started_with_grandchildren(
        daemon_factory, http, reaper
    )
    child = psutil.Process(child_pid)
    assert await daemon.stop(signal.SIGTERM) == 0
    assert living([child, *escaped]) == []  # gone before the daemon exited
    assert not daemon.logs("child_tree_survived")


# ------------------------------------------------------------------ one daemon per database


@pytest.mark.parametrize("link", ["symlink", "hard link"])
async def test_a_second_daemon_through_a_link_is_refused(
    link: str, daemon_factory: DaemonFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    env = child_env(ORPHAN_POLICY="stop")
    first = await daemon_factory(env=env)
    api = Api(http, first.url)
    _, before = await api.post("/api/proxy/start")
    assert before["status"] == "running", brief(before)

    other = tmp_path / "elsewhere" / "linked.db"
    other.parent.mkdir()
    if link == "symlink":
        other.symlink_to(first.db_path)
    else:
        os.link(first.db_path, other)
    second = Daemon(other, env)
    with pytest.raises(RuntimeError, match="did not start"):
        await second.start()
    assert await second.stop() == 1
    failed = second.logs("server_failed")
    assert failed, second.lines[-5:]
    assert "another apiserver" in failed[0]["error"]
    assert str(first.pid) in failed[0]["error"]
    assert not second.logs("orphan_recovered") and not second.logs("orphan_gone")

    _, after = await api.get("/api/proxy/status")
    for key in KEYS:  # the same processes, never restarted
        assert after[key]["pid"] == before[key]["pid"], brief(after)
        assert after[key]["restarts"] == 0
        assert after[key]["state"] == "running"
    await api.post("/api/proxy/stop")


# ------------------------------------------------------------------ stable uptime


@contextlib.asynccontextmanager
async def qwen_states(daemon: Daemon) -> AsyncIterator[list[str]]:
    """Collect qwenProxy's state from every proxy:status event while the block runs."""
    seen: list[str] = []
    client = socketio.AsyncClient(handle_sigint=False)

    @client.on("proxy:status")
    def on_status(data: dict[str, Any]) -> None:
        seen.append(data["qwenProxy"]["state"])

    await client.connect(daemon.url, transports=["websocket"])
    try:
        yield seen
    finally:
        await client.disconnect()


@pytest.mark.timeout(150)
async def test_runs_longer_than_the_stable_uptime_never_reach_failed(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    # The default crash limit (5 within 120 s): before the fix, the 6th kill ended in failed.
    env = child_env(CHILD_STABLE_UPTIME="1", CHILD_CRASH_LIMIT="5", CHILD_BACKOFF_BASE="0.5")
    daemon = await daemon_factory(env=env)
    api = Api(http, daemon.url)
    async with qwen_states(daemon) as seen:
        _, body = await api.post("/api/proxy/start")
        assert body["qwenProxy"]["state"] == "running", brief(body)
        pid = body["qwenProxy"]["pid"]
        for kill in range(20):
            await asyncio.sleep(1.5)  # the spacing of the kills (each run lasts >= 1.5 s)
            os.kill(pid, signal.SIGKILL)
            body = await wait_status(
                api,
                lambda b, old=pid: (
                    b["qwenProxy"]["state"] in ("running", "failed")
                    and b["qwenProxy"]["pid"] != old
                ),
                f"qwen-proxy back after kill {kill + 1}",
            )
            assert body["qwenProxy"]["state"] == "running", brief(body)
            pid = body["qwenProxy"]["pid"]
        assert body["qwenProxy"]["restarts"] == 20
        await api.post("/api/proxy/stop")
    assert "failed" not in seen
    assert seen.count("backoff") == 20
    assert alive(psutil.Process(daemon.pid))
