"""/api/providers/{id}/config: typed key/values, secrets write-only."""

from __future__ import annotations

from tests.support.daemon import Api, assert_error

API_KEY = "sk-s3cr3t-config"
BASE = "/api/providers/lm-studio-default/config"


async def test_get_config(api: Api) -> None:
    status, body = await api.get(BASE)
    assert status == 200
    assert body == {
        "provider_id": "lm-studio-default",
        "config": {"baseURL": "http://localhost:1234/v1"},
    }
    status, body = await api.get("/api/providers/none-such/config")
    assert_error(status, body, 404, "provider_not_found")


async def test_put_upserts_and_keeps_json_types(api: Api) -> None:
    values = {
        "timeout": 30000,
        "ratio": 0.25,
        "headers": {"X-Team": "a", "nested": {"list": [1, "two", None, True]}},
        "models": ["a", "b"],
        "flag": False,
        "nothing": None,
        "defaultModel": "qwen3-max",
        "apiKey": API_KEY,
    }
    status, body = await api.put(BASE, {"config": values})
    assert status == 200
    assert body["provider_id"] == "lm-studio-default"
    assert body["updated_count"] == len(values)
    expected = {**values, "apiKey": "***", "baseURL": "http://localhost:1234/v1"}
    assert body["config"] == expected  # existing keys kept, new ones added
    status, body = await api.get(BASE)
    assert body["config"] == expected
    assert isinstance(body["config"]["timeout"], int)
    assert isinstance(body["config"]["headers"], dict)
    assert body["config"]["flag"] is False
    # The provider's own view shows the same masked config.
    status, body = await api.get("/api/providers/lm-studio-default")
    assert body["config"] == expected

    status, body = await api.put(
        BASE, {"config": {"timeout": 1000, "baseURL": "https://lm.example/v1"}}
    )
    assert status == 200 and body["updated_count"] == 2
    assert body["config"]["timeout"] == 1000
    assert body["config"]["baseURL"] == "https://lm.example/v1"
    assert body["config"]["ratio"] == 0.25
    # Another origin: the key entered for the old one is dropped (secrets bound to origins).
    assert "apiKey" not in body["config"] and body["secrets_dropped"] == ["apiKey"]


async def test_put_validation(api: Api) -> None:
    cases = [
        ({"config": {"baseURL": "localhost:1234"}}, {"config.baseURL"}),
        ({"config": {"baseURL": 5}}, {"config.baseURL"}),
        ({"config": {"timeout": "30s"}}, {"config.timeout"}),
        ({"config": {"timeout": 0}}, {"config.timeout"}),
        ({"config": {"apiKey": ["x"]}}, {"config.apiKey"}),
        ({"config": {"bad key": 1}}, {"config.bad key"}),
        ({"config": {}}, {"config"}),
        ({"config": [1]}, {"config"}),
        ({}, {"config"}),
        ({"config": {"baseURL": "nope", "timeout": "x"}}, {"config.baseURL", "config.timeout"}),
    ]
    for payload, fields in cases:
        status, body = await api.put(BASE, payload)
        assert_error(status, body, 400, "validation_failed")
        assert {d["field"] for d in body["error"]["details"]} == fields, payload
    # One bad key means nothing of the body is written.
    status, body = await api.put(BASE, {"config": {"good": 1, "baseURL": "nope"}})
    assert status == 400
    status, body = await api.get(BASE)
    assert body["config"] == {"baseURL": "http://localhost:1234/v1"}
    status, body = await api.put("/api/providers/none-such/config", {"config": {"a": 1}})
    assert_error(status, body, 404, "provider_not_found")


async def test_patch_one_key(api: Api) -> None:
    status, body = await api.patch(f"{BASE}/timeout", {"value": 15000})
    assert status == 200
    assert set(body) == {"provider_id", "key", "value", "is_sensitive", "updated_at"}
    assert body["provider_id"] == "lm-studio-default"
    assert (body["key"], body["value"], body["is_sensitive"]) == ("timeout", 15000, False)
    assert isinstance(body["updated_at"], int) and body["updated_at"] > 10**12

    status, body = await api.patch(f"{BASE}/routing", {"value": {"weights": [1, 2]}})
    assert status == 200 and body["value"] == {"weights": [1, 2]}

    # Sensitive by flag (any name) or by name (key/secret/password/token): shown as "***".
    status, body = await api.patch(
        f"{BASE}/x-org-header", {"value": "org-s3cr3t", "is_sensitive": True}
    )
    assert status == 200
    assert body["value"] == "***" and body["is_sensitive"] is True
    status, body = await api.patch(f"{BASE}/apiKey", {"value": API_KEY})
    assert body["value"] == "***" and body["is_sensitive"] is True
    status, body = await api.patch(f"{BASE}/db_password", {"value": "pw-s3cr3t"})
    assert body["value"] == "***" and body["is_sensitive"] is True
    # Once a secret, always a secret: a later PATCH cannot make it readable.
    status, body = await api.patch(
        f"{BASE}/x-org-header", {"value": "org2-s3cr3t", "is_sensitive": False}
    )
    assert body["value"] == "***" and body["is_sensitive"] is True

    status, body = await api.get(BASE)
    assert body["config"] == {
        "baseURL": "http://localhost:1234/v1",
        "timeout": 15000,
        "routing": {"weights": [1, 2]},
        "x-org-header": "***",
        "apiKey": "***",
        "db_password": "***",
    }
    for query in ("?mask=false", "?reveal=true", "?masked=0", "?raw=1"):
        status, body = await api.get(BASE + query)
        assert body["config"]["apiKey"] == "***"

    cases = [
        (f"{BASE}/timeout", {}, {"value"}),
        (f"{BASE}/timeout", {"value": "soon"}, {"config.timeout"}),
        (f"{BASE}/baseURL", {"value": "not a url"}, {"config.baseURL"}),
        (f"{BASE}/baseURL", {"value": None}, {"config.baseURL"}),
        (f"{BASE}/apiKey", {"value": 12}, {"config.apiKey"}),
        (f"{BASE}/other", {"value": 1, "is_sensitive": "yes"}, {"is_sensitive"}),
        (f"{BASE}/bad%20key", {"value": 1}, {"key"}),
    ]
    for path, payload, fields in cases:
        status, body = await api.patch(path, payload)
        assert_error(status, body, 400, "validation_failed")
        assert {d["field"] for d in body["error"]["details"]} == fields, (path, payload)
    status, body = await api.get(BASE)
    assert body["config"]["timeout"] == 15000 and "other" not in body["config"]
    status, body = await api.patch("/api/providers/none-such/config/timeout", {"value": 1})
    assert_error(status, body, 404, "provider_not_found")


async def test_delete_key(api: Api) -> None:
    await api.patch(f"{BASE}/timeout", {"value": 15000})
    status, body = await api.delete(f"{BASE}/timeout")
    assert status == 200
    assert body == {"success": True, "message": "Configuration key deleted"}
    status, body = await api.get(BASE)
    assert "timeout" not in body["config"] and "baseURL" in body["config"]
    status, body = await api.delete(f"{BASE}/timeout")
    assert_error(status, body, 404, "config_key_not_found")
    status, body = await api.delete(f"{BASE}/never-set")
    assert_error(status, body, 404, "config_key_not_found")
    # Keys are matched exactly.
    status, body = await api.delete(f"{BASE}/BASEURL")
    assert_error(status, body, 404, "config_key_not_found")
    status, body = await api.delete("/api/providers/none-such/config/baseURL")
    assert_error(status, body, 404, "provider_not_found")
