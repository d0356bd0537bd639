"""/api/providers: list, get, create, update, delete, enable/disable, test, reload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import DaemonFactory
from tests.support.daemon import Api, assert_error
from tests.support.processes import free_port

API_KEY = "sk-s3cr3t-provider-test"
PROVIDER_KEYS = {
    "id",
    "name",
    "type",
    "enabled",
    "priority",
    "description",
    "created_at",
    "updated_at",
}


def new_provider(pid: str, **extra: Any) -> dict[str, Any]:
    return {"id": pid, "name": f"Provider {pid}", "type": "openai-compatible", **extra}


async def test_seed_enable_example(api: Api) -> None:
    # curl -X POST http://127.0.0.1:3002/api/providers/qwen-direct-default/enable (no body)
    status, body = await api.get("/api/providers/qwen-direct-default")
    assert body["enabled"] is False  # seeded disabled without QWEN_API_KEY
    status, body = await api.post("/api/providers/qwen-direct-default/enable")
    assert status == 200
    assert body["id"] == "qwen-direct-default"
    assert body["enabled"] is True
    assert body["message"] == "Provider enabled"
    assert set(body) >= PROVIDER_KEYS


async def test_list_order_and_filters(api: Api) -> None:
    status, body = await api.get("/api/providers")
    assert status == 200
    assert [p["id"] for p in body["providers"]] == [
        "qwen-proxy-default",
        "lm-studio-default",
        "qwen-direct-default",
    ]
    assert body["total"] == 3
    for pid, name, priority, enabled in (
        ("p-beta", "Beta", 7, True),
        ("p-alpha", "Alpha", 7, False),
        ("p-low", "Aaa", -5, True),
        ("p-top", "Zed", 100, True),
    ):
        status, _ = await api.post(
            "/api/providers",
            {
                "id": pid,
                "name": name,
                "type": "lm-studio",
                "priority": priority,
                "enabled": enabled,
            },
        )
        assert status == 201
    status, body = await api.get("/api/providers")
    assert [p["id"] for p in body["providers"]] == [
        "p-top",
        "qwen-proxy-default",
        "p-alpha",
        "p-beta",
        "lm-studio-default",
        "qwen-direct-default",
        "p-low",
    ]
    assert body["total"] == 7
    for p in body["providers"]:
        assert set(p) == PROVIDER_KEYS
        assert isinstance(p["enabled"], bool) and isinstance(p["priority"], int)

    status, body = await api.get("/api/providers?type=lm-studio")
    assert [p["id"] for p in body["providers"]] == [
        "p-top",
        "p-alpha",
        "p-beta",
        "lm-studio-default",
        "p-low",
    ]
    status, body = await api.get("/api/providers?enabled=false")
    assert [p["id"] for p in body["providers"]] == ["p-alpha", "qwen-direct-default"]
    assert body["total"] == 2
    status, body = await api.get("/api/providers?enabled=true&type=lm-studio")
    assert [p["id"] for p in body["providers"]] == ["p-top", "p-beta", "lm-studio-default", "p-low"]
    status, body = await api.get("/api/providers?type=qwen-direct&enabled=true")
    assert body == {"providers": [], "total": 0}

    for query, fieldname in (
        ("type=bogus", "type"),
        ("enabled=maybe", "enabled"),
        ("enabled=yes", "enabled"),
    ):
        status, body = await api.get(f"/api/providers?{query}")
        assert_error(status, body, 400, "validation_failed")
        assert body["error"]["details"][0]["field"] == fieldname


async def test_get_with_config_and_models(api: Api) -> None:
    status, body = await api.get("/api/providers/qwen-proxy-default")
    assert status == 200
    assert body["id"] == "qwen-proxy-default"
    assert body["type"] == "qwen-proxy"
    assert body["priority"] == 10 and body["enabled"] is True
    # No stored baseURL: its address follows QWEN_PROXY_PORT (test_seeded_qwen_proxy_follows_port).
    assert body["config"] == {}
    models = {m["id"]: m for m in body["models"]}
    assert set(models) == {"qwen3-max", "qwen3-coder-plus", "qwen3-vl-plus", "qwen3-vl-32b"}
    assert [m["id"] for m in body["models"] if m["is_default"]] == ["qwen3-max"]
    assert models["qwen3-max"]["capabilities"] == ["chat", "tools", "reasoning"]
    status, body = await api.get("/api/providers/none-such")
    assert_error(status, body, 404, "provider_not_found")
    assert body["error"]["type"] == "not_found_error"


async def test_create_and_conflicts(api: Api) -> None:
    status, body = await api.post(
        "/api/providers",
        new_provider(
            "my-api",
            priority=3,
            description="An API",
            config={"baseURL": "http://127.0.0.1:9/v1", "apiKey": API_KEY, "timeout": 5000},
        ),
    )
    assert status == 201, body
    assert body["id"] == "my-api" and body["name"] == "Provider my-api"
    assert body["type"] == "openai-compatible"
    assert body["enabled"] is True and body["priority"] == 3
    assert body["description"] == "An API"
    assert body["config"] == {"apiKey": "***", "baseURL": "http://127.0.0.1:9/v1", "timeout": 5000}
    assert isinstance(body["created_at"], int) and body["created_at"] > 10**12  # milliseconds
    assert body["created_at"] == body["updated_at"]

    status, body = await api.post("/api/providers", new_provider("defaults"))
    assert status == 201
    assert (body["enabled"], body["priority"], body["description"], body["config"]) == (
        True,
        0,
        None,
        {},
    )

    status, body = await api.post("/api/providers", {**new_provider("my-api"), "name": "Other"})
    assert_error(status, body, 409, "provider_exists")
    assert body["error"]["type"] == "conflict_error"
    status, body = await api.post(
        "/api/providers", {**new_provider("my-api-2"), "name": "Provider my-api"}
    )
    assert_error(status, body, 409, "provider_name_taken")
    status, body = await api.get("/api/providers/my-api-2")
    assert status == 404
    status, body = await api.get("/api/providers")
    assert body["total"] == 5


async def test_create_validation(api: Api) -> None:
    cases = [
        ({"name": "x", "type": "lm-studio"}, {"id"}),
        ({"id": "Upper", "name": "x", "type": "lm-studio"}, {"id"}),
        ({"id": "-lead", "name": "x", "type": "lm-studio"}, {"id"}),
        ({"id": "a" * 65, "name": "x", "type": "lm-studio"}, {"id"}),
        ({"id": "ok", "name": "", "type": "lm-studio"}, {"name"}),
        ({"id": "ok", "name": "x", "type": "anthropic"}, {"type"}),
        ({"id": "ok", "name": "x", "type": "lm-studio", "enabled": "yes"}, {"enabled"}),
        ({"id": "ok", "name": "x", "type": "lm-studio", "priority": 1.5}, {"priority"}),
        ({"id": "ok", "name": "x", "type": "lm-studio", "priority": 10**6}, {"priority"}),
        ({"id": "ok", "name": "x", "type": "lm-studio", "config": []}, {"config"}),
        (
            {"id": "ok", "name": "x", "type": "lm-studio", "config": {"baseURL": "ftp://x"}},
            {"config.baseURL"},
        ),
        (
            {"id": "ok", "name": "x", "type": "lm-studio", "config": {"timeout": -1}},
            {"config.timeout"},
        ),
        (
            {"id": "ok", "name": "x", "type": "lm-studio", "config": {"apiKey": 5}},
            {"config.apiKey"},
        ),
    ]
    for payload, fields in cases:
        status, body = await api.post("/api/providers", payload)
        assert_error(status, body, 400, "validation_failed")
        assert {d["field"] for d in body["error"]["details"]} == fields, payload
    status, body = await api.get("/api/providers")
    assert body["total"] == 3
    # Both id patterns of api.md are accepted.
    for pid in ("a", "a.b_c-1", "x" * 64, "0-old-style"):
        status, body = await api.post("/api/providers", new_provider(pid))
        assert status == 201, (pid, body)


async def test_update(api: Api) -> None:
    status, body = await api.get("/api/providers/lm-studio-default")
    before = body
    status, body = await api.put(
        "/api/providers/lm-studio-default",
        {"name": "LM Studio 2", "priority": 42, "description": None, "enabled": False},
    )
    assert status == 200
    assert set(body) == PROVIDER_KEYS
    assert body["name"] == "LM Studio 2"
    assert body["priority"] == 42 and body["enabled"] is False and body["description"] is None
    assert body["type"] == "lm-studio"  # untouched
    assert body["created_at"] == before["created_at"]
    assert body["updated_at"] >= before["updated_at"]
    status, body = await api.get("/api/providers")
    assert body["providers"][0]["id"] == "lm-studio-default"  # reordered by the new priority

    status, body = await api.put("/api/providers/lm-studio-default", {"type": "openai-compatible"})
    assert status == 200 and body["type"] == "openai-compatible" and body["name"] == "LM Studio 2"
    # Renaming to its own name is not a conflict; to another provider's name is.
    status, body = await api.put("/api/providers/lm-studio-default", {"name": "LM Studio 2"})
    assert status == 200
    status, body = await api.put("/api/providers/lm-studio-default", {"name": "Qwen Proxy"})
    assert_error(status, body, 409, "provider_name_taken")

    for payload in ({}, {"unknown": 1}):
        status, body = await api.put("/api/providers/lm-studio-default", payload)
        assert_error(status, body, 400, "validation_failed")
        assert body["error"]["details"][0]["field"] == "body"
    for payload in ({"priority": "high"}, {"priority": None}, {"priority": 1001}):
        status, body = await api.put("/api/providers/lm-studio-default", payload)
        assert_error(status, body, 400, "validation_failed")
        assert body["error"]["details"] == [
            {"field": "priority", "message": body["error"]["details"][0]["message"]}
        ]
    status, body = await api.put(
        "/api/providers/lm-studio-default", {"priority": "x", "enabled": 1}
    )
    assert {d["field"] for d in body["error"]["details"]} == {"priority", "enabled"}
    status, body = await api.put("/api/providers/lm-studio-default", {"type": "bogus"})
    assert_error(status, body, 400, "validation_failed")
    status, body = await api.get("/api/providers/lm-studio-default")
    assert body["priority"] == 42 and body["type"] == "openai-compatible"

    status, body = await api.put("/api/providers/none-such", {"priority": 1})
    assert_error(status, body, 404, "provider_not_found")


async def test_enable_disable(api: Api) -> None:
    status, body = await api.post("/api/providers/qwen-proxy-default/disable")
    assert status == 200
    assert body["enabled"] is False and body["message"] == "Provider disabled"
    status, body = await api.get("/api/providers?enabled=false")
    assert "qwen-proxy-default" in [p["id"] for p in body["providers"]]
    status, body = await api.post("/api/providers/qwen-proxy-default/disable")  # idempotent
    assert status == 200 and body["enabled"] is False
    status, body = await api.post("/api/providers/qwen-proxy-default/enable")
    assert status == 200
    assert body["enabled"] is True and body["message"] == "Provider enabled"
    status, body = await api.get("/api/providers/qwen-proxy-default")
    assert body["enabled"] is True
    for action in ("enable", "disable", "test", "reload"):
        status, body = await api.post(f"/api/providers/none-such/{action}")
        assert_error(status, body, 404, "provider_not_found")


async def test_delete_cascades_and_clears_active_provider(api: Api) -> None:
    status, body = await api.put("/api/settings/active_provider", {"value": "qwen-proxy-default"})
    assert status == 200
    status, body = await api.delete("/api/providers/qwen-proxy-default")
    assert status == 200
    assert body == {"success": True, "message": "Provider deleted"}
    status, body = await api.get("/api/providers/qwen-proxy-default")
    assert_error(status, body, 404, "provider_not_found")
    for path in (
        "/api/providers/qwen-proxy-default/config",
        "/api/providers/qwen-proxy-default/models",
    ):
        status, body = await api.get(path)
        assert_error(status, body, 404, "provider_not_found")
    status, body = await api.get("/api/settings/active_provider")
    assert body["value"] is None and body["isDefault"] is True
    # The models stay; their links to the deleted provider do not.
    status, body = await api.get("/api/models/qwen3-max")
    assert status == 200 and body["model"]["providers"] == []
    status, body = await api.get("/api/models?provider=qwen-proxy-default")
    assert body == {"models": [], "total": 0}
    # Re-creating it starts empty: no config or links came back from the old one.
    status, body = await api.post(
        "/api/providers", {"id": "qwen-proxy-default", "name": "Qwen Proxy", "type": "qwen-proxy"}
    )
    assert status == 201 and body["config"] == {}
    status, body = await api.get("/api/providers/qwen-proxy-default")
    assert body["models"] == []

    # Deleting another provider leaves an active_provider naming a different one alone.
    await api.put("/api/settings/active_provider", {"value": "lm-studio-default"})
    status, body = await api.delete("/api/providers/qwen-direct-default")
    assert status == 200
    status, body = await api.get("/api/settings/active_provider")
    assert body["value"] == "lm-studio-default"
    status, body = await api.delete("/api/providers/qwen-direct-default")
    assert_error(status, body, 404, "provider_not_found")


# -- test and reload ---------------------------------------------------------------------


@dataclass
class FakeUpstream:
    """An OpenAI-compatible server on 127.0.0.1 that records what it was sent."""

    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(url="")

    async def models(request: web.Request) -> web.Response:
        fake.seen.append({"path": request.path, "headers": dict(request.headers)})
        if fake.status != 200:
            return web.json_response({"error": {"message": "nope"}}, status=fake.status)
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": "up-model-1", "object": "model"},
                    {"id": "up-model-2", "object": "model"},
                ],
            }
        )

    async def chat(request: web.Request) -> web.Response:
        fake.seen.append({"path": request.path, "headers": dict(request.headers)})
        return web.json_response({}, status=500)

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}/v1"
    yield fake
    await runner.cleanup()


async def test_provider_test_against_fake_upstream(api: Api, upstream: FakeUpstream) -> None:
    status, body = await api.post(
        "/api/providers",
        new_provider("fake", config={"baseURL": upstream.url + "/", "apiKey": API_KEY}),
    )
    assert status == 201
    status, body = await api.post("/api/providers/fake/test")
    assert status == 200, body
    assert body["provider_id"] == "fake"
    assert body["healthy"] is True
    assert body["models"] == ["up-model-1", "up-model-2"]
    assert isinstance(body["duration_ms"], int | float) and body["duration_ms"] >= 0
    assert isinstance(body["timestamp"], str) and "error" not in body
    # Only the model list was called (never a billed completion), with the key as a bearer.
    assert [s["path"] for s in upstream.seen] == ["/v1/models"]
    assert upstream.seen[0]["headers"]["Authorization"] == f"Bearer {API_KEY}"

    upstream.status = 401
    status, body = await api.post("/api/providers/fake/test")
    assert status == 200
    assert body["healthy"] is False and "401" in body["error"] and "models" not in body

    # Works for a disabled provider and without a key (no Authorization header then).
    await api.post(
        "/api/providers", new_provider("nokey", enabled=False, config={"baseURL": upstream.url})
    )
    upstream.status = 200
    status, body = await api.post("/api/providers/nokey/test")
    assert body["healthy"] is True
    assert "Authorization" not in upstream.seen[-1]["headers"]


async def test_seeded_qwen_proxy_follows_port(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    # The seeded qwen-proxy provider stores no address: the daemon finds the sibling on
    # QWEN_PROXY_PORT (here the fake upstream's port), not on a hard-coded 3000.
    port = upstream.url.removeprefix("http://127.0.0.1:").removesuffix("/v1")
    daemon = await daemon_factory(env={"QWEN_PROXY_PORT": port})
    status, body = await Api(http, daemon.url).post("/api/providers/qwen-proxy-default/test")
    assert status == 200, body
    assert body["healthy"] is True, body
    assert body["models"] == ["up-model-1", "up-model-2"]
    assert [s["path"] for s in upstream.seen] == ["/v1/models"]


async def test_provider_test_against_closed_port(api: Api) -> None:
    port = free_port()  # nothing listens there
    await api.post(
        "/api/providers",
        new_provider("down", config={"baseURL": f"http://127.0.0.1:{port}/v1", "apiKey": API_KEY}),
    )
    status, body = await api.post("/api/providers/down/test")
    assert status == 200
    assert body["provider_id"] == "down"
    assert body["healthy"] is False
    assert isinstance(body["error"], str) and body["error"]
    assert API_KEY not in body["error"] and "s3cr3t" not in str(body)
    assert "models" not in body
    assert isinstance(body["duration_ms"], int | float)


async def test_reload_without_router(api: Api) -> None:
    status, body = await api.post("/api/providers/lm-studio-default/reload")
    assert status == 200
    assert set(body) == {"provider_id", "message", "timestamp", "reloaded", "router_state"}
    assert body["provider_id"] == "lm-studio-default"
    assert "not running" in body["message"]
    assert body["reloaded"] is False and body["router_state"] == "stopped"
