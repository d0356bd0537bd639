"""/api/settings: typed values, validation, bulk all-or-nothing, reset to default."""

from __future__ import annotations

from typing import Any

from tests.support.daemon import Api, assert_error

DEFAULTS: dict[str, Any] = {
    "server.port": 3001,
    "server.host": "127.0.0.1",
    "server.timeout": 120000,
    "logging.level": "info",
    "logging.logRequests": False,
    "logging.logResponses": False,
    "system.autoStart": False,
    "active_provider": None,
    "history.maxRows": 10000,
    "history.maxAgeDays": 30,
}


async def test_list_and_categories(api: Api) -> None:
    status, body = await api.get("/api/settings")
    assert status == 200
    # server.port is the provider-router's configured port (a free one in tests), read-only.
    DEFAULTS["server.port"] = body["settings"]["server.port"]
    assert body == {"settings": DEFAULTS, "category": "all"}
    for category in ("server", "logging", "system"):
        status, body = await api.get(f"/api/settings?category={category}")
        assert body == {
            "settings": {k: v for k, v in DEFAULTS.items() if k.startswith(category + ".")},
            "category": category,
        }
    status, body = await api.get("/api/settings?category=provider")
    assert body == {"settings": {"active_provider": None}, "category": "provider"}
    status, body = await api.get("/api/settings?category=bogus")
    assert_error(status, body, 400, "validation_failed")
    assert body["error"]["details"][0]["field"] == "category"


async def test_get_one(api: Api) -> None:
    status, body = await api.get("/api/settings/server.timeout")
    assert status == 200
    assert {k: body[k] for k in ("key", "value", "category", "requiresRestart", "isDefault")} == {
        "key": "server.timeout",
        "value": 120000,
        "category": "server",
        "requiresRestart": False,
        "isDefault": True,
    }
    status, body = await api.get("/api/settings/server.port")
    assert body["requiresRestart"] is True
    for key in ("nope", "server", "SERVER.TIMEOUT", "server.timeout.x"):
        status, body = await api.get(f"/api/settings/{key}")
        assert_error(status, body, 404, "setting_not_found")


async def test_booleans_save_as_booleans(api: Api) -> None:
    for key in ("logging.logRequests", "logging.logResponses", "system.autoStart"):
        status, body = await api.put(f"/api/settings/{key}", {"value": True})
        assert status == 200, body
        assert body["key"] == key and body["value"] is True
        assert {"key", "value", "requiresRestart", "updated_at", "message"} <= set(body)
        assert isinstance(body["updated_at"], int) and isinstance(body["message"], str)
        status, body = await api.get(f"/api/settings/{key}")
        assert body["value"] is True and body["isDefault"] is False
        for bad in ("true", 1, 0, None, "yes"):
            status, body = await api.put(f"/api/settings/{key}", {"value": bad})
            assert_error(status, body, 400, "validation_failed")
            assert body["error"]["details"][0]["field"] == key
        status, body = await api.put(f"/api/settings/{key}", {"value": False})
        assert status == 200 and body["value"] is False
    status, body = await api.get("/api/settings?category=logging")
    assert body["settings"]["logging.logRequests"] is False


async def test_timeout_range(api: Api) -> None:
    for good in (1000, 600000, 30000):
        status, body = await api.put("/api/settings/server.timeout", {"value": good})
        assert status == 200 and body["value"] == good
    for bad in (999, 600001, 0, -1, "30000", 30000.5, True, None):
        status, body = await api.put("/api/settings/server.timeout", {"value": bad})
        assert_error(status, body, 400, "validation_failed")
        assert body["error"]["details"][0]["field"] == "server.timeout"
    status, body = await api.get("/api/settings/server.timeout")
    assert body["value"] == 30000


async def test_other_typed_settings(api: Api) -> None:
    for level in ("debug", "info", "warn", "error"):
        status, body = await api.put("/api/settings/logging.level", {"value": level})
        assert status == 200 and body["value"] == level
    for bad in ("verbose", "WARN", "warning", 1, None):
        status, body = await api.put("/api/settings/logging.level", {"value": bad})
        assert_error(status, body, 400, "validation_failed")
    status, body = await api.get("/api/settings/logging.level")
    assert body["value"] == "error"

    for bad in (4001, 0, 65536, "4001"):  # read-only: it follows PROVIDER_ROUTER_PORT
        status, body = await api.put("/api/settings/server.port", {"value": bad})
        assert_error(status, body, 400, "validation_failed")
    status, body = await api.put("/api/settings/server.host", {"value": ""})
    assert_error(status, body, 400, "validation_failed")

    status, body = await api.put("/api/settings/server.timeout", {})
    assert_error(status, body, 400, "validation_failed")
    assert body["error"]["details"][0]["field"] == "value"
    status, body = await api.put("/api/settings/nope", {"value": 1})
    assert_error(status, body, 404, "setting_not_found")


