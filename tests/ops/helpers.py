"""Shared bits of the operations tests: fake children and a daemon environment for them."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

FAKES = Path(__file__).resolve().parent.parent / "fakes"


def fake(name: str, *args: str) -> str:
    """Return the command line that runs the fake child ``name`` (a QWEN_PROXY_COMMAND value)."""
    return shlex.join([sys.executable, "-u", str(FAKES / name), *args])


def child_env(**extra: str) -> dict[str, str]:
    """Return a daemon environment with fake children and short supervision timings."""
    env = {
        "QWEN_PROXY_COMMAND": fake("ready_then_wait.py"),
        "PROVIDER_ROUTER_COMMAND": fake("ready_then_wait.py"),
        "CHILD_START_TIMEOUT": "5",
        "CHILD_STOP_TIMEOUT": "2",
        "CHILD_BACKOFF_BASE": "0.3",
        "CHILD_BACKOFF_CAP": "0.5",
        "CHILD_CRASH_LIMIT": "20",
        "LOG_LEVEL": "info",
    }
    env.update(extra)
    return env
