"""qwen-proxy's settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from yarl import URL

from qwenstack_core.envconfig import ConfigError, EnvReader, default_database_path

__all__ = ["ConfigError", "Settings", "default_database_path"]

DEFAULT_BASE_URL = "https://chat.qwen.ai"

ENV_VARS: tuple[tuple[str, str, str], ...] = (
    ("PORT", "3000", "listen port (0: any free port)"),
    ("HOST", "127.0.0.1", "listen address"),
    ("DATABASE_PATH", "$XDG_DATA_HOME/qwen-proxy/qwen-proxy.db", "the stack's SQLite database"),
    ("QWEN_BASE_URL", DEFAULT_BASE_URL, "the Qwen web chat to talk to"),
    ("LOG_LEVEL", "info", "debug | info | warning | error"),
    ("LOG_FORMAT", "auto", "auto | json | console"),
    ("QWEN_RETRY_BASE", "0.5", "first retry delay in seconds (doubles per retry)"),
    ("QWEN_RETRY_CAP", "8", "longest retry delay; a longer Retry-After is not waited for"),
    ("QWEN_MODELS_TTL", "60", "seconds the upstream model list is cached"),
    ("QWEN_UPSTREAM_TIMEOUT", "300", "seconds an upstream call may take in total"),
    ("QWEN_MAX_BODY_MB", "16", "largest accepted request body in MiB"),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything qwen-proxy is configured with."""

    port: int = 3000
    host: str = "127.0.0.1"
    database_path: Path = Path("qwen-proxy.db")
    base_url: URL = URL(DEFAULT_BASE_URL)
    log_level: str = "info"
    log_format: str = "auto"
    retry_base: float = 0.5
    retry_cap: float = 8.0
    max_retries: int = 3
    models_ttl: float = 60.0
    upstream_timeout: float = 300.0
    max_body_bytes: int = 16 * 1024 * 1024
    shutdown_timeout: float = 3.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``environ``; raise ConfigError listing every bad variable."""
        env = EnvReader(environ)
        base = URL(environ.get("QWEN_BASE_URL", "").strip().rstrip("/") or DEFAULT_BASE_URL)
        if base.scheme not in ("http", "https") or not base.host:
            env.problems.append(f"QWEN_BASE_URL must be an http(s) URL, got {str(base)!r}")
            base = URL(DEFAULT_BASE_URL)
        raw_db = environ.get("DATABASE_PATH", "").strip()
        settings = cls(
            port=int(env.number("PORT", 3000, 0, 65535)),
            host=env.text("HOST") or "127.0.0.1",
            database_path=Path(raw_db).expanduser() if raw_db else default_database_path(environ),
            base_url=base,
            log_level=env.log_level(),
            log_format=env.log_format(),
            retry_base=env.number("QWEN_RETRY_BASE", 0.5, 0.001, 60),
            retry_cap=env.number("QWEN_RETRY_CAP", 8.0, 0.001, 600),
            models_ttl=env.number("QWEN_MODELS_TTL", 60.0, 0, 86400),
            upstream_timeout=env.number("QWEN_UPSTREAM_TIMEOUT", 300.0, 1, 3600),
            max_body_bytes=int(env.number("QWEN_MAX_BODY_MB", 16, 0.001, 1024) * 1024 * 1024),
        )
        if env.problems:
            raise ConfigError(env.problems)
        return settings
