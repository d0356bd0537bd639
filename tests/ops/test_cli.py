"""The command line against a live daemon: status, control, logs, watch, lists, credentials."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DaemonFactory
from tests.ops.helpers import child_env
from tests.support.capture import record
from tests.support.daemon import Daemon
from tests.support.processes import free_port

SECRET_TOKEN = "cli-token-s3cr3t"
SECRET_COOKIES = "cli-cookies=s3cr3t"
API_TOKEN = "cli-api-token-s3cr3t"


def cli_env(daemon_port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "API_PORT": str(daemon_port),
        **extra,
    }


def run(
    args: list[str], env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "apiserver", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    record(f"cli {' '.join(args[:2])} stdout", result.stdout)
    record(f"cli {' '.join(args[:2])} stderr", result.stderr)
    return result


async def arun(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI without blocking the test's loop (the daemon's output is read on it)."""
    return await asyncio.to_thread(run, args, env)


@pytest.fixture
async def daemon(daemon_factory: DaemonFactory) -> Daemon:
    return await daemon_factory(env=child_env())


@pytest.mark.parametrize(
    "args",
    [["status"], ["start"], ["stop", "qwen-proxy"], ["logs", "provider-router"],
     ["providers"], ["models"], ["credentials", "show"], ["logs", "qwen-proxy", "-f"]],
)  # fmt: skip
def test_not_running_is_one_clear_line(tmp_path: Path, args: list[str]) -> None:
    port = free_port()  # nothing listens there
    result = run(args, cli_env(port, tmp_path))
    assert result.returncode == 3, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "not running" in lines[0] and f":{port}" in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


