"""The router's settings, read once from the environment and validated as a whole."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """Raised with every problem found in the environment at once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def is_loopback(host: str) -> bool:
    """Return True when binding ``host`` only exposes the router to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """Validated router configuration (the supervisor passes PORT, HOST, DATABASE_PATH)."""

    port: int
    database_path: Path
    host: str = "127.0.0.1"
    log_level: str = "info"
    log_format: str = "auto"
    api_key: str | None = None  # ROUTER_API_KEY: /v1/* then require "Bearer <key>"
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] | None = None  # None = loopback + browser extensions
    qwen_proxy_port: int = 3000
    shutdown_timeout: float = 5.0
    history_flush_interval: float = 0.05
    history_prune_interval: float = 60.0
    max_body_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RouterSettings:
        """Build settings from ``environ``; raise ConfigError listing every bad variable."""
        problems: list[str] = []

        def port(name: str, default: int | None) -> int:
            raw = environ.get(name, "").strip()
            if not raw and default is not None:
                return default
            if not raw.isdigit() or not 0 <= int(raw) <= 65535:
                problems.append(f"{name} must be a port number 0..65535, got {raw!r}")
                return 0
            return int(raw)

        def seconds(name: str, default: float) -> float:
            raw = environ.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            if not 0 < value <= 3600:
                problems.append(f"{name} must be a number of seconds in (0, 3600], got {raw!r}")
                return default
            return value

        host = environ.get("HOST", "").strip() or "127.0.0.1"
        key = environ.get("ROUTER_API_KEY", "").strip() or None
        if not is_loopback(host) and key is None:
            problems.append(
                f"HOST={host} is not a loopback address: set ROUTER_API_KEY to protect the router"
            )
        raw_db = environ.get("DATABASE_PATH", "").strip()
        if not raw_db:
            problems.append("DATABASE_PATH is not set (the API server passes it)")
        level = environ.get("LOG_LEVEL", "").strip().lower() or "info"
        level = "warning" if level == "warn" else level
        if level not in LOG_LEVELS:
            problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
            level = "info"
        fmt = environ.get("LOG_FORMAT", "").strip().lower() or "auto"
        if fmt not in ("auto", "json", "console"):
            problems.append(f"LOG_FORMAT must be auto, json or console, got {fmt!r}")
            fmt = "auto"
        raw_cors = environ.get("CORS_ORIGIN", "").strip()
        cors = (
            tuple(o.strip().rstrip("/") for o in raw_cors.split(",") if o.strip())
            if raw_cors
            else None
        )
        settings = cls(
            port=port("PORT", None),
            host=host,
            database_path=Path(raw_db).expanduser(),
            log_level=level,
            log_format=fmt,
            api_key=key,
            allowed_hosts=tuple(
                h.strip().lower() for h in environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()
            ),
            cors_origins=cors,
            qwen_proxy_port=port("QWEN_PROXY_PORT", 3000),
            shutdown_timeout=seconds("ROUTER_SHUTDOWN_TIMEOUT", 5.0),
            history_flush_interval=seconds("ROUTER_HISTORY_FLUSH_INTERVAL", 0.05),
            history_prune_interval=seconds("ROUTER_HISTORY_PRUNE_INTERVAL", 60.0),
        )
        if problems:
            raise ConfigError(problems)
        return settings
