"""Proxy control end to end: the real daemon supervising fake children (issue 4).

Every test runs ``python -m apiserver`` as a process with tiny supervision timings and the fake
children of ``tests/fakes``. Conditions are awaited with deadline polls of
``GET /api/proxy/status`` or with Socket.IO events under a timeout, never with fixed sleeps.
Processes that outlive their daemon on purpose (orphans after a daemon SIGKILL) are not children
of pytest any more, so each test tracks their pids itself and kills them in a finally.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
import socketio

from tests.support.capture import record
from tests.support.daemon import Api, Daemon, assert_error
from tests.support.processes import free_port

DaemonFactory = Callable[..., Awaitable[Daemon]]

FAKES = Path(__file__).resolve().parent.parent / "fakes"
STOP_TIMEOUT = 0.5
CRASH_LIMIT = 3
STATES = {"stopped", "starting", "running", "stopping", "backoff", "failed"}
AGGREGATES = {"running", "stopped", "partial", "starting"}
CHILD_FIELDS = {
    "running",
    "port",
    "pid",
    "uptime",
    "state",
    "healthy",
    "restarts",
    "startedAt",
    "lastExit",
    "reason",
    "cpu",
    "memory",
}
STATUS_FIELDS = {
    "status",
    "providerRouter",
    "qwenProxy",
    "providers",
    "models",
    "credentials",
    "message",
    "timestamp",
}
KEYS = ("qwenProxy", "providerRouter")

# A child whose behaviour a test switches with a marker file: exits 3 (with a stderr line)
# while the marker is missing, and becomes ready_then_wait.py (same pid) once it exists.
SWITCH_FAKE = """\
import os, sys
if not os.path.exists(sys.argv[1]):
    print("boom: marker missing", file=sys.stderr, flush=True)
    sys.exit(3)