async def test_status_table_and_json(daemon: Daemon, tmp_path: Path) -> None:
    env = cli_env(daemon.port, tmp_path)
    result = await arun(["status"], env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("proxies stopped")
    header = next(ln for ln in lines if ln.startswith("CHILD"))
    assert "STATE" in header and "PID" in header and "UPTIME" in header
    assert any(ln.startswith("qwen-proxy") and " stopped" in ln for ln in lines)
    assert any(ln.startswith("provider-router") and " stopped" in ln for ln in lines)
    assert "providers: 2 of 3 enabled" in result.stdout
    result = await arun(["status", "--json"], env)
    assert result.returncode == 0
    body = json.loads(result.stdout)
    assert body["status"] == "stopped" and body["qwenProxy"]["state"] == "stopped"


async def test_start_stop_restart_and_logs(daemon: Daemon, tmp_path: Path) -> None:
    env = cli_env(daemon.port, tmp_path)
    result = await arun(["start"], env)
    assert result.returncode == 0, result.stderr
    assert "qwen-proxy running" in result.stdout and "provider-router running" in result.stdout
    status = json.loads((await arun(["status", "--json"], env)).stdout)
    assert status["status"] == "running"
    old_pid = status["providerRouter"]["pid"]

    table = (await arun(["status"], env)).stdout
    assert any(
        ln.startswith("provider-router") and f" {old_pid} " in ln for ln in table.splitlines()
    )

    result = await arun(["restart", "provider-router"], env)
    assert result.returncode == 0, result.stderr
    status = json.loads((await arun(["status", "--json"], env)).stdout)
    assert status["providerRouter"]["pid"] not in (None, old_pid)

    result = await arun(["logs", "provider-router", "-n", "5"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("READY") == 2  # once per start
    assert len((await arun(["logs", "provider-router", "-n", "1"], env)).stdout.splitlines()) == 1

    result = await arun(["stop", "qwen-proxy"], env)
    assert result.returncode == 0, result.stderr
    assert "qwen-proxy stopped" in result.stdout and "provider-router running" in result.stdout
    result = await arun(["stop"], env)
    assert result.returncode == 0 and "provider-router stopped" in result.stdout

    # Usage errors exit 2 (argparse), before talking to the daemon.
    result = await arun(["start", "no-such-child"], env)
    assert result.returncode == 2 and "invalid choice" in result.stderr


async def test_failed_start_exits_1(daemon_factory: DaemonFactory, tmp_path: Path) -> None:
    from tests.ops.helpers import fake

    daemon = await daemon_factory(
        env=child_env(PROVIDER_ROUTER_COMMAND=fake("exit_with.py", "4"), CHILD_CRASH_LIMIT="1")
    )
    result = await arun(["start"], cli_env(daemon.port, tmp_path))
    assert result.returncode == 1, result
    assert "provider-router" in result.stderr and "failed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    await arun(["stop"], cli_env(daemon.port, tmp_path))


async def test_logs_follow_prints_new_lines(daemon: Daemon, tmp_path: Path) -> None:
    env = cli_env(daemon.port, tmp_path)
    assert (await arun(["start", "qwen-proxy"], env)).returncode == 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "apiserver", "logs", "qwen-proxy", "-f", "-n", "10",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(10):
            first = await proc.stdout.readline()  # the recent line
        assert b"READY" in first
        assert (await arun(["restart", "qwen-proxy"], env)).returncode == 0
        async with asyncio.timeout(10):
            second = await proc.stdout.readline()  # pushed live
        assert b"READY" in second
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            code = await proc.wait()
    assert code == 0, (await proc.stderr.read()).decode()
    await arun(["stop"], env)


async def test_watch_prints_events(daemon: Daemon, tmp_path: Path) -> None:
    env = cli_env(daemon.port, tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "apiserver", "watch",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(10):
            greeting = await proc.stdout.readline()
        assert b" proxy:status " in greeting
        assert (await arun(["providers"], env)).returncode == 0  # reads emit nothing
        assert (
            await arun(["credentials", "set", "--token", SECRET_TOKEN, "--cookies", SECRET_COOKIES],
                       env)
        ).returncode == 0  # fmt: skip
        async with asyncio.timeout(10):
            line = await proc.stdout.readline()
        assert b" credentials:updated " in line
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0


async def test_lists_and_credentials(daemon: Daemon, tmp_path: Path) -> None:
    env = cli_env(daemon.port, tmp_path)
    result = await arun(["providers"], env)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "TYPE", "ENABLED", "PRIORITY"]
    assert lines[1].startswith("qwen-proxy-default")  # highest priority first
    assert json.loads((await arun(["providers", "--json"], env)).stdout)["total"] == 3
    result = await arun(["models"], env)
    assert result.returncode == 0 and "qwen3-max" in result.stdout
    assert json.loads((await arun(["models", "--json"], env)).stdout)["total"] == 4

    result = await arun(["credentials", "show"], env)
    assert result.returncode == 1 and "none stored" in result.stdout
    result = await arun(
        ["credentials", "set", "--token", SECRET_TOKEN, "--cookies", SECRET_COOKIES,
         "--expires-at", "4102444800"], env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    result = await arun(["credentials", "show", "--json"], env)
    assert result.returncode == 0
    body = json.loads(result.stdout)
    assert body["hasCredentials"] and body["isValid"] and body["expiresAt"] == 4102444800
    result = await arun(["credentials", "show"], env)
    assert result.returncode == 0 and "valid until 2100-01-01" in result.stdout
    # Milliseconds are refused by the daemon: exit 1 with its message on one line.
    result = await arun(
        ["credentials", "set", "--token", SECRET_TOKEN, "--cookies", SECRET_COOKIES,
         "--expires-at", "4102444800000"], env,
    )  # fmt: skip
    assert result.returncode == 1 and "seconds" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "s3cr3t" not in result.stderr


async def test_api_token_from_the_environment(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    daemon = await daemon_factory(env={**child_env(), "API_TOKEN": API_TOKEN})
    env = cli_env(daemon.port, tmp_path, API_TOKEN=API_TOKEN)
    assert (await arun(["status"], env)).returncode == 0
    wrong = cli_env(daemon.port, tmp_path, API_TOKEN="wrong-token-123")
    result = await arun(["status"], wrong)
    assert result.returncode == 1 and "401" in result.stderr and "Traceback" not in result.stderr
    result = await arun(["logs", "qwen-proxy", "-f"], wrong)
    assert result.returncode == 1 and "refused" in result.stderr


async def test_api_host_and_port_choose_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    env = cli_env(daemon.port, tmp_path, API_HOST="127.0.0.1")
    assert (await arun(["status"], env)).returncode == 0
    other = cli_env(free_port(), tmp_path)
    assert (await arun(["status"], other)).returncode == 3
    assert (await arun(["status", "--url", daemon.url], other)).returncode == 0
