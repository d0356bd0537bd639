"""The systemd unit of the daemon, rendered for this installation, and ``install-service``.

The unit names the interpreter that runs this very code (``sys.executable``: the virtual
environment the package is installed in), so it starts the same installation that wrote it,
wherever that lives. ``systemd/qwen-proxy-apiserver.service`` in the repository is the same
template rendered for a checkout in ``~/qwen-proxy-stack``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

UNIT_NAME = "qwen-proxy-apiserver.service"
SYSTEM_DATA_DIR = Path("/var/lib/qwen-proxy")
SYSTEM_ENV_FILE = Path("/etc/qwen-proxy/apiserver.env")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")

# Seconds; the unit's timers must exceed the daemon's own (config.py, apiserver/__main__.py):
# children get CHILD_STOP_TIMEOUT (10 s) between SIGTERM and SIGKILL, the HTTP server 5 s.
WATCHDOG_SEC = 30
TIMEOUT_STOP_SEC = 30

UNIT_TEMPLATE = """\
# {name}: written by `apiserver install-service{variant_flag}` (see README.md, "Run as a service").
[Unit]
Description=Local LLM proxy control plane (apiserver, qwen-proxy, provider-router)
After=network.target
# A daemon that keeps failing at start is left failed after 5 tries in 5 minutes.
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
# The daemon sends READY=1 once the store is open, the API listens and the children's desired
# state is being restored; STATUS= shows both children; STOPPING=1 on shutdown.
Type=notify
NotifyAccess=main
ExecStart={exec_start}
{user_lines}# API_PORT, API_TOKEN, DATABASE_PATH, CORS_ORIGIN, ... (see `apiserver --help`)
EnvironmentFile=-{env_file}
Environment=LOG_FORMAT=json PYTHONUNBUFFERED=1{extra_env}
# WATCHDOG=1 comes from the daemon's event loop: a loop blocked for {watchdog}s is restarted.
WatchdogSec={watchdog}
Restart=on-failure
RestartSec=2
# SIGTERM goes to the daemon only: it stops its children itself (SIGTERM to each child's
# process group, SIGKILL after CHILD_STOP_TIMEOUT=10 s each, one after the other, then its HTTP
# server within 5 s; raise TimeoutStopSec if you raise CHILD_STOP_TIMEOUT).
# Whatever is left after TimeoutStopSec is SIGKILLed by systemd: nothing survives the service.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={timeout_stop}
# Sandbox: read-only system and home, except the data directory; private /tmp.
NoNewPrivileges=yes
ProtectSystem=strict
{data_lines}PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes

[Install]
WantedBy={wanted_by}
"""


@dataclass(frozen=True, slots=True)
class UnitOptions:
    """What differs between installations: interpreter, files, and user or system service."""

    python: str
    data_dir: str
    env_file: str
    system: bool = False
    user: str | None = None  # system service: the account it runs as
    # The repository's copy uses systemd specifiers (%h) in its paths: written as they are.
    specifiers: bool = False


def systemd_quote(arg: str) -> str:
    """Quote one ExecStart= argument the way systemd parses it (no shell involved)."""
    if arg and not any(c in arg for c in " \t\"'\\;$%"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("%", "%%")
    return f'"{escaped}"'


def render_unit(options: UnitOptions) -> str:
    """Return the unit file text for ``options``."""
    python = options.python if options.specifiers else systemd_quote(options.python)
    exec_start = f"{python} -m apiserver run"
    if options.system:
        # systemd creates /var/lib/qwen-proxy owned by User= (StateDirectory=).
        data_lines = "StateDirectory=qwen-proxy\nReadWritePaths=/var/lib/qwen-proxy\n"
        user_lines = f"User={options.user}\n" if options.user else ""
        extra_env = " DATABASE_PATH=/var/lib/qwen-proxy/qwen-proxy.db"
        wanted_by = "multi-user.target"
    else:
        # "-": a missing directory does not fail the start (install-service creates it).
        data_lines = f"ReadWritePaths=-{options.data_dir}\n"
        user_lines = ""
        extra_env = ""
        wanted_by = "default.target"
    return UNIT_TEMPLATE.format(
        name=UNIT_NAME,
        variant_flag=" --system" if options.system else "",
        exec_start=exec_start,
        user_lines=user_lines,
        env_file=options.env_file,
        extra_env=extra_env,
        watchdog=WATCHDOG_SEC,
        timeout_stop=TIMEOUT_STOP_SEC,
        data_lines=data_lines,
        wanted_by=wanted_by,
    )


def repository_unit() -> str:
    """Return the user unit as committed in ``systemd/`` (a checkout in ~/qwen-proxy-stack)."""
    return render_unit(
        UnitOptions(
            python="%h/qwen-proxy-stack/.venv/bin/python",
            data_dir="%h/.local/share/qwen-proxy",
            env_file="%h/.config/qwen-proxy/apiserver.env",
            specifiers=True,
        )
    )


def user_unit_dir(environ: Mapping[str, str]) -> Path:
    """Return where systemd looks for the user's own units."""
    config = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(config).expanduser() / "systemd" / "user"


