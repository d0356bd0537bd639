"""The systemd unit: accepted by ``systemd-analyze verify``, written by ``install-service``."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from apiserver.cli.install_service import UNIT_NAME, UnitOptions, render_unit, repository_unit

ROOT = Path(__file__).resolve().parents[2]
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None and not os.environ.get("CI"),
    reason="systemd-analyze is missing (scripts/test installs Debian's systemd package)",
)


def verify(unit: Path, *, user: bool, tmp_path: Path) -> None:
    """Run ``systemd-analyze verify`` and fail on any complaint about our unit."""
    assert ANALYZE is not None, "systemd-analyze is missing: scripts/test installs it"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_LEVEL": "notice"}
    args = [ANALYZE, *(["--user"] if user else []), "verify", str(unit)]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, check=False)
    # verify exits 0 on lines it ignores ("Failed to parse ..., ignoring"): any mention of the
    # unit's file is a complaint.
    complaints = [ln for ln in (result.stdout + result.stderr).splitlines() if unit.name in ln]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_repository_unit_is_the_rendered_template() -> None:
    committed = (ROOT / "systemd" / UNIT_NAME).read_text()
    assert committed == repository_unit(), "regenerate systemd/ with service_unit.repository_unit"


@needs_analyze
@pytest.mark.parametrize("system", [False, True], ids=["user", "system"])
def test_systemd_analyze_accepts_the_unit(tmp_path: Path, system: bool) -> None:
    unit = tmp_path / UNIT_NAME
    unit.write_text(
        render_unit(
            UnitOptions(
                python=sys.executable,
                data_dir=str(tmp_path / "data"),
                env_file=str(tmp_path / "apiserver.env"),
                system=system,
                user="root" if system else None,
            )
        )
    )
    verify(unit, user=not system, tmp_path=tmp_path)


@needs_analyze
def test_repository_unit_verifies_with_a_real_interpreter(tmp_path: Path) -> None:
    # The committed copy names ~/qwen-proxy-stack/.venv; point it at this interpreter.
    text = repository_unit().replace("%h/qwen-proxy-stack/.venv/bin/python", sys.executable)
    unit = tmp_path / UNIT_NAME
    unit.write_text(text)
    verify(unit, user=True, tmp_path=tmp_path)


def test_unit_tells_systemd_the_truth() -> None:
    lines = set(repository_unit().splitlines())
    for expected in (
        "Type=notify",
        "NotifyAccess=main",
        "KillMode=mixed",
        "TimeoutStopSec=30",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=-%h/.local/share/qwen-proxy",
        "PrivateTmp=yes",
        "EnvironmentFile=-%h/.config/qwen-proxy/apiserver.env",
        "Restart=on-failure",
    ):
        assert expected in lines, expected
    assert any(ln.startswith("WatchdogSec=") for ln in lines)


def run_install(
    tmp_path: Path, *args: str, systemctl_exit: int = 0
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``apiserver install-service`` with a HOME in tmp_path and a recording systemctl."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "systemctl.calls"
    # A stand-in for systemctl: there is no user service manager in the test environment.
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit {systemctl_exit}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path / "home"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "apiserver", "install-service", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result, calls


def test_install_service_writes_the_unit_for_this_interpreter(tmp_path: Path) -> None:
    result, calls = run_install(tmp_path)
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "home/.config/systemd/user" / UNIT_NAME
    text = unit.read_text()
    assert f"ExecStart={sys.executable} -m apiserver run" in text
    assert f"ReadWritePaths=-{tmp_path}/home/.local/share/qwen-proxy" in text
    assert (tmp_path / "home/.local/share/qwen-proxy").is_dir()
    env_file = tmp_path / "home/.config/qwen-proxy/apiserver.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert calls.read_text().splitlines() == ["--user daemon-reload"]
    assert "systemctl --user enable --now qwen-proxy-apiserver" in result.stdout
    if ANALYZE is not None:
        verify(unit, user=True, tmp_path=tmp_path)
    # A second install keeps the user's settings file.
    env_file.write_text("API_PORT=3999\n")
    result, _ = run_install(tmp_path)
    assert result.returncode == 0 and env_file.read_text() == "API_PORT=3999\n"


def test_install_service_print_only_prints(tmp_path: Path) -> None:
    result, calls = run_install(tmp_path, "--print")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"# {UNIT_NAME}")
    assert "Type=notify" in result.stdout and sys.executable in result.stdout
    assert not calls.exists() and not (tmp_path / "home").exists()
    system, _ = run_install(tmp_path, "--print", "--system")
    assert "StateDirectory=qwen-proxy" in system.stdout
    assert "WantedBy=multi-user.target" in system.stdout


def test_install_service_reports_a_failed_reload(tmp_path: Path) -> None:
    result, calls = run_install(tmp_path, systemctl_exit=1)
    assert result.returncode == 1
    assert "daemon-reload" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "home/.config/systemd/user" / UNIT_NAME).exists()
