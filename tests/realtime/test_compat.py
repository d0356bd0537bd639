"""The fast path's start-time check: one warning and the supported path when a part is missing."""

from __future__ import annotations

from typing import Any

import pytest
from engineio.async_socket import AsyncSocket

from apiserver.config import ConfigError, RealtimeSettings, Settings
from apiserver.realtime import compat
from apiserver.realtime import mount as realtime
from apiserver.realtime.publisher import EventPublisher
from apiserver.security import AccessPolicy


class Recorder:
    """Stands in for the module's structlog logger (whose configuration other tests own)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def __getattr__(self, level: str) -> Any:
        def log(event: str, **fields: Any) -> None:
            self.entries.append({"event": event, "level": level, **fields})

        return log


def build(**options: Any) -> tuple[realtime.Hub, list[dict[str, Any]]]:
    policy = AccessPolicy.from_settings(Settings())
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(realtime, "log", recorder)
        hub = realtime.create_hub(EventPublisher(), None, policy, RealtimeSettings(**options))  # type: ignore[arg-type]
    return hub, [e for e in recorder.entries if e["event"] == "socketio_fast_path_unavailable"]


def test_the_fast_path_is_used_with_the_tested_libraries() -> None:
    hub, warnings = build()
    assert hub.fast and warnings == []


def test_another_library_version_falls_back_with_one_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(compat.TESTED_MINORS, "python-engineio", "4.0")
    hub, warnings = build()
    assert not hub.fast
    assert len(warnings) == 1 and warnings[0]["using"] == "supported"
    assert any("python-engineio" in problem for problem in warnings[0]["missing"])


@pytest.mark.parametrize("method", ["_websocket_handler", "_send_ping"])
def test_a_missing_private_part_falls_back_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    monkeypatch.delattr(AsyncSocket, method)
    hub, warnings = build()
    assert not hub.fast
    assert len(warnings) == 1
    assert warnings[0]["missing"] == [f"engineio.async_socket.AsyncSocket.{method} is missing"]


def test_the_environment_switch_forces_the_supported_path() -> None:
    settings = Settings.from_env({"SOCKETIO_FAST_PATH": "off"})
    hub, warnings = build(fast_path=settings.realtime.fast_path)
    assert not hub.fast and warnings == []  # chosen, not a fallback


def test_realtime_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {
            "SOCKETIO_PING_INTERVAL": "0.5",
            "SOCKETIO_PING_TIMEOUT": "2",
            "SOCKETIO_CLIENT_BACKLOG_MB": "3",
        }
    )
    assert settings.realtime == RealtimeSettings(
        ping_interval=0.5, ping_timeout=2.0, client_backlog=3 * 2**20
    )
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "SOCKETIO_PING_INTERVAL": "0",
                "SOCKETIO_FAST_PATH": "maybe",
                "SOCKETIO_TOTAL_BACKLOG_MB": "x",
            }
        )
    assert len(caught.value.problems) == 3
