"""Run ``python -m qwen_proxy`` as a real process; its output is kept for the secret scan."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.support.logged_process import STARTUP_TIMEOUT_S, ChildProgram

__all__ = ["STARTUP_TIMEOUT_S", "QwenProxyProcess"]


class QwenProxyProcess(ChildProgram):
    """One qwen-proxy child started by the test, on a free port."""

    module = "qwen_proxy"
    label = "qwen-proxy"

    def __init__(self, db_path: Path, base_url: str, env: Mapping[str, str] | None = None):
        super().__init__(db_path, env)
        self.base_url = base_url

    def own_env(self) -> dict[str, str]:
        return {"QWEN_BASE_URL": self.base_url, "QWEN_RETRY_BASE": "0.05"}

    async def start(self, wait: bool = True) -> QwenProxyProcess:
        await self.spawn(wait)
        return self
