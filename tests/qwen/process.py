"""Run ``python -m qwen_proxy`` as a real process; its output is kept for the secret scan."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tests.support.logged_process import STARTUP_TIMEOUT_S, LoggedProcess
from tests.support.processes import free_port

__all__ = ["STARTUP_TIMEOUT_S", "QwenProxyProcess"]


class QwenProxyProcess(LoggedProcess):
    """One qwen-proxy child started by the test, on a free port."""

    module = "qwen_proxy"
    label = "qwen-proxy"

    def __init__(self, db_path: Path, base_url: str, env: Mapping[str, str] | None = None):
        super().__init__()
        self.db_path = db_path
        self.base_url = base_url
        self.extra_env = dict(env or {})
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATABASE_PATH": str(self.db_path),
            "QWEN_BASE_URL": self.base_url,
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "json",
            "QWEN_RETRY_BASE": "0.05",
        }
        env.update(self.extra_env)
        return env

    async def start(self, wait: bool = True) -> QwenProxyProcess:
        await self.spawn(wait)
        return self
