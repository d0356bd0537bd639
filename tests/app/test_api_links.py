"""/api/providers/{id}/models: provider↔model links and the per-provider default."""

from __future__ import annotations

from typing import Any

from tests.support.daemon import Api, assert_error

LM = "/api/providers/lm-studio-default/models"


async def defaults(api: Api, provider_id: str) -> list[str]:
    status, body = await api.get(f"/api/providers/{provider_id}/models")
    assert status == 200
    return [m["id"] for m in body["models"] if m["is_default"]]


async def test_list_links(api: Api) -> None:
    status, body = await api.get("/api/providers/qwen-proxy-default/models")
    assert status == 200
    assert body["provider_id"] == "qwen-proxy-default"
    assert body["total"] == 4 == len(body["models"])
    for m in body["models"]:
        assert {
            "id",
            "name",
            "description",
            "capabilities",
            "created_at",
            "updated_at",
            "is_default",
            "provider_config",
        } <= set(m)
        assert isinstance(m["capabilities"], list)
    assert await defaults(api, "qwen-proxy-default") == ["qwen3-max"]
    status, body = await api.get(LM)
    assert body == {"provider_id": "lm-studio-default", "models": [], "total": 0}
    status, body = await api.get("/api/providers/none-such/models")
    assert_error(status, body, 404, "provider_not_found")


async def test_link_unlink(api: Api) -> None:
    config: dict[str, Any] = {"upstreamModel": "qwen/qwen3-max-gguf", "maxTokens": 4096}
    status, body = await api.post(LM, {"model_id": "qwen3-max", "config": config})
    assert status == 201, body
    assert body["provider_id"] == "lm-studio-default"
    assert body["model_id"] == "qwen3-max"
    assert body["is_default"] is False
    assert body["config"] == config
    status, body = await api.get(LM)
    assert body["total"] == 1
    assert body["models"][0]["id"] == "qwen3-max"
    assert body["models"][0]["provider_config"] == config  # an object, not a string
    assert body["models"][0]["is_default"] is False
    status, body = await api.get("/api/models/qwen3-max")
    assert {p["id"] for p in body["model"]["providers"]} == {
        "qwen-proxy-default",
        "lm-studio-default",
    }

    status, body = await api.post(LM, {"model_id": "qwen3-max"})
    assert_error(status, body, 409, "model_already_linked")
    status, body = await api.post(LM, {"model_id": "no-such-model"})
    assert_error(status, body, 404, "model_not_found")
    status, body = await api.post("/api/providers/none-such/models", {"model_id": "qwen3-max"})
    assert_error(status, body, 404, "provider_not_found")
    for payload, fieldname in (
        ({}, "model_id"),
        ({"model_id": "Bad Id"}, "model_id"),
        ({"model_id": "qwen3-vl-32b", "is_default": "yes"}, "is_default"),
        ({"model_id": "qwen3-vl-32b", "config": "x"}, "config"),
    ):
        status, body = await api.post(LM, payload)
        assert_error(status, body, 400, "validation_failed")
        assert [d["field"] for d in body["error"]["details"]] == [fieldname]

    status, body = await api.delete(f"{LM}/qwen3-max")
    assert status == 200 and body["success"] is True
    status, body = await api.delete(f"{LM}/qwen3-max")
    assert_error(status, body, 404, "model_not_linked")
    status, body = await api.delete(f"{LM}/qwen3-coder-plus")  # exists, never linked here
    assert_error(status, body, 404, "model_not_linked")
    status, body = await api.delete("/api/providers/none-such/models/qwen3-max")
    assert_error(status, body, 404, "provider_not_found")
    status, body = await api.get(LM)
    assert body["total"] == 0
    # The model itself and its other link are untouched.
    status, body = await api.get("/api/models/qwen3-max")
    assert [p["id"] for p in body["model"]["providers"]] == ["qwen-proxy-default"]


async def test_one_default_per_provider(api: Api) -> None:
    status, body = await api.post(LM, {"model_id": "qwen3-max", "is_default": True})
    assert status == 201 and body["is_default"] is True
    status, body = await api.post(LM, {"model_id": "qwen3-vl-plus", "is_default": True})
    assert status == 201
    assert await defaults(api, "lm-studio-default") == ["qwen3-vl-plus"]
    status, body = await api.post(LM, {"model_id": "qwen3-vl-32b"})
    assert await defaults(api, "lm-studio-default") == ["qwen3-vl-plus"]
    # Another provider's default is not touched.
    assert await defaults(api, "qwen-proxy-default") == ["qwen3-max"]

    status, body = await api.put(f"{LM}/qwen3-vl-32b/default")
    assert status == 200
    assert body == {
        "provider_id": "lm-studio-default",
        "default_model": "qwen3-vl-32b",
        "message": "Default model updated",
    }
    assert await defaults(api, "lm-studio-default") == ["qwen3-vl-32b"]
    status, body = await api.put(f"{LM}/qwen3-vl-32b/default")  # again: still exactly one
    assert await defaults(api, "lm-studio-default") == ["qwen3-vl-32b"]
    assert await defaults(api, "qwen-proxy-default") == ["qwen3-max"]

    status, body = await api.put(f"{LM}/qwen3-coder-plus/default")
    assert_error(status, body, 404, "model_not_linked")
    status, body = await api.put("/api/providers/none-such/models/qwen3-max/default")
    assert_error(status, body, 404, "provider_not_found")
    assert await defaults(api, "lm-studio-default") == ["qwen3-vl-32b"]
