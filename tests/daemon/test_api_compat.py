"""The prototype's shapes: single history items and stats with their fields at the top level."""

from __future__ import annotations

import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import DaemonFactory
from tests.daemon.test_api_history import (
    MINUTE,
    REQUEST_KEYS,
    RESPONSE_KEYS,
    SESSION_KEYS,
    HistoryWriter,
    seed_two_sessions,
)
from tests.support.daemon import Api, Daemon, assert_error, free_port


@pytest.fixture
def history(daemon: Daemon) -> Iterator[HistoryWriter]:
    writer = HistoryWriter(daemon.db_path)
    yield writer
    writer.close()


ACTIVITY_STATS_NUMBERS = (
    "total_api_requests",
    "avg_response_time_ms",
    "active_sessions",
    "recent_errors",
    "total_providers",
    "total_models",
    "requests_last_hour",
    "requests_last_day",
    "success_rate_percent",
)


async def test_session_fields_at_top_level(api: Api, history: HistoryWriter) -> None:
    seed_two_sessions(history)
    status, body = await api.get("/api/sessions/s-a")
    assert status == 200
    assert set(body) >= SESSION_KEYS
    assert (body["id"], body["request_count"], body["message_count"]) == ("s-a", 2, 4)


async def test_request_fields_at_top_level_with_its_response(
    api: Api, history: HistoryWriter
) -> None:
    ids = seed_two_sessions(history)
    status, body = await api.get("/api/requests/uuid-a1")
    assert status == 200
    assert set(body) >= REQUEST_KEYS
    assert (body["id"], body["request_id"]) == (ids["a1"], "uuid-a1")
    # The latest attempt (the fallback that succeeded) is "the" response.
    assert body["response"]["id"] == ids["ra1"]
    assert set(body["response"]) >= RESPONSE_KEYS
    status, body = await api.get("/api/requests/uuid-x1")
    assert status == 200 and body["response"] is None


async def test_response_fields_at_top_level_with_its_request(
    api: Api, history: HistoryWriter
) -> None:
    ids = seed_two_sessions(history)
    status, body = await api.get(f"/api/responses/{ids['ra2']}")
    assert status == 200
    assert set(body) >= RESPONSE_KEYS
    assert body["id"] == ids["ra2"] and body["finish_reason"] == "length"
    assert body["request"] == {
        "id": ids["a2"],
        "request_id": "uuid-a2",
        "model": "qwen3-max",
        "stream": True,
        "timestamp": body["request"]["timestamp"],
    }
    assert isinstance(body["request"]["timestamp"], int)


async def test_response_stats_at_top_level(api: Api, history: HistoryWriter) -> None:
    status, body = await api.get("/api/responses/stats")
    assert status == 200
    empty = {
        k: body[k]
        for k in (
            "total_responses",
            "total_tokens",
            "total_completion_tokens",
            "total_prompt_tokens",
            "avg_duration_ms",
            "success_rate",
        )
    }
    assert empty == dict.fromkeys(empty, 0)  # numbers, never null
    seed_two_sessions(history)
    status, body = await api.get("/api/responses/stats")
    assert (body["total_responses"], body["total_tokens"]) == (4, 43)
    assert (body["total_prompt_tokens"], body["total_completion_tokens"]) == (28, 15)
    assert body["avg_duration_ms"] == 250.0
    assert body["success_rate"] == 75.0  # one of four failed


async def test_activity_stats_empty_history_is_all_numbers(api: Api) -> None:
    status, body = await api.get("/api/activity/stats")
    assert status == 200
    stats = body["stats"]
    for key in ACTIVITY_STATS_NUMBERS:
        assert isinstance(stats[key], int | float) and not isinstance(stats[key], bool), key
    assert stats["total_api_requests"] == 0 and stats["success_rate_percent"] == 0
    assert stats["avg_response_time_ms"] == 0
    assert stats["total_providers"] >= 1


async def test_recent_activity_items_have_the_prototype_fields(
    api: Api, history: HistoryWriter
) -> None:
    now = int(time.time() * 1000)
    ok = history.request("uuid-ok", session_id=None, created_at=now - 3 * MINUTE)
    history.response(ok, duration_ms=120, finish_reason="stop")
    bad = history.request("uuid-bad", created_at=now - 2 * 60 * MINUTE)
    history.response(bad, status_code=502, error="upstream down", tokens=None, finish_reason=None)
    status, body = await api.get("/api/activity/recent")
    assert status == 200
    first, second = body["activities"]
    assert first["type"] == "api_request" and first["action"] == "completed"
    assert first["timestamp"] == "3 minutes ago"
    assert first["timestamp_ms"] == now - 3 * MINUTE
    assert isinstance(first["description"], str) and first["description"]
    assert first["metadata"] == {
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": "success",
        "duration_ms": 120,
        "session_id": None,
        "request_id": "uuid-ok",
        "finish_reason": "stop",
    }
    assert (second["action"], second["timestamp"]) == ("failed", "2 hours ago")
    assert second["metadata"]["status"] == "error"
    assert second["metadata"]["error"] == "upstream down"
    assert "finish_reason" not in second["metadata"]


async def test_server_port_reflects_the_router_port(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    router_port = free_port()
    daemon = await daemon_factory(env={"PROVIDER_ROUTER_PORT": str(router_port)})
    api = Api(http, daemon.url)
    status, body = await api.get("/api/settings/server.port")
    assert status == 200 and body["value"] == router_port
    status, body = await api.get("/api/settings?category=server")
    assert body["settings"]["server.port"] == router_port
    status, body = await api.put("/api/settings/server.port", {"value": 4001})
    assert_error(status, body, 400, "validation_failed")
    assert body["error"]["details"][0]["field"] == "server.port"
    status, body = await api.post("/api/settings/bulk", {"settings": {"server.port": 4001}})
    assert_error(status, body, 400, "validation_failed")
    status, body = await api.get("/api/settings/server.port")
    assert body["value"] == router_port
