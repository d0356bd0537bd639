"""Settings.from_env: every problem of an environment at once, and the parsed values."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from apiserver.config import ConfigError, Settings


def test_settings_from_env_collects_all_problems() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(
            {
                "API_PORT": "70000",
                "QWEN_PROXY_PORT": "-1",
                "LOG_LEVEL": "x",
                "API_TOKEN": "short",
                "ORPHAN_POLICY": "kill",
            }
        )
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 5
    for name in ("API_PORT", "QWEN_PROXY_PORT", "LOG_LEVEL", "API_TOKEN", "ORPHAN_POLICY"):
        assert name in text
    settings = Settings.from_env(
        {"LOG_LEVEL": "WARN", "API_HOST": "localhost", "CORS_ORIGIN": "https://a.example/, *"}
    )
    assert settings.log_level == "warning" and settings.api_host == "localhost"
    assert settings.cors_origins == ("https://a.example", "*")
    assert settings.api_port == 3002 and settings.api_token is None


def test_child_commands_are_split_like_a_shell_never_run_through_one(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_PATH": str(tmp_path / "a.db"),
            "QWEN_PROXY_COMMAND": "node 'my proxy/server.js' --port=$PORT; rm -rf /",
        }
    )
    assert settings.qwen_proxy_command == (
        "node",
        "my proxy/server.js",
        "--port=$PORT;",
        "rm",
        "-rf",
        "/",
    )
    assert settings.provider_router_command == (sys.executable, "-m", "provider_router")
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"PROVIDER_ROUTER_COMMAND": "python 'unclosed"})
    assert info.value.problems[0].startswith("PROVIDER_ROUTER_COMMAND is not a valid command")


def test_child_timing_and_passthrough(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_PATH": str(tmp_path / "a.db"),
            "CHILD_STABLE_UPTIME": "1.5",
            "CHILD_CRASH_LIMIT": "20",
            "QWEN_BASE_URL": "http://127.0.0.1:9",
            "UNRELATED": "x",
        }
    )
    assert settings.child_timing.stable_uptime == 1.5
    assert settings.child_timing.crash_limit == 20
    assert settings.child_env == (("QWEN_BASE_URL", "http://127.0.0.1:9"),)
    with pytest.raises(ConfigError) as info:
        Settings.from_env(
            {"CHILD_STOP_TIMEOUT": "0", "CHILD_BACKOFF_CAP": "nan", "CHILD_CRASH_LIMIT": "0"}
        )
    assert [p.split()[0] for p in info.value.problems] == [
        "CHILD_CRASH_LIMIT",
        "CHILD_STOP_TIMEOUT",
        "CHILD_BACKOFF_CAP",
    ]


def test_a_directory_is_not_a_database_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DATABASE_PATH": str(tmp_path)})
    assert "is a directory" in info.value.problems[0]