def user_env_file(environ: Mapping[str, str]) -> Path:
    """Return the environment file the user unit reads."""
    config = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(config).expanduser() / "qwen-proxy" / "apiserver.env"


ENV_FILE_TEMPLATE = """\
# Environment of the apiserver service (one NAME=value per line; see `apiserver --help`).
# API_PORT=3002
# API_TOKEN=
# CORS_ORIGIN=
"""


def install_service(
    *,
    database_path: Path,
    environ: Mapping[str, str],
    system: bool,
    print_only: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Write the unit (or only print it), reload systemd, say how to enable it; return 0/1."""
    if system:
        options = UnitOptions(
            python=sys.executable,
            data_dir=str(SYSTEM_DATA_DIR),
            env_file=str(SYSTEM_ENV_FILE),
            system=True,
            user=environ.get("SUDO_USER") or getpass.getuser(),
        )
        unit_path = SYSTEM_UNIT_DIR / UNIT_NAME
        env_file = SYSTEM_ENV_FILE
    else:
        env_file = user_env_file(environ)
        options = UnitOptions(
            python=sys.executable,
            data_dir=str(database_path.parent),
            env_file=str(env_file),
        )
        unit_path = user_unit_dir(environ) / UNIT_NAME
    text = render_unit(options)
    if print_only:
        out.write(text)
        return 0
    try:
        unit_path.parent.mkdir(parents=True, exist_ok=True)
        unit_path.write_text(text)
        if not env_file.exists():
            env_file.parent.mkdir(parents=True, exist_ok=True)
            # 0600: the file may hold API_TOKEN or QWEN_API_KEY.
            fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(ENV_FILE_TEMPLATE)
        if not system:
            Path(options.data_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        err.write(f"apiserver: cannot write {unit_path}: {exc.strerror or exc}\n")
        return 1
    out.write(f"Wrote {unit_path}\n")
    scope = [] if system else ["--user"]
    reloaded = _systemctl([*scope, "daemon-reload"], err)
    command = "systemctl" + ("" if system else " --user")
    out.write(
        f"Enable and start it:  {command} enable --now {UNIT_NAME.removesuffix('.service')}\n"
        f"Watch it:             {command} status {UNIT_NAME.removesuffix('.service')}\n"
        f"Settings:             {env_file}\n"
    )
    if not system:
        out.write("Keep it running after you log out:  loginctl enable-linger\n")
    return 0 if reloaded else 1


def _systemctl(args: list[str], err: TextIO) -> bool:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        err.write("apiserver: systemctl not found: run `systemctl daemon-reload` yourself\n")
        return False
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [systemctl, *args], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        why = (result.stderr or result.stdout).strip().splitlines()
        err.write(
            f"apiserver: `systemctl {' '.join(args)}` failed"
            + (f": {why[-1]}" if why else "")
            + "\n"
        )
        return False
    return True
