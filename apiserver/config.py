"""Daemon settings, read once from the environment and validated as a whole."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qwenstack_core.envconfig import ConfigError, EnvReader, default_database_path, is_loopback

# ConfigError and is_loopback are part of this module's interface (the CLI and security use them).
__all__ = ["ConfigError", "Settings", "default_database_path", "help_text", "is_loopback"]

ORPHAN_POLICIES = ("adopt", "stop")

# (name, default shown in --help, description); the one list behind both parsing and --help.
ENV_VARS: tuple[tuple[str, str, str], ...] = (
    ("API_PORT", "3002", "TCP port of the REST API, Socket.IO and dashboard"),
    ("API_HOST", "127.0.0.1", "address to bind; a non-loopback address requires API_TOKEN"),
    ("DATABASE_PATH", "$XDG_DATA_HOME/qwen-proxy/qwen-proxy.db", "SQLite database file"),
    ("LOG_LEVEL", "info", "debug | info | warning | error"),
    ("LOG_FORMAT", "auto", "auto (console on a terminal, JSON otherwise) | json | console"),
    (
        "CORS_ORIGIN",
        "loopback + browser extensions",
        "comma-separated allowed origins, or * for any",
    ),
    ("API_TOKEN", "(unset)", "when set, /api routes and Socket.IO require 'Bearer <token>'"),
    ("ALLOWED_HOSTS", "(unset)", "extra Host names accepted besides localhost/127.0.0.1/[::1]"),
    ("ROUTER_API_KEY", "(unset)", "when set, the provider-router's /v1 API requires it as Bearer"),
    ("QWEN_PROXY_PORT", "3000", "port of the supervised qwen-proxy"),
    ("PROVIDER_ROUTER_PORT", "3001", "port of the supervised provider-router"),
    ("QWEN_PROXY_COMMAND", "python -m qwen_proxy", "command line of qwen-proxy"),
    ("PROVIDER_ROUTER_COMMAND", "python -m provider_router", "command line of provider-router"),
    ("ORPHAN_POLICY", "stop", "children left by a crashed daemon: stop (and restart) | adopt"),
    ("QWEN_API_KEY", "(unset)", "DashScope key: enables the seeded qwen-direct provider"),
    ("CHILD_START_TIMEOUT", "15", "seconds a child may take to answer GET /health"),
    ("CHILD_STOP_TIMEOUT", "10", "seconds between SIGTERM and SIGKILL to a child's process group"),
    ("CHILD_BACKOFF_BASE", "0.5", "first restart delay in seconds (doubles per crash)"),
    ("CHILD_BACKOFF_CAP", "30", "longest restart delay in seconds"),
    ("CHILD_STABLE_UPTIME", "60", "seconds of running after which the crash count resets"),
    ("CHILD_CRASH_LIMIT", "5", "crashes within 120 s after which a child is 'failed'"),
    ("CHILD_LIVENESS_INTERVAL", "10", "seconds between health probes of a running child"),
    ("SOCKETIO_PING_INTERVAL", "25", "seconds between Engine.IO pings to each Socket.IO client"),
    ("SOCKETIO_PING_TIMEOUT", "20", "seconds a client may take to answer a ping"),
    (
        "SOCKETIO_FAST_PATH",
        "on",
        "on: direct websocket writes (tested library versions only) | off: AsyncServer.emit",
    ),
    ("SOCKETIO_CLIENT_BACKLOG_MB", "32", "MiB of unsent events after which a client is dropped"),
    ("SOCKETIO_TOTAL_BACKLOG_MB", "64", "MiB of unsent events (all clients) before the worst goes"),
)

# Daemon variables passed on to the children when set (they configure the children, not us).
CHILD_PASSTHROUGH = (
    "QWEN_BASE_URL",
    "QWEN_API_KEY",
    "LMSTUDIO_BASE_URL",
    # The provider-router applies the same Host/origin policy as the daemon, and its own key.
    "ROUTER_API_KEY",
    "ALLOWED_HOSTS",
    "CORS_ORIGIN",
    # What any program needs to run at all (the rest of our environment is not passed on).
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
)


@dataclass(frozen=True, slots=True)
class ChildTiming:
    """Supervision timings shared by both children (seconds)."""

    start_timeout: float = 15.0
    stop_timeout: float = 10.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    stable_uptime: float = 60.0
    crash_limit: int = 5
    liveness_interval: float = 10.0


@dataclass(frozen=True, slots=True)
class RealtimeSettings:
    """Socket.IO: Engine.IO timers (seconds), delivery mode and backlog caps (bytes)."""

    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    fast_path: bool = True
    client_backlog: int = 32 * 1024 * 1024
    total_backlog: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated daemon configuration."""

    api_port: int = 3002
    api_host: str = "127.0.0.1"
    database_path: Path = field(default_factory=lambda: default_database_path(os.environ))
    log_level: str = "info"
    log_format: str = "auto"
    cors_origins: tuple[str, ...] | None = None  # None = default policy; ("*",) = any
    api_token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    qwen_proxy_port: int = 3000
    provider_router_port: int = 3001
    qwen_proxy_command: tuple[str, ...] = (sys.executable, "-m", "qwen_proxy")
    provider_router_command: tuple[str, ...] = (sys.executable, "-m", "provider_router")
    # stop: an adopted child keeps writing into the dead daemon's pipes (its output is lost,
    # and a program that does not ignore SIGPIPE dies of it), so replacing it is the default.
    orphan_policy: str = "stop"
    qwen_api_key: str | None = None
    child_env: tuple[tuple[str, str], ...] = ()
    child_timing: ChildTiming = field(default_factory=lambda: ChildTiming())
    # systemd's service protocol (set by systemd for Type=notify units): where to send
    # READY=1/STATUS=/WATCHDOG=1/STOPPING=1, and how often the watchdog wants a ping.
    notify_socket: str | None = None
    watchdog_interval: float | None = None
    # Test hooks (APISERVER_DEBUG_HOOKS=1): routes under /api/debug/ that no user needs.
    debug_hooks: bool = False
    realtime: RealtimeSettings = field(default_factory=lambda: RealtimeSettings())

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``environ``; raise ConfigError listing every bad variable."""
        env = EnvReader(environ)
        problems = env.problems

        def command(name: str, module: str) -> tuple[str, ...]:
            raw = environ.get(name, "").strip()
            if not raw:
                return (sys.executable, "-m", module)
            try:
                argv = tuple(shlex.split(raw))
            except ValueError as exc:
                problems.append(f"{name} is not a valid command line: {exc}")
                return (sys.executable, "-m", module)
            return argv or (sys.executable, "-m", module)

        crash_limit = environ.get("CHILD_CRASH_LIMIT", "").strip() or "5"
        if not crash_limit.isdigit() or not 1 <= int(crash_limit) <= 1000:
            problems.append(f"CHILD_CRASH_LIMIT must be an integer 1..1000, got {crash_limit!r}")
            crash_limit = "5"
        timing = ChildTiming(
            start_timeout=env.seconds("CHILD_START_TIMEOUT", 15.0),
            stop_timeout=env.seconds("CHILD_STOP_TIMEOUT", 10.0),
            backoff_base=env.seconds("CHILD_BACKOFF_BASE", 0.5),
            backoff_cap=env.seconds("CHILD_BACKOFF_CAP", 30.0),
            stable_uptime=env.seconds("CHILD_STABLE_UPTIME", 60.0),
            crash_limit=int(crash_limit),
            liveness_interval=env.seconds("CHILD_LIVENESS_INTERVAL", 10.0),
        )

        def mebibytes(name: str, default: int) -> int:
            # Whole MiB, as bytes (the variables are documented in MiB).
            return int(env.number(name, default, 1, 65536)) * 1024 * 1024

        realtime = RealtimeSettings(
            ping_interval=env.seconds("SOCKETIO_PING_INTERVAL", 25.0),
            ping_timeout=env.seconds("SOCKETIO_PING_TIMEOUT", 20.0),
            fast_path=env.choice("SOCKETIO_FAST_PATH", "on", ("on", "off")) == "on",
            client_backlog=mebibytes("SOCKETIO_CLIENT_BACKLOG_MB", 32),
            total_backlog=mebibytes("SOCKETIO_TOTAL_BACKLOG_MB", 64),
        )

        host = env.text("API_HOST") or "127.0.0.1"
        token = env.text("API_TOKEN")
        if not is_loopback(host) and token is None:
            problems.append(
                f"API_HOST={host} is not a loopback address: set API_TOKEN to protect the API"
            )
        if token is not None and len(token) < 8:
            problems.append("API_TOKEN must be at least 8 characters long")

        raw_db = environ.get("DATABASE_PATH", "").strip()
        db = Path(raw_db).expanduser() if raw_db else default_database_path(environ)
        if db.exists() and db.is_dir():
            problems.append(f"DATABASE_PATH={db} is a directory, expected a file path")

        settings = cls(
            api_port=env.port("API_PORT", 3002, lowest=0),  # 0: any free port
            api_host=host,
            database_path=db,
            log_level=env.log_level(),
            log_format=env.log_format(),
            cors_origins=env.origins("CORS_ORIGIN"),
            api_token=token,
            allowed_hosts=env.host_names("ALLOWED_HOSTS"),
            qwen_proxy_port=env.port("QWEN_PROXY_PORT", 3000, lowest=1),
            provider_router_port=env.port("PROVIDER_ROUTER_PORT", 3001, lowest=1),
            qwen_proxy_command=command("QWEN_PROXY_COMMAND", "qwen_proxy"),
            provider_router_command=command("PROVIDER_ROUTER_COMMAND", "provider_router"),
            orphan_policy=env.choice("ORPHAN_POLICY", "stop", ORPHAN_POLICIES),
            qwen_api_key=env.text("QWEN_API_KEY"),
            child_env=tuple((k, environ[k]) for k in CHILD_PASSTHROUGH if environ.get(k)),
            child_timing=timing,
            notify_socket=env.text("NOTIFY_SOCKET"),
            watchdog_interval=_watchdog_interval(environ),
            debug_hooks=environ.get("APISERVER_DEBUG_HOOKS", "").strip() == "1",
            realtime=realtime,
        )
        if problems:
            raise ConfigError(problems)
        return settings


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Return how often to send WATCHDOG=1 (half of systemd's WATCHDOG_USEC), or None.

    systemd sets WATCHDOG_PID to the process it expects pings from; a descendant that inherited
    the variables (none should: children get an explicit environment) must not ping for us.
    """
    raw = environ.get("WATCHDOG_USEC", "").strip()
    owner = environ.get("WATCHDOG_PID", "").strip()
    if not raw.isdigit() or int(raw) == 0 or (owner and owner != str(os.getpid())):
        return None
    return int(raw) / 2_000_000


def help_text() -> str:
    """Describe every environment variable (used by ``apiserver --help``)."""
    width = max(len(name) for name, _, _ in ENV_VARS)
    lines = ["environment variables:"]
    for name, default, description in ENV_VARS:
        lines.append(f"  {name:<{width}}  {description} (default: {default})")
    return "\n".join(lines)