os.execv(sys.executable, [sys.executable, "-u", sys.argv[2]])
"""


def fake(name: str, *args: str) -> str:
    """Return the command line that runs the fake child ``name`` (a QWEN_PROXY_COMMAND value)."""
    return shlex.join([sys.executable, "-u", str(FAKES / name), *args])


def child_env(
    qwen: str | None = None, router: str | None = None, **extra: str | int | float
) -> dict[str, str]:
    """Return a daemon environment with fake children and tiny supervision timings."""
    env = {
        "QWEN_PROXY_COMMAND": qwen or fake("ready_then_wait.py"),
        "PROVIDER_ROUTER_COMMAND": router or fake("ready_then_wait.py"),
        "CHILD_START_TIMEOUT": "5",
        "CHILD_STOP_TIMEOUT": str(STOP_TIMEOUT),
        "CHILD_BACKOFF_BASE": "0.05",
        "CHILD_BACKOFF_CAP": "0.2",
        "CHILD_CRASH_LIMIT": str(CRASH_LIMIT),
        "LOG_LEVEL": "info",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


# -- waiting -------------------------------------------------------------------------------------


def brief(body: Any) -> str:
    """Return the part of a status body worth showing in a failure message."""
    if not isinstance(body, dict):
        return repr(body)
    children = {
        key: {f: body[key].get(f) for f in ("state", "pid", "reason")}
        for key in KEYS
        if isinstance(body.get(key), dict)
    }
    return json.dumps({"status": body.get("status"), **children})


async def wait_status(
    api: Api, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 10.0
) -> dict[str, Any]:
    """Poll ``GET /api/proxy/status`` every 25 ms until ``predicate`` holds (or fail)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = await api.get("/api/proxy/status")
        assert status == 200, body
        if predicate(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {brief(body)}")
        await asyncio.sleep(0.025)


def both(state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: all(body[key]["state"] == state for key in KEYS)


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Deadline-poll a local condition every 20 ms."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# -- processes -----------------------------------------------------------------------------------


def alive(proc: psutil.Process) -> bool:
    """Return True while ``proc`` runs (a zombie holds nothing but its pid: gone)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tree(pid: int) -> list[psutil.Process]:
    """Return ``pid`` and all its descendants."""
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def living(procs: Iterable[psutil.Process]) -> list[int]:
    return sorted(p.pid for p in procs if alive(p))


def listeners(port: int) -> set[int | None]:
    """Return the pids listening on TCP ``port``."""
    return {
        conn.pid
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
    }


def copies_of(script: str, ports: Iterable[int]) -> set[int]:
    """Return the pids of every live process running the fake ``script`` on one of ``ports``.

    Only ours: other test runs on this machine may run the same fake on other ports.
    """
    path = str(FAKES / script)
    wanted = {str(port) for port in ports}
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            mine = path in (proc.info["cmdline"] or []) and proc.environ().get("PORT") in wanted
            if mine and alive(proc):
                found.add(proc.pid)
    return found


def daemon_tree(daemon: Daemon) -> list[psutil.Process]:
    """Return the live descendants of the daemon process."""
    try:
        return [p for p in psutil.Process(daemon.pid).children(recursive=True) if alive(p)]
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def reaper() -> Iterator[list[psutil.Process]]:
    """Processes to kill at teardown if still alive (orphans that pytest cannot see)."""
    procs: list[psutil.Process] = []
    yield procs
    left = [proc for proc in procs if alive(proc)]  # (psutil waits ~1.4 s for a gone non-child)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=3)


@contextlib.asynccontextmanager
async def process(*argv: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a process of the test's own (a stranger to the daemon); kill it on the way out."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def port_answers(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


# -- Socket.IO -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sio_client(daemon: Daemon) -> AsyncIterator[socketio.AsyncSimpleClient]:
    """A connected client whose greeting ``proxy:status`` was consumed."""
    client = socketio.AsyncSimpleClient(handle_sigint=False)
    await client.connect(daemon.url, transports=["websocket"])
    try:
        name, greeting = await receive(client)
        assert name == "proxy:status", greeting
        yield client
    finally:
        await client.disconnect()


async def receive(client: socketio.AsyncSimpleClient, timeout: float = 5.0) -> tuple[str, Any]:
    name, data = await client.receive(timeout=timeout)
    record(f"event {name}", json.dumps(data))
    return name, data


# -- store ---------------------------------------------------------------------------------------


def child_records(db_path: Path) -> dict[str, int]:
    """Return ``{child name: pid}`` from the daemon's ``child_processes`` table (read-only)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return dict(conn.execute("SELECT name, pid FROM child_processes").fetchall())
    finally:
        conn.close()


# ================================================================================================
# 1. The REST surface
# ================================================================================================


def assert_status_shape(body: dict[str, Any]) -> None:
    assert set(body) >= STATUS_FIELDS, body
    assert body["status"] in AGGREGATES
    for key in KEYS:
        assert set(body[key]) == CHILD_FIELDS, body[key]
        assert body[key]["state"] in STATES


async def test_start_status_stop(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env=child_env())
    api = Api(http, daemon.url)

    status, body = await api.post("/api/proxy/start")
    assert status == 200, body
    assert body["success"] is True
    assert body["status"] == "running", brief(body)
    assert_status_shape(body)
    for key in KEYS:
        child = body[key]
        assert child["running"] is True
        assert child["state"] == "running"
        assert child["healthy"] is True
        assert isinstance(child["pid"], int)
        assert isinstance(child["port"], int)
        assert isinstance(child["uptime"], int | float)
        assert child["uptime"] >= 0
        assert isinstance(child["startedAt"], str)
        assert child["restarts"] == 0
        assert child["lastExit"] is None
        assert isinstance(child["reason"], str)
        assert isinstance(child["cpu"], int | float)
        assert isinstance(child["memory"], int)
        assert listeners(child["port"]) == {child["pid"]}
    pids = {key: body[key]["pid"] for key in KEYS}
    procs = [p for key in KEYS for p in tree(pids[key])]

    status, again = await api.post("/api/proxy/start")
    assert status == 200
    assert again["success"] is True
    assert again["message"] == "Proxy servers are already running"
    assert {key: again[key]["pid"] for key in KEYS} == pids

    status, current = await api.get("/api/proxy/status")
    assert status == 200
    assert "success" not in current
    assert set(current) == set(again) - {"success"}
    assert_status_shape(current)
    assert {key: current[key]["pid"] for key in KEYS} == pids

    status, body = await api.post("/api/proxy/stop")
    assert status == 200, body
    assert body["success"] is True
    assert body["status"] == "stopped", brief(body)
    assert_status_shape(body)
    for key in KEYS:
        assert body[key]["state"] == "stopped"
        assert body[key]["running"] is False
        assert body[key]["pid"] is None
        assert body[key]["lastExit"]["code"] == 0  # the fake exits 0 on SIGTERM
        assert body[key]["lastExit"]["signal"] is None
    assert living(procs) == []

    status, body = await api.post("/api/proxy/stop")
    assert status == 200
    assert body["success"] is True
    assert body["status"] == "stopped"


async def test_start_without_waiting(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    # slow_start: /health answers 200 only after 1 s, so "starting" lasts long enough to see.
    daemon = await daemon_factory(env=child_env(qwen=fake("slow_start.py", "1")))
    api = Api(http, daemon.url)
    began = time.monotonic()
    status, body = await api.post("/api/proxy/start?wait=false")
    # Answered before the child could be healthy (a generous bound: "starting" below is the proof).
    assert time.monotonic() - began < 1.0
    assert status == 200, body
    assert body["success"] is True
    assert body["status"] == "starting", brief(body)
    assert body["qwenProxy"]["state"] == "starting"
    await wait_status(api, both("running"), "both running")
    status, body = await api.post("/api/proxy/stop")
    assert body["status"] == "stopped"


async def test_child_commands_and_logs(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env=child_env())
    api = Api(http, daemon.url)
    status, body = await api.post("/api/proxy/qwen-proxy/start")
    assert status == 200, body
    assert body["success"] is True
    assert body["qwenProxy"]["state"] == "running"
    assert body["providerRouter"]["state"] == "stopped"
    assert body["status"] == "partial"

    status, body = await api.post("/api/proxy/provider-router/start")
    assert body["status"] == "running", brief(body)
    router_pid = body["providerRouter"]["pid"]
    qwen = psutil.Process(body["qwenProxy"]["pid"])

    status, body = await api.post("/api/proxy/qwen-proxy/restart")
    assert status == 200, body
    assert body["success"] is True
    assert body["qwenProxy"]["state"] == "running"
    assert body["qwenProxy"]["pid"] != qwen.pid
    assert body["qwenProxy"]["restarts"] == 1
    assert body["providerRouter"]["pid"] == router_pid  # the other child is left alone
    assert not alive(qwen)

    status, body = await api.post("/api/proxy/qwen-proxy/stop")
    assert status == 200, body
    assert body["qwenProxy"]["state"] == "stopped"
    assert body["providerRouter"]["state"] == "running"
    assert body["status"] == "partial"

    status, logs = await api.get("/api/proxy/provider-router/logs")
    assert status == 200, logs
    assert logs["child"] == "provider-router"
    ready = [entry for entry in logs["lines"] if entry["line"] == "READY"]
    assert ready, logs
    assert set(ready[0]) == {"ts", "stream", "line"}
    assert ready[0]["stream"] == "stdout"
    assert isinstance(ready[0]["ts"], str) and ready[0]["ts"]
    status, logs = await api.get("/api/proxy/qwen-proxy/logs?lines=1")
    assert status == 200
    assert len(logs["lines"]) == 1

    status, body = await api.get("/api/proxy/nonesuch/logs")
    assert_error(status, body, 404, "unknown_child")
    for action in ("start", "stop", "restart"):
        status, body = await api.post(f"/api/proxy/nonesuch/{action}")
        assert_error(status, body, 404, "unknown_child")
    status, body = await api.get("/api/proxy/qwen-proxy/logs?lines=0")
    assert_error(status, body, 400, "validation_failed")

    status, body = await api.post("/api/proxy/stop")
    assert body["status"] == "stopped"


# ================================================================================================
# 2. A crash, seen over Socket.IO
# ================================================================================================


async def test_sigkilled_child_restarts_with_an_event_per_transition(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env=child_env())
    api = Api(http, daemon.url)
    _, body = await api.post("/api/proxy/start")
    assert body["status"] == "running", brief(body)
    old_pid = body["qwenProxy"]["pid"]
    router_pid = body["providerRouter"]["pid"]

    async with sio_client(daemon) as client:
        killed = time.monotonic()
        psutil.Process(old_pid).send_signal(signal.SIGKILL)
        events = []
        while True:
            name, data = await receive(client)
            assert name == "proxy:status", data
            events.append(data)
            if len(events) == 1:
                seen = time.monotonic() - killed
            qwen = data["qwenProxy"]
            if qwen["state"] == "running" and qwen["pid"] != old_pid:
                break
        elapsed = time.monotonic() - killed

    states = [e["qwenProxy"]["state"] for e in events]
    assert states == ["backoff", "starting", "running"], states
    backoff, starting, running = events
    assert backoff["qwenProxy"]["lastExit"]["signal"] == "SIGKILL"
    assert backoff["qwenProxy"]["lastExit"]["code"] is None
    assert "SIGKILL" in backoff["qwenProxy"]["reason"]
    assert "SIGKILL" in backoff["message"]
    assert backoff["status"] == "partial"
    assert starting["qwenProxy"]["pid"] is None
    assert isinstance(running["qwenProxy"]["pid"], int)
    assert running["qwenProxy"]["restarts"] == 1
    assert running["status"] == "running"
    for event in events:
        assert event["providerRouter"]["pid"] == router_pid  # the other child is untouched
    seqs = [e["seq"] for e in events]
    assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False)), seqs
    assert len({e["instance"] for e in events}) == 1
    assert seen < 1, seen  # the exit is awaited, not polled (the bench measures ms)
    assert elapsed < 3, elapsed  # no backoff delay for the first crash after a stable run

    _, body = await api.post("/api/proxy/stop")
    assert body["status"] == "stopped"


# ================================================================================================
# 3. Crash loop -> failed; an explicit start resets it
# ================================================================================================


async def test_crash_loop_ends_failed_and_explicit_start_resets(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    script = tmp_path / "switch.py"
    script.write_text(SWITCH_FAKE)
    marker = tmp_path / "healthy"
    qwen = shlex.join(
        [sys.executable, "-u", str(script), str(marker), str(FAKES / "ready_then_wait.py")]
    )
    daemon = await daemon_factory(env=child_env(qwen=qwen))
    api = Api(http, daemon.url)

    status, body = await api.post("/api/proxy/start")
    assert status == 200, body
    assert body["success"] is False
    assert body["qwenProxy"]["state"] == "failed", brief(body)
    assert body["providerRouter"]["state"] == "running"  # the router starts anyway
    assert body["status"] == "partial"
    qwen_status = body["qwenProxy"]
    assert qwen_status["lastExit"]["code"] == 3
    assert qwen_status["pid"] is None
    assert qwen_status["restarts"] == CRASH_LIMIT
    reason = qwen_status["reason"]
    assert "crash loop" in reason
    assert "exited with code 3" in reason
    assert "boom: marker missing" in reason
    assert "qwen-proxy" in body["message"]
    assert reason in body["message"]

    # Still failed a moment later: failed is terminal (no restart is pending). The status poll
    # asks for something that must not happen and expects the deadline to pass.
    with pytest.raises(AssertionError, match="timed out"):
        await wait_status(api, lambda b: b["qwenProxy"]["state"] != "failed", "a restart", 0.3)

    marker.touch()
    status, body = await api.post("/api/proxy/qwen-proxy/start")
    assert status == 200, body
    assert body["success"] is True
    assert body["qwenProxy"]["state"] == "running", brief(body)
    assert body["status"] == "running"

    # The failure counters were reset: a new crash loop needs the full limit again.
    marker.unlink()
    pid = body["qwenProxy"]["pid"]
    psutil.Process(pid).kill()
    # Without the reset, the old failures would still count and the SIGKILL alone would fail it.
    body = await wait_status(api, lambda b: b["qwenProxy"]["state"] == "failed", "failed again")
    assert "last exit: exited with code 3" in body["qwenProxy"]["reason"], brief(body)

    _, body = await api.post("/api/proxy/stop")
    assert body["status"] == "stopped"
    assert body["qwenProxy"]["state"] == "stopped"


# ================================================================================================
# 4. SIGTERM ignored by the child and its grandchild -> SIGKILL to the group
# ================================================================================================


async def test_stop_escalates_to_sigkill_and_leaves_no_tree(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env=child_env(qwen=fake("ignore_sigterm.py")))
    api = Api(http, daemon.url)
    _, body = await api.post("/api/proxy/start")
    assert body["status"] == "running", brief(body)
    pid = body["qwenProxy"]["pid"]
    procs = tree(pid)
    _, logs = await api.get("/api/proxy/qwen-proxy/logs")
    grandchild = [e["line"] for e in logs["lines"] if e["line"].startswith("GRANDCHILD ")]
    assert grandchild, logs
    assert int(grandchild[0].split()[1]) in {p.pid for p in procs[1:]}

    began = time.monotonic()
    status, body = await api.post("/api/proxy/qwen-proxy/stop")
    elapsed = time.monotonic() - began
    assert status == 200, body
    assert body["qwenProxy"]["state"] == "stopped"
    assert STOP_TIMEOUT <= elapsed < STOP_TIMEOUT + 1.5, elapsed
    assert body["qwenProxy"]["lastExit"]["signal"] == "SIGKILL"
    assert "SIGKILL" in body["qwenProxy"]["reason"]
    assert living(procs) == []

    _, body = await api.post("/api/proxy/stop")
    assert body["status"] == "stopped"


# ================================================================================================
# 5. A port held by a stranger
# ================================================================================================


async def test_port_held_by_a_stranger_is_never_touched(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    argv = (sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1")
    async with process(*argv) as stranger:
        holder = psutil.Process(stranger.pid)
        deadline = time.monotonic() + 5
        while not await port_answers(port):
            assert time.monotonic() < deadline, "the stranger did not listen"
            await asyncio.sleep(0.02)
        daemon = await daemon_factory(env=child_env(QWEN_PROXY_PORT=port))
        api = Api(http, daemon.url)

        status, body = await api.post("/api/proxy/start")
        assert status == 200, body
        assert body["success"] is False
        qwen = body["qwenProxy"]
        assert qwen["state"] == "failed", brief(body)
        assert qwen["pid"] is None
        assert f"port {port}" in qwen["reason"]
        assert f"pid {stranger.pid}" in qwen["reason"]
        assert holder.name() in qwen["reason"]
        assert body["providerRouter"]["state"] == "running"
        assert alive(holder)
        assert listeners(port) == {stranger.pid}

        _, body = await api.post("/api/proxy/stop")
        assert body["status"] == "stopped"
        assert alive(holder)
        assert stranger.returncode is None


# ================================================================================================
# 6. Daemon SIGTERM: nothing outlives it
# ================================================================================================


async def test_daemon_sigterm_stops_every_descendant(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, reaper: list[psutil.Process]
) -> None:
    daemon = await daemon_factory(env=child_env(qwen=fake("ignore_sigterm.py")))
    api = Api(http, daemon.url)
    _, body = await api.post("/api/proxy/start")
    assert body["status"] == "running", brief(body)
    procs = daemon_tree(daemon)
    reaper.extend(procs)
    assert len(procs) == 3, procs  # two children and the grandchild

    assert await daemon.stop(signal.SIGTERM) == 0
    assert living(procs) == []
    assert daemon.logs("server_stopped")


# ================================================================================================
# 7. Daemon SIGKILL, then a new daemon: adopt or stop the orphans
# ================================================================================================


async def crash_daemon_with_children(
    daemon_factory: DaemonFactory,
    http: aiohttp.ClientSession,
    env: dict[str, str],
    db_path: Path,
    reaper: list[psutil.Process],
) -> dict[str, int]:
    """Start both children, SIGKILL the daemon, return the orphans' pids by status key."""
    daemon = await daemon_factory(env=env, db_path=db_path)
    api = Api(http, daemon.url)
    _, body = await api.post("/api/proxy/start")
    assert body["status"] == "running", brief(body)
    pids = {key: body[key]["pid"] for key in KEYS}
    reaper.extend(p for key in KEYS for p in tree(pids[key]))
    # The spawn records are written right after the spawn; wait until both are on disk.
    await wait_until(
        lambda: set(child_records(db_path).values()) == set(pids.values()), "child records"
    )
    await daemon.stop(signal.SIGKILL)
    assert all(alive(psutil.Process(pid)) for pid in pids.values())
    return pids


def orphan_env(ports: dict[str, int], policy: str) -> dict[str, str]:
    """Return the daemon environment of the orphan tests (fixed ports, one policy)."""
    return child_env(
        QWEN_PROXY_PORT=ports["qwenProxy"],
        PROVIDER_ROUTER_PORT=ports["providerRouter"],
        ORPHAN_POLICY=policy,
    )


async def orphans_of_a_killed_daemon(
    daemon_factory: DaemonFactory,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    reaper: list[psutil.Process],
    policy: str,
) -> tuple[dict[str, int], Path, dict[str, int], list[psutil.Process]]:
    """Start both children under a daemon, SIGKILL it; return ports, database, pids, processes."""
    ports = {"qwenProxy": free_port(), "providerRouter": free_port()}
    db_path = tmp_path / "store.db"
    env = orphan_env(ports, policy)
    pids = await crash_daemon_with_children(daemon_factory, http, env, db_path, reaper)
    return ports, db_path, pids, [psutil.Process(pid) for pid in pids.values()]


async def test_orphans_are_adopted_by_the_next_daemon(
    daemon_factory: DaemonFactory,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    reaper: list[psutil.Process],
) -> None:
    ports, db_path, pids, orphans = await orphans_of_a_killed_daemon(
        daemon_factory, http, tmp_path, reaper, "adopt"
    )
    daemon = await daemon_factory(env=orphan_env(ports, "adopt"), db_path=db_path)
    api = Api(http, daemon.url)
    body = await wait_status(api, both("running"), "both adopted and running")
    assert {key: body[key]["pid"] for key in KEYS} == pids
    assert sorted(e["pid"] for e in daemon.logs("orphan_recovered")) == sorted(pids.values())
    assert daemon_tree(daemon) == []  # nothing spawned: no second copy
    assert copies_of("ready_then_wait.py", ports.values()) == set(pids.values())
    for key in KEYS:
        assert listeners(ports[key]) == {pids[key]}

    status, body = await api.post("/api/proxy/stop")
    assert status == 200, body
    assert body["status"] == "stopped", brief(body)
    await wait_until(lambda: living(orphans) == [], "the adopted children to be reaped", 2)
    assert child_records(db_path) == {}


async def test_orphans_are_stopped_and_replaced_by_the_next_daemon(
    daemon_factory: DaemonFactory,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    reaper: list[psutil.Process],
) -> None:
    ports, db_path, pids, orphans = await orphans_of_a_killed_daemon(
        daemon_factory, http, tmp_path, reaper, "stop"
    )
    daemon = await daemon_factory(env=orphan_env(ports, "stop"), db_path=db_path)
    # The orphans are stopped before the daemon answers; init may take a moment to reap them.
    await wait_until(lambda: living(orphans) == [], "the orphans to be stopped", 2)
    assert sorted(e["pid"] for e in daemon.logs("orphan_recovered")) == sorted(pids.values())
    api = Api(http, daemon.url)
    body = await wait_status(api, both("running"), "both restarted (desired state)")
    new = {key: body[key]["pid"] for key in KEYS}
    assert not set(new.values()) & set(pids.values())
    assert copies_of("ready_then_wait.py", ports.values()) == set(new.values())
    for key in KEYS:
        assert listeners(ports[key]) == {new[key]}

    _, body = await api.post("/api/proxy/stop")
    assert body["status"] == "stopped", brief(body)
    assert daemon_tree(daemon) == []


# ================================================================================================
# 8. Desired state and system.autoStart survive a daemon restart
# ================================================================================================


async def test_desired_state_and_auto_start_are_restored(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    db_path = tmp_path / "store.db"
    env = child_env()

    daemon = await daemon_factory(env=env, db_path=db_path)
    _, body = await Api(http, daemon.url).post("/api/proxy/start")
    assert body["status"] == "running", brief(body)
    await daemon.stop(signal.SIGTERM)

    # Wanted running: back without a start request.
    daemon = await daemon_factory(env=env, db_path=db_path)
    assert daemon.logs("proxy_restoring")
    api = Api(http, daemon.url)
    await wait_status(api, both("running"), "both restored")
    _, body = await api.post("/api/proxy/stop")
    assert body["status"] == "stopped"
    await daemon.stop(signal.SIGTERM)

    # Explicitly stopped: the next daemon leaves them stopped. restore() decides before the
    # daemon logs server_started, so no "proxy_restoring" now means nothing will start.
    daemon = await daemon_factory(env=env, db_path=db_path)
    assert daemon.logs("proxy_restoring") == []
    api = Api(http, daemon.url)
    _, body = await api.get("/api/proxy/status")
    assert body["status"] == "stopped", brief(body)
    assert daemon_tree(daemon) == []
    status, body = await api.put("/api/settings/system.autoStart", {"value": True})
    assert status == 200, body
    await daemon.stop(signal.SIGTERM)

    # system.autoStart starts them regardless of the stored "stopped".
    daemon = await daemon_factory(env=env, db_path=db_path)
    assert daemon.logs("proxy_restoring")[0]["auto_start"] is True
    api = Api(http, daemon.url)
    await wait_status(api, both("running"), "both auto-started")
    _, body = await api.post("/api/proxy/stop")
    assert body["status"] == "stopped"


# ================================================================================================
# 9. Concurrent commands
# ================================================================================================


async def test_concurrent_start_and_stop_requests_stay_coherent(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env=child_env())
    api = Api(http, daemon.url)
    actions = ["start", "stop", "start", "start", "stop", "start", "stop", "stop", "start", "stop"]
    answers = await asyncio.gather(*(api.post(f"/api/proxy/{a}") for a in actions))
    for action, (status, body) in zip(actions, answers, strict=True):
        assert status == 200, (action, body)
        assert isinstance(body["success"], bool), body
        assert body["status"] in AGGREGATES, body
        assert_status_shape(body)
        assert isinstance(body["message"], str) and body["message"]

    _, body = await api.post("/api/proxy/stop")
    assert body["success"] is True
    assert body["status"] == "stopped", brief(body)
    assert all(body[key]["pid"] is None for key in KEYS)
    assert daemon_tree(daemon) == []

    _, body = await api.post("/api/proxy/start")
    assert body["success"] is True
    assert body["status"] == "running", brief(body)
    for key in KEYS:
        assert listeners(body[key]["port"]) == {body[key]["pid"]}
    assert len(daemon_tree(daemon)) == 2

    _, body = await api.post("/api/proxy/stop")
    assert body["status"] == "stopped"


async def test_stop_waits_for_a_child_that_is_still_stopping(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    # qwen-proxy ignores SIGTERM, so its stop lasts the whole stop timeout.
    daemon = await daemon_factory(env=child_env(qwen=fake("ignore_sigterm.py")))
    api = Api(http, daemon.url)
    _, body = await api.post("/api/proxy/qwen-proxy/start")
    assert body["qwenProxy"]["state"] == "running", brief(body)
    procs = tree(body["qwenProxy"]["pid"])

    child_stop = asyncio.ensure_future(api.post("/api/proxy/qwen-proxy/stop"))
    try:
        await wait_status(api, lambda b: b["qwenProxy"]["state"] == "stopping", "stopping")
        # Neither child runs now, but one still has processes: "stop" must wait for them.
        status, body = await api.post("/api/proxy/stop")
        assert status == 200, body
        assert body["qwenProxy"]["state"] == "stopped", brief(body)
        assert living(procs) == []
    finally:
        status, body = await child_stop
    assert status == 200, body


# ================================================================================================
# 10. A recycled pid in the records is never adopted nor killed
# ================================================================================================


@pytest.mark.parametrize("policy", ["adopt", "stop"])
async def test_recycled_pid_is_left_alone(
    daemon_factory: DaemonFactory,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    policy: str,
) -> None:
    db_path = tmp_path / "store.db"
    env = child_env(ORPHAN_POLICY=policy)
    first = await daemon_factory(env=env, db_path=db_path)  # creates the schema
    await first.stop(signal.SIGTERM)

    sleeper_argv = (sys.executable, "-c", "import time; time.sleep(60)")
    async with process(*sleeper_argv) as sleeper:
        other = psutil.Process(sleeper.pid)
        conn = sqlite3.connect(db_path, timeout=5)
        try:
            with conn:
                for offset, name in ((1000.0, "qwen-proxy"), (500.0, "provider-router")):
                    conn.execute(
                        "INSERT INTO child_processes (name, pid, create_time, argv, port,"
                        " recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            name,
                            sleeper.pid,
                            other.create_time() - offset,  # the pid once named another process
                            json.dumps(list(sleeper_argv)),
                            free_port(),
                            int(time.time() * 1000),
                        ),
                    )
        finally:
            conn.close()

        daemon = await daemon_factory(env=env, db_path=db_path)
        gone = daemon.logs("orphan_gone")
        assert sorted(e["child"] for e in gone) == ["provider-router", "qwen-proxy"], gone
        assert all(e["pid"] == sleeper.pid for e in gone)
        assert daemon.logs("orphan_recovered") == []
        _, body = await Api(http, daemon.url).get("/api/proxy/status")
        assert body["status"] == "stopped", brief(body)
        assert all(body[key]["pid"] is None for key in KEYS)
        assert alive(other)
        assert sleeper.returncode is None
        assert child_records(db_path) == {}  # the stale records are dropped


# ================================================================================================
# 11. A second daemon on the same database refuses to start and leaves the children alone
# ================================================================================================


async def test_second_daemon_on_the_same_database_is_refused(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    env = child_env(ORPHAN_POLICY="stop")
    first = await daemon_factory(env=env)
    api = Api(http, first.url)
    _, before = await api.post("/api/proxy/start")
    assert before["status"] == "running", brief(before)

    second = Daemon(first.db_path, env)
    with pytest.raises(RuntimeError, match="did not start"):
        await second.start()
    assert await second.stop() == 1
    failed = second.logs("server_failed")
    assert failed, second.lines[-5:]
    assert "another apiserver" in failed[0]["error"]
    assert str(first.pid) in failed[0]["error"]
    assert not second.logs("orphan_recovered")
    assert not second.logs("orphan_gone")

    _, after = await api.get("/api/proxy/status")
    for key in KEYS:  # same processes, never restarted
        assert after[key]["pid"] == before[key]["pid"], brief(after)
        assert after[key]["restarts"] == 0
        assert after[key]["state"] == "running"
    await api.post("/api/proxy/stop")
