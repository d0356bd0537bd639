"""The command line: --help documents the environment, bad environments fail as a whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from apiserver.config import ENV_VARS
from tests.conftest import DaemonFactory
from tests.support.daemon import Api, Daemon

ISSUE_VARS = ("API_PORT", "API_HOST", "DATABASE_PATH", "LOG_LEVEL", "CORS_ORIGIN", "API_TOKEN")


def run_cli(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DATABASE_PATH": str(tmp_path / "cli.db"),
        "API_PORT": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "apiserver", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_help_lists_every_variable(tmp_path: Path) -> None:
    result = run_cli(["--help"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    for name in (*ISSUE_VARS, *(n for n, _, _ in ENV_VARS)):
        assert name in result.stdout, name
    assert "3002" in result.stdout and "127.0.0.1" in result.stdout  # the defaults
    # --help works even in a broken environment, and never starts the daemon.
    result = run_cli(["--help"], {"API_PORT": "abc"}, tmp_path)
    assert result.returncode == 0 and "API_PORT" in result.stdout
    assert not (tmp_path / "cli.db").exists()


def test_bad_environment_reports_every_problem(tmp_path: Path) -> None:
    result = run_cli([], {"API_PORT": "abc", "LOG_LEVEL": "loud", "API_HOST": "0.0.0.0"}, tmp_path)
    assert result.returncode != 0
    err = result.stderr
    for name, value in (("API_PORT", "abc"), ("LOG_LEVEL", "loud"), ("API_HOST", "0.0.0.0")):
        line = next((ln for ln in err.splitlines() if name in ln), None)
        assert line is not None and value in line, (name, err)
    assert "API_TOKEN" in err  # says how to fix the non-loopback bind
    assert "Traceback" not in err
    assert "server_started" not in result.stdout
    assert not (tmp_path / "cli.db").exists()  # nothing was opened


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
async def test_non_loopback_without_token_is_refused(tmp_path: Path, host: str) -> None:
    daemon = Daemon(tmp_path / "refused.db", {"API_HOST": host})
    with pytest.raises(RuntimeError, match="did not start"):
        await daemon.start()
    assert daemon.proc is not None and daemon.proc.returncode == 2
    assert any("API_TOKEN" in line for line in daemon.lines)
    assert not daemon.logs("server_started")


async def test_loopback_names_need_no_token(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env={"API_HOST": "localhost"})
    status, body = await Api(http, daemon.url).get("/api/providers")
    assert status == 200 and body["total"] == 3