async def test_active_provider(api: Api) -> None:
    status, body = await api.put("/api/settings/active_provider", {"value": "lm-studio-default"})
    assert status == 200 and body["value"] == "lm-studio-default"
    status, body = await api.get("/api/settings/active_provider")
    assert body["value"] == "lm-studio-default" and body["category"] == "provider"
    assert body["isDefault"] is False
    status, body = await api.get("/api/settings?category=provider")
    assert body["settings"] == {"active_provider": "lm-studio-default"}
    for bad in ("none-such", "LM-STUDIO-DEFAULT", "", 5):
        status, body = await api.put("/api/settings/active_provider", {"value": bad})
        assert_error(status, body, 400, "validation_failed")
        assert body["error"]["details"][0]["field"] == "active_provider"
    status, body = await api.get("/api/settings/active_provider")
    assert body["value"] == "lm-studio-default"
    status, body = await api.put("/api/settings/active_provider", {"value": None})
    assert status == 200 and body["value"] is None
    status, body = await api.get("/api/settings/active_provider")
    assert body["value"] is None and body["isDefault"] is True


async def test_bulk_is_all_or_nothing(api: Api) -> None:
    status, body = await api.post(
        "/api/settings/bulk",
        {
            "settings": {
                "server.timeout": 5000,
                "logging.logRequests": True,
                "active_provider": "qwen-proxy-default",
            }
        },
    )
    assert status == 200, body
    assert sorted(body["updated"]) == ["active_provider", "logging.logRequests", "server.timeout"]
    assert body["requiresRestart"] is False and isinstance(body["message"], str)
    status, body = await api.get("/api/settings")
    expected = {
        **DEFAULTS,
        "server.port": body["settings"]["server.port"],
        "server.timeout": 5000,
        "logging.logRequests": True,
        "active_provider": "qwen-proxy-default",
    }
    assert body["settings"] == expected

    for bad_settings, bad_fields in (
        ({"server.timeout": 9000, "logging.level": "loud"}, {"logging.level"}),
        ({"server.timeout": 9000, "no.such.key": 1}, {"no.such.key"}),
        ({"logging.logResponses": True, "active_provider": "none-such"}, {"active_provider"}),
        ({"server.timeout": 1, "system.autoStart": "yes"}, {"server.timeout", "system.autoStart"}),
    ):
        status, body = await api.post("/api/settings/bulk", {"settings": bad_settings})
        assert_error(status, body, 400, "validation_failed")
        assert {d["field"] for d in body["error"]["details"]} == bad_fields
        status, body = await api.get("/api/settings")
        assert body["settings"] == expected  # nothing changed

    status, body = await api.post("/api/settings/bulk", {"settings": {"server.host": "::1"}})
    assert status == 200 and body["requiresRestart"] is True
    for payload in ({}, {"settings": {}}, {"settings": [1]}):
        status, body = await api.post("/api/settings/bulk", payload)
        assert_error(status, body, 400, "validation_failed")
        assert body["error"]["details"][0]["field"] == "settings"


async def test_delete_resets_to_default(api: Api) -> None:
    await api.put("/api/settings/server.timeout", {"value": 5000})
    await api.put("/api/settings/system.autoStart", {"value": True})
    status, body = await api.delete("/api/settings/server.timeout")
    assert status == 200
    assert body["key"] == "server.timeout" and body["value"] == 120000
    assert body["requiresRestart"] is False and isinstance(body["message"], str)
    status, body = await api.get("/api/settings/server.timeout")
    assert body["value"] == 120000 and body["isDefault"] is True
    status, body = await api.delete("/api/settings/server.timeout")  # already default
    assert status == 200 and body["value"] == 120000
    status, body = await api.get("/api/settings/system.autoStart")
    assert body["value"] is True  # others untouched
    status, body = await api.delete("/api/settings/nope")
    assert_error(status, body, 404, "setting_not_found")
