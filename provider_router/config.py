"""The router's settings, read once from the environment and validated as a whole."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from qwenstack_core.envconfig import ConfigError, EnvReader, is_loopback

__all__ = ["ConfigError", "RouterSettings", "is_loopback"]


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
        env = EnvReader(environ)
        host = env.text("HOST") or "127.0.0.1"
        key = env.text("ROUTER_API_KEY")
        if not is_loopback(host) and key is None:
            env.problems.append(
                f"HOST={host} is not a loopback address: set ROUTER_API_KEY to protect the router"
            )
        raw_db = env.text("DATABASE_PATH")
        if raw_db is None:
            env.problems.append("DATABASE_PATH is not set (the API server passes it)")
        settings = cls(
            port=env.port("PORT", None),
            host=host,
            database_path=Path(raw_db or "").expanduser(),
            log_level=env.log_level(),
            log_format=env.log_format(),
            api_key=key,
            allowed_hosts=env.host_names("ALLOWED_HOSTS"),
            cors_origins=env.origins("CORS_ORIGIN"),
            qwen_proxy_port=env.port("QWEN_PROXY_PORT", 3000),
            shutdown_timeout=env.seconds("ROUTER_SHUTDOWN_TIMEOUT", 5.0),
            history_flush_interval=env.seconds("ROUTER_HISTORY_FLUSH_INTERVAL", 0.05),
            history_prune_interval=env.seconds("ROUTER_HISTORY_PRUNE_INTERVAL", 60.0),
        )
        if env.problems:
            raise ConfigError(env.problems)
        return settings
